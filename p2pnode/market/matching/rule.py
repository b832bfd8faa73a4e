"""SONM's Market.OpenDeal rule for one (BID, ASK) pair, written plainly.

This is the definition the index must agree with: the index (index.py) answers the
same question for a whole book without looking at every ASK, and `explain` counts
how many ASKs each named constraint rules out. Having the rule once, readable, is
what lets the property tests and the reverse direction (a new ASK against the few
open BIDs a node holds) share it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from gossip.messages import ZERO_ADDRESS
from gossip.orders import BENCHMARK_NAMES

RatingLookup = Callable[[bytes], int]
"""An author's rating in basis points (0..10000); injected, so the core stays pure."""

CONSTRAINTS: tuple[str, ...] = (
    "price",
    "duration",
    *BENCHMARK_NAMES,
    "network",
    "counterparty",
    "blacklist",
    "rating",
)
"""Every constraint `failures` and `explain` name, in the order they report them."""


class OrderView(Protocol):
    """What matching reads from an order: gossip.orders.Order, or a plain projection."""

    @property
    def author(self) -> bytes: ...
    @property
    def price_per_hour(self) -> int: ...
    @property
    def duration(self) -> int: ...
    @property
    def benchmarks(self) -> Sequence[int]: ...
    @property
    def network(self) -> int: ...
    @property
    def counterparty(self) -> bytes: ...
    @property
    def blacklist(self) -> Sequence[bytes]: ...
    @property
    def min_rating(self) -> int: ...
    @property
    def valid_until(self) -> int: ...


def no_ratings(_author: bytes) -> int:
    """The rating lookup of a node that knows no ratings: everyone is at 0."""
    return 0


def failures(bid: OrderView, ask: OrderView, rating: RatingLookup = no_ratings) -> list[str]:
    """The constraints (names from CONSTRAINTS) that keep `ask` from serving `bid`.

    Counterparty, blacklist and rating hold both ways: each order may name the one
    address it deals with, the addresses it never deals with, and the rating the
    other side's author must reach.
    """
    out: list[str] = []
    if ask.price_per_hour > bid.price_per_hour:
        out.append("price")
    if ask.duration < bid.duration:
        out.append("duration")
    for name, offered, needed in zip(BENCHMARK_NAMES, ask.benchmarks, bid.benchmarks, strict=True):
        if offered < needed:
            out.append(name)
    if int(bid.network) & ~int(ask.network):
        out.append("network")
    if (bid.counterparty != ZERO_ADDRESS and ask.author != bid.counterparty) or (
        ask.counterparty != ZERO_ADDRESS and bid.author != ask.counterparty
    ):
        out.append("counterparty")
    if ask.author in bid.blacklist or bid.author in ask.blacklist:
        out.append("blacklist")
    if (bid.min_rating and rating(ask.author) < bid.min_rating) or (
        ask.min_rating and rating(bid.author) < ask.min_rating
    ):
        out.append("rating")
    return out


def matches(bid: OrderView, ask: OrderView, rating: RatingLookup = no_ratings) -> bool:
    """Whether `ask` can serve `bid` under every constraint."""
    return not failures(bid, ask, rating)
