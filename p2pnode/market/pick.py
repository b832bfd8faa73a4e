"""Which ASK a BID takes: SONM's Market.OpenDeal rule as a plain check over a list.

The daemon matches through the index (p2pnode.market.matching.AskIndex); this
scan over the SQLite book is its fallback for a BID whose index winner is in the
refusal cooldown, and the readable reference the tests check. The
rule: ask.price <= bid.price, ask.duration >= bid.duration, every ask benchmark >=
the bid's, the bid's network flags a subset of the ask's, each side's counterparty
(if set) is the other's author, neither author is on the other's blacklist, each side's
`min_rating` is reached by the other's author (through the rating lookup; with
none, every author is at 0); among the asks that pass, the lowest price wins, then
the earliest (smallest valid_from, then the id, so the answer never depends on the
list's order).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from gossip.orders import BENCHMARK_NAMES, Order, Side
from p2pnode.market.matching.rule import RatingLookup, failures, no_ratings


class AskLike(Protocol):
    """What the rule reads of a booked ASK: the signed order and its id."""

    @property
    def order(self) -> Order: ...

    @property
    def order_id(self) -> bytes: ...


A = TypeVar("A", bound=AskLike)


def why_not(bid: Order, ask: Order, rating: RatingLookup = no_ratings) -> str | None:
    """The first rule `ask` breaks for `bid`, in words; None when it matches.

    The constraints are the matching core's (`p2pnode.market.matching.failures`),
    so a BID gets the same answer from this scan and from the index; a benchmark
    is named "benchmark NAME", and a node's own ASK never serves its own BID.
    """
    if ask.side is not Side.ASK or bid.side is not Side.BID:
        return "side"
    failed = failures(bid, ask, rating)
    if failed:
        first = failed[0]
        return f"benchmark {first}" if first in BENCHMARK_NAMES else first
    if ask.author == bid.author:
        return "own order"
    return None


def find_best_ask(bid: Order, asks: Iterable[A], rating: RatingLookup = no_ratings) -> A | None:
    """The ASK `bid` should take: lowest price, then earliest, then smallest id."""
    best: A | None = None
    best_key: tuple[int, int, bytes] | None = None
    for entry in asks:
        ask = entry.order
        if why_not(bid, ask, rating) is not None:
            continue
        key = (ask.price_per_hour, ask.valid_from, entry.order_id)
        if best_key is None or key < best_key:
            best, best_key = entry, key
    return best
