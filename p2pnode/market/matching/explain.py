"""Why a BID does or does not match: per constraint, how many ASKs it rules out.

The answer to "why don't I get a match?": `ruled_out[c]` counts the ASKs that fail
constraint c (an ASK failing three constraints counts under all three), and
`only[c]` those that fail c and nothing else, the ASKs that relaxing c alone would
bring in. `winner` is the ASK the BID gets now (the same one `AskIndex.match`
returns). Pure: a function of the index, the BID and the rating lookup. It reads
every live ASK (numpy, column at a time), so it costs milliseconds on a large book
where a match costs microseconds; it answers a user, not the matching loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gossip.orders import BENCHMARK_NAMES
from p2pnode.market.matching.columns import DURATION_DIM, FLAG_BLACKLIST, Columns, Mask, Rows
from p2pnode.market.matching.index import AskIndex, Match, Query
from p2pnode.market.matching.rule import CONSTRAINTS, OrderView, RatingLookup, no_ratings


@dataclass(frozen=True)
class Explanation:
    total: int  # live ASKs in the book
    matching: int  # ASKs that pass every constraint
    ruled_out: dict[str, int]  # constraint -> ASKs failing it (CONSTRAINTS order)
    only: dict[str, int]  # constraint -> ASKs failing it and nothing else
    winner: Match | None

    def lines(self) -> list[str]:
        """A plain-text report, one constraint a line, the worst first."""
        out = [f"{self.total} ASKs, {self.matching} match"]
        ranked = sorted(CONSTRAINTS, key=lambda c: -self.ruled_out[c])
        for c in ranked:
            if self.ruled_out[c]:
                out.append(f"{c}: rules out {self.ruled_out[c]} (alone: {self.only[c]})")
        if self.winner is None:
            out.append("no ASK wins")
        else:
            w = self.winner
            out.append(f"wins: {w.order_id.hex()} by 0x{w.author.hex()} at {w.price_per_hour}/h")
        return out


def explain(index: AskIndex, bid: OrderView, rating: RatingLookup = no_ratings) -> Explanation:
    q = index.prepare(bid, rating)
    ruled = dict.fromkeys(CONSTRAINTS, 0)
    only = dict.fromkeys(CONSTRAINTS, 0)
    total = matching = 0
    best: tuple[int, int, int, Columns] | None = None
    for cols, rows in index.parts():
        if not len(rows):
            continue
        fails = _fail_masks(index, cols, rows, q)
        stacked = np.stack([fails[c] for c in CONSTRAINTS])
        nfail = stacked.sum(axis=0)
        alone = nfail == 1
        for i, c in enumerate(CONSTRAINTS):
            ruled[c] += int(stacked[i].sum())
            only[c] += int((stacked[i] & alone).sum())
        ok = rows[nfail == 0]
        total += len(rows)
        matching += len(ok)
        if len(ok):
            price = (cols.price_hi[ok].astype(object) << 64) | cols.price_lo[ok].astype(object)
            seq = cols.seq[ok].astype(object)
            i = min(range(len(ok)), key=lambda k: (price[k], seq[k]))
            cand = (int(price[i]), int(seq[i]), int(ok[i]), cols)
            if best is None or cand[:2] < best[:2]:
                best = cand
    winner = None
    if best is not None:
        price, seq, row, cols = best
        winner = Match(
            order_id=cols.ids[row].tobytes(),
            author=index.address(int(cols.author[row])),
            price_per_hour=price,
            seq=seq,
        )
    return Explanation(total, matching, ruled, only, winner)


def _fail_masks(index: AskIndex, cols: Columns, rows: Rows, q: Query) -> dict[str, Mask]:
    """Per constraint, which of `rows` fail it."""
    n = len(rows)
    none = np.zeros(n, np.bool_)
    out: dict[str, Mask] = {"price": ~cols.price_at_most(q.hi, q.lo, rows)}
    out["duration"] = cols.duration[rows] < q.duration if q.duration else none
    needs = dict(d for d in q.dim_reqs if d[0] != DURATION_DIM)
    for d, name in enumerate(BENCHMARK_NAMES):
        out[name] = cols.bench[d, rows] < np.uint64(needs[d]) if d in needs else none
    out["network"] = (cols.net[rows] & q.net) != q.net
    author = cols.author[rows]
    cp = cols.cp[rows]
    counterparty = (cp != 0) & (cp != q.author_idx)
    if q.cp:
        counterparty |= author != q.cp  # q.cp == -1 (unknown address) matches nobody
    out["counterparty"] = counterparty
    black = np.isin(author, q.black) if len(q.black) else none.copy()
    for k in np.flatnonzero((cols.flags[rows] & FLAG_BLACKLIST) != 0).tolist():
        if q.author in index.blacklist_of(int(cols.seq[rows[k]])):
            black[k] = True
    out["blacklist"] = black
    mr = cols.min_rating[rows]
    rating_fail = (mr > 0) & (mr > q.author_rating()) if (mr > 0).any() else none.copy()
    if q.min_rating:
        authors, inverse = np.unique(author, return_inverse=True)
        ratings = np.array(
            [q.rating_of(int(a), index.address(int(a))) for a in authors.tolist()], np.int64
        )
        rating_fail |= ratings[inverse] < q.min_rating
    out["rating"] = rating_fail
    return out
