"""Global trust, EigenTrust-style: t = (1 - alpha) C^T t + alpha p, by power iteration.

C's row i is node i's normalised local trust (reputation/trust.py `row()`); p
is the pre-trusted distribution (the DAO's trusted hubs and the seeds). A row
that trusts no one is replaced by p, as in EigenTrust: a peer with no opinion
defers to the pre-trusted. Because trust only flows along positive local
trust, a clique of liars that no honest peer trusts gets none, however large.

Defence against lying recommenders (EigenTrust++): each row i is scaled by
its credibility `cred_i` in [0, 1], the similarity of i's claims to the
reference evidence (reputation/trust.py `similarity`), and the mass it loses
goes to p. A peer that answers honestly but vouches for liars in its row still
passes trust to them only as far as its own claims about hubs hold up.

Incremental: `GlobalTrust.update` starts the iteration from the previous
vector (peers new since then start at 0), so a small change in the rows costs
a few iterations instead of a full convergence. The matrix is kept sparse
(coordinate arrays and `np.bincount`), so 10^5 peers with tens of trusted
peers each iterate in milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from reputation.params import EigenTrustParams

Vector = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SparseRows:
    """Row-stochastic (or zero) rows in coordinate form: C[src[k], dst[k]] = val[k]."""

    n: int
    src: npt.NDArray[np.int64]
    dst: npt.NDArray[np.int64]
    val: Vector
    row_mass: Vector  # sum of each row after credibility scaling (0 = defers to p)


def build_rows(
    index: Mapping[bytes, int],
    rows: Mapping[bytes, Mapping[bytes, float]],
    credibility: Mapping[bytes, float] | None = None,
) -> SparseRows:
    """Normalise each row (non-negative entries to known peers), scaled by credibility."""
    n = len(index)
    src: list[int] = []
    dst: list[int] = []
    val: list[float] = []
    mass = np.zeros(n)
    for peer, row in rows.items():
        i = index.get(peer)
        if i is None:
            continue
        entries = [(index[q], w) for q, w in row.items() if w > 0 and q in index and q != peer]
        total = sum(w for _, w in entries)
        if total <= 0:
            continue
        cred = 1.0 if credibility is None else min(1.0, max(0.0, credibility.get(peer, 0.0)))
        if cred <= 0:
            continue
        for j, w in entries:
            src.append(i)
            dst.append(j)
            val.append(cred * w / total)
        mass[i] = cred
    return SparseRows(
        n,
        np.asarray(src, dtype=np.int64),
        np.asarray(dst, dtype=np.int64),
        np.asarray(val, dtype=np.float64),
        mass,
    )


def power_iteration(
    c: SparseRows,
    p: Vector,
    params: EigenTrustParams,
    start: Vector | None = None,
) -> tuple[Vector, int]:
    """Iterate to the stationary vector; returns it and the iterations used.

    Each step: t' = (1 - alpha) (C^T t + (1 - row_mass) . t * p) + alpha p, which
    is EigenTrust with every row's missing mass sent to the pre-trusted. t stays a
    distribution (sums to 1) at every step.
    """
    params.validate()
    if p.shape != (c.n,) or c.n == 0:
        raise ValueError("p must have one entry per peer, and there must be peers")
    if np.any(p < 0) or not np.isclose(p.sum(), 1.0):
        raise ValueError("p must be a distribution (non-negative, sums to 1)")
    t = p.copy() if start is None else start.astype(np.float64, copy=True)
    s = t.sum()
    t = p.copy() if s <= 0 else t / s
    alpha = params.alpha
    leak = 1.0 - c.row_mass
    for it in range(1, params.max_iterations + 1):
        flowed = np.bincount(c.dst, weights=c.val * t[c.src], minlength=c.n)
        nxt = (1.0 - alpha) * (flowed + float(leak @ t) * p) + alpha * p
        delta = float(np.abs(nxt - t).sum())
        t = nxt
        if delta < params.epsilon:
            return t, it
    return t, params.max_iterations


class GlobalTrust:
    """Keeps the last vector so the next computation starts from it."""

    def __init__(self, params: EigenTrustParams) -> None:
        params.validate()
        self.params = params
        self.peers: list[bytes] = []
        self.vector: Vector = np.zeros(0)
        self.last_iterations = 0

    def update(
        self,
        rows: Mapping[bytes, Mapping[bytes, float]],
        pretrusted: Mapping[bytes, float],
        credibility: Mapping[bytes, float] | None = None,
        peers: list[bytes] | None = None,
    ) -> dict[bytes, float]:
        """Recompute from the current rows; returns peer -> trust (sums to 1)."""
        order = list(peers) if peers is not None else self._peers_of(rows, pretrusted)
        index = {q: i for i, q in enumerate(order)}
        p = np.zeros(len(order))
        for q, w in pretrusted.items():
            if q in index and w > 0:
                p[index[q]] = w
        if p.sum() <= 0:
            p[:] = 1.0  # no pre-trusted peer known: fall back to uniform (plain EigenTrust)
        p /= p.sum()
        start = None
        if self.peers:
            old = {q: i for i, q in enumerate(self.peers)}
            start = np.array([self.vector[old[q]] if q in old else 0.0 for q in order])
        c = build_rows(index, rows, credibility if self.params.credibility else None)
        t, self.last_iterations = power_iteration(c, p, self.params, start)
        self.peers, self.vector = order, t
        return dict(zip(order, t.tolist(), strict=True))

    def units(self) -> dict[bytes, float]:
        """Trust in uniform units: 1.0 = the average over peers anyone trusts at all.

        Peers with no trust do not dilute the unit, so a thousand sybils nobody
        trusts leave every honest peer's weight exactly as it was.
        """
        positive = int(np.count_nonzero(self.vector > 0))
        return {
            q: float(v) * positive for q, v in zip(self.peers, self.vector, strict=True) if v > 0
        }

    @staticmethod
    def _peers_of(
        rows: Mapping[bytes, Mapping[bytes, float]], pretrusted: Mapping[bytes, float]
    ) -> list[bytes]:
        seen: dict[bytes, None] = {}
        for q, row in rows.items():
            seen.setdefault(q)
            for r in row:
                seen.setdefault(r)
        for q in pretrusted:
            seen.setdefault(q)
        return list(seen)
