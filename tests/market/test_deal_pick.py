"""The consumer's choice of ASK: SONM's rule, lowest price then earliest, and a
random book checked against a brute-force reading of the rule."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from gossip.orders import NetworkType, Order, Side
from p2pnode.market.pick import find_best_ask, why_not

BUYER, SELLER, OTHER = b"\x01" * 20, b"\x02" * 20, b"\x03" * 20


@dataclass(frozen=True)
class Entry:
    order: Order
    order_id: bytes


def _order(side: Side, author: bytes = SELLER, **kw: object) -> Order:
    args: dict[str, object] = {
        "author": author,
        "side": side,
        "price_per_hour": 3600,
        "duration": 3600,
        "nonce": 1,
        "valid_from": 100,
        "valid_until": 1_000,
        "cpu_cores": 2,
        "ram_bytes": 2**30,
    }
    args.update(kw)
    return Order.create(**args)  # type: ignore[arg-type]


def _bid(**kw: object) -> Order:
    return _order(Side.BID, BUYER, **kw)


def test_each_rule_names_itself() -> None:
    bid = _bid(price_per_hour=7200, duration=600, network=NetworkType.OUTBOUND)
    ok = _order(Side.ASK, network=NetworkType.INBOUND_OUTBOUND)
    assert why_not(bid, ok) is None
    cases = {
        "price": _order(Side.ASK, price_per_hour=7201, network=NetworkType.OUTBOUND),
        "duration": _order(Side.ASK, duration=599, network=NetworkType.OUTBOUND),
        "benchmark cpu-cores": _order(Side.ASK, cpu_cores=1, network=NetworkType.OUTBOUND),
        "network": _order(Side.ASK),
        "counterparty": _order(Side.ASK, network=NetworkType.OUTBOUND, counterparty=OTHER),
        "blacklist": _order(Side.ASK, network=NetworkType.OUTBOUND, blacklist=(BUYER,)),
    }
    for reason, ask in cases.items():
        assert why_not(bid, ask) == reason
    assert why_not(_bid(counterparty=OTHER), ok) == "counterparty"
    assert why_not(_bid(blacklist=(SELLER,)), ok) == "blacklist"
    assert why_not(_bid(), _order(Side.ASK, author=BUYER)) == "own order"
    rated = _bid(min_rating=5000)
    assert why_not(rated, ok) == "rating"  # nobody has a rating here
    assert why_not(rated, ok, lambda author: 6000 if author == SELLER else 0) is None
    assert why_not(bid, _order(Side.ASK, min_rating=1)) == "network"  # first one named
    assert why_not(_bid(), _order(Side.ASK, min_rating=1)) == "rating"


def test_lowest_price_then_earliest_whatever_the_list_order() -> None:
    bid = _bid(price_per_hour=10_000)
    asks = [
        Entry(_order(Side.ASK, price_per_hour=7200, valid_from=200), b"\x05" * 32),
        Entry(_order(Side.ASK, price_per_hour=3600, valid_from=300), b"\x04" * 32),
        Entry(_order(Side.ASK, price_per_hour=3600, valid_from=150), b"\x06" * 32),
        Entry(_order(Side.ASK, price_per_hour=3600, valid_from=150, nonce=2), b"\x03" * 32),
        Entry(_order(Side.ASK, price_per_hour=0, cpu_cores=1), b"\x01" * 32),  # too small
    ]
    for seed in range(5):
        random.Random(seed).shuffle(asks)
        best = find_best_ask(bid, asks)
        assert best is not None and best.order_id == b"\x03" * 32
    assert find_best_ask(_bid(price_per_hour=0), asks) is None


@pytest.mark.parametrize("seed", range(20))
def test_random_books_agree_with_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    nets = list(NetworkType)
    bid = _bid(
        price_per_hour=rng.randrange(0, 10) * 3600,
        duration=rng.randrange(0, 4) * 600,
        cpu_cores=rng.randrange(0, 4),
        network=rng.choice(nets),
        min_rating=rng.choice((0, 0, 0, 5000)),
    )
    asks = [
        Entry(
            _order(
                Side.ASK,
                author=rng.choice((SELLER, OTHER)),
                price_per_hour=rng.randrange(0, 10) * 3600,
                duration=rng.randrange(0, 4) * 600,
                cpu_cores=rng.randrange(0, 4),
                network=rng.choice(nets),
                valid_from=rng.randrange(100, 110),
                counterparty=rng.choice((bytes(20), BUYER, OTHER)),
                min_rating=rng.choice((0, 0, 0, 100)),
            ),
            rng.randbytes(32),
        )
        for _ in range(60)
    ]
    fits = [
        a
        for a in asks
        if a.order.price_per_hour <= bid.price_per_hour
        and a.order.duration >= bid.duration
        and a.order.cpu_cores >= bid.cpu_cores
        and a.order.ram_bytes >= bid.ram_bytes
        and (bid.network & ~a.order.network) == 0
        and a.order.counterparty in (bytes(20), BUYER)
        # no rating known: every author is at 0, as in the matching core
        and a.order.min_rating == 0
        and bid.min_rating == 0
    ]
    expected = min(
        fits, key=lambda a: (a.order.price_per_hour, a.order.valid_from, a.order_id), default=None
    )
    assert find_best_ask(bid, asks) == expected
