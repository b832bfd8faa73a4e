"""Which ASK a BID takes: SONM's Market.OpenDeal rule as a plain check over a list.

`find_best_ask(bid, asks)` is the one call the consumer's side of the deal flow
makes; an indexed matcher can replace this module behind the same signature. The
rule: ask.price <= bid.price, ask.duration >= bid.duration, every ask benchmark >=
the bid's, the bid's network flags a subset of the ask's, each side's counterparty
(if set) is the other's author, neither author is on the other's blacklist; among
the asks that pass, the lowest price wins, then the earliest (smallest valid_from,
then the id, so the answer never depends on the list's order). Ratings are not
known to this node yet, so `min_rating` is not checked here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from gossip.messages import ZERO_ADDRESS
from gossip.orders import BENCHMARK_NAMES, Order, Side


class AskLike(Protocol):
    """What the rule reads of a booked ASK: the signed order and its id."""

    @property
    def order(self) -> Order: ...

    @property
    def order_id(self) -> bytes: ...


A = TypeVar("A", bound=AskLike)


def why_not(bid: Order, ask: Order) -> str | None:
    """The first rule `ask` breaks for `bid`, in words; None when it matches."""
    if ask.side is not Side.ASK or bid.side is not Side.BID:
        return "side"
    if ask.price_per_hour > bid.price_per_hour:
        return "price"
    if ask.duration < bid.duration:
        return "duration"
    for i, (offered, needed) in enumerate(zip(ask.benchmarks, bid.benchmarks, strict=True)):
        if offered < needed:
            return f"benchmark {BENCHMARK_NAMES[i]}"
    if not ask.network.covers(bid.network):
        return "network"
    if bid.counterparty != ZERO_ADDRESS and bid.counterparty != ask.author:
        return "counterparty"
    if ask.counterparty != ZERO_ADDRESS and ask.counterparty != bid.author:
        return "counterparty"
    if ask.author in bid.blacklist or bid.author in ask.blacklist:
        return "blacklist"
    if ask.author == bid.author:
        return "own order"
    return None


def find_best_ask(bid: Order, asks: Iterable[A]) -> A | None:
    """The ASK `bid` should take: lowest price, then earliest, then smallest id."""
    best: A | None = None
    best_key: tuple[int, int, bytes] | None = None
    for entry in asks:
        ask = entry.order
        if why_not(bid, ask) is not None:
            continue
        key = (ask.price_per_hour, ask.valid_from, entry.order_id)
        if best_key is None or key < best_key:
            best, best_key = entry, key
    return best
