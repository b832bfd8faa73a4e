"""Local trust: how often each answerer's claims matched this node's own evidence.

An answer about a hub we have evidence on is a test of the answerer: it agrees
or it is contradicted. Trust is `max(0, agreements - penalty x contradictions)`,
so one caught lie undoes `penalty` honest answers, and a peer never tested has
trust 0: a fresh identity moves nothing, however many of it there are. A peer
whose trust fell to 0 by contradictions is *distrusted*: its weight is 0 even
where global trust (what others think of it) says otherwise, because our own
evidence outranks hearsay about hearsay.

The table is capped; when full, the peer with the lowest trust is evicted. An
evicted peer comes back as fresh, which weighs the same as distrusted (0), so
eviction cannot be used to launder a liar.
"""

from __future__ import annotations

from collections.abc import Mapping

from reputation.evidence import Verdict
from reputation.params import TrustParams


class LocalTrust:
    def __init__(self, params: TrustParams) -> None:
        params.validate()
        self.params = params
        self._counts: dict[bytes, list[int]] = {}  # peer -> [agreements, contradictions]
        self._total = 0.0  # sum of values, for uniform units
        self._positive = 0  # peers with value > 0

    def __len__(self) -> int:
        return len(self._counts)

    def _value(self, c: list[int]) -> float:
        return max(0.0, c[0] - self.params.contradiction_penalty * c[1])

    def value(self, peer: bytes) -> float:
        c = self._counts.get(peer)
        return self._value(c) if c is not None else 0.0

    def contradicted(self, peer: bytes) -> bool:
        """Caught lying, and not redeemed by enough agreement since."""
        c = self._counts.get(peer)
        return c is not None and c[1] > 0 and self._value(c) == 0.0

    def lookup(self, peer: bytes) -> float | None:
        """One lookup for the weight: None if never tested, -1.0 if distrusted, else value."""
        c = self._counts.get(peer)
        if c is None:
            return None
        v = c[0] - self.params.contradiction_penalty * c[1]
        if v <= 0:
            return -1.0 if c[1] else 0.0
        return v

    def scale(self) -> float:
        """value x scale = uniform units (0 when we trust no one)."""
        if self._positive == 0 or self._total <= 0:
            return 0.0
        return self._positive / self._total

    def counts(self, peer: bytes) -> tuple[int, int]:
        c = self._counts.get(peer)
        return (c[0], c[1]) if c is not None else (0, 0)

    def record(self, peer: bytes, agreed: bool) -> None:
        c = self._counts.get(peer)
        if c is None:
            if len(self._counts) >= self.params.max_local_peers:
                self._evict()
            c = self._counts[peer] = [0, 0]
        before = self._value(c)
        c[0 if agreed else 1] += 1
        after = self._value(c)
        self._total += after - before
        self._positive += (after > 0) - (before > 0)

    def _evict(self) -> None:
        victim = min(self._counts, key=lambda p: self._value(self._counts[p]))
        before = self._value(self._counts.pop(victim))
        self._total -= before
        self._positive -= before > 0

    def table(self) -> dict[bytes, tuple[int, int]]:
        """Every peer's (agreements, contradictions): what a store keeps."""
        return {p: (c[0], c[1]) for p, c in self._counts.items()}

    def load(self, table: Mapping[bytes, tuple[int, int]]) -> None:
        """Replace the counts with a stored table (a restart), up to the cap."""
        self._counts = {}
        self._total = 0.0
        self._positive = 0
        for peer, (agreed, contradicted) in list(table.items())[: self.params.max_local_peers]:
            c = self._counts[peer] = [int(agreed), int(contradicted)]
            v = self._value(c)
            self._total += v
            self._positive += v > 0

    def units(self, peer: bytes) -> float:
        """Trust in uniform units: 1.0 = the mean over the peers we trust at all."""
        if self._positive == 0 or self._total <= 0:
            return 0.0
        return self.value(peer) * self._positive / self._total

    def trusted_peers(self) -> list[bytes]:
        """Peers we give local trust > 0."""
        return [p for p, c in self._counts.items() if self._value(c) > 0]

    def row(self) -> dict[bytes, float]:
        """Normalised local trust (sums to 1; empty if we trust no one): our EigenTrust row."""
        if self._total <= 0:
            return {}
        return {p: v / self._total for p, c in self._counts.items() if (v := self._value(c)) > 0}


def similarity(
    ours: Mapping[bytes, Verdict], theirs: Mapping[bytes, Verdict], unknown: float = 0.0
) -> float:
    """EigenTrust++ feedback similarity: share of the hubs both rated on which they agree.

    `unknown` when nothing overlaps (default 0.0: a peer whose opinions cannot be
    checked gets no say in how trust spreads).
    """
    common = [h for h in theirs if h in ours]
    if not common:
        return unknown
    same = sum(1 for h in common if ours[h] == theirs[h])
    return same / len(common)
