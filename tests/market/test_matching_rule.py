"""Every constraint of the matching rule, one at a time, through the index and `failures`."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from gossip.messages import ZERO_ADDRESS
from gossip.orders import BENCHMARK_NAMES, NetworkType, Order, Side, make_benchmarks
from p2pnode.market.matching import (
    CONSTRAINTS,
    PRICE_LIMIT,
    AskIndex,
    CallerError,
    ConfigError,
    IndexParams,
    RemoteOrderError,
    explain,
    failures,
)

SUPPLIER = b"\x01" * 20
OTHER_SUPPLIER = b"\x02" * 20
CONSUMER = b"\x0c" * 20
STRANGER = b"\x0d" * 20


def oid(n: int) -> bytes:
    return hashlib.sha256(n.to_bytes(8, "big")).digest()


def order(side: Side, nonce: int = 1, **kw: Any) -> Order:
    fields: dict[str, Any] = {
        "author": SUPPLIER if side == Side.ASK else CONSUMER,
        "side": side,
        "price_per_hour": 100,
        "duration": 3600,
        "nonce": nonce,
        "valid_from": 1000,
        "valid_until": 5000,
    }
    bench = kw.pop("benchmarks", None)
    fields.update(kw)
    made = Order.create(**fields)
    if bench:  # Order.create's named resources (cpu_cores=0...) override the mapping
        made = dataclasses.replace(made, benchmarks=make_benchmarks(bench))
    return made


def ask(nonce: int = 1, **kw: Any) -> Order:
    return order(Side.ASK, nonce, **kw)


def bid(**kw: Any) -> Order:
    return order(Side.BID, **kw)


def winner(asks: list[Order], b: Order, rating: Callable[[bytes], int] = lambda a: 0) -> int | None:
    """The position in `asks` of the ASK the index picks for `b`, or None."""
    idx = AskIndex(IndexParams(buffer_rows=16))
    for i, a in enumerate(asks):
        assert idx.add(oid(i), a)
    m = idx.match(b, rating)
    # the same answer from the buffer and after everything is sorted into segments
    idx2 = AskIndex(IndexParams(buffer_rows=16))
    for i, a in enumerate(asks):
        idx2.add(oid(i), a)
    for j in range(16):
        idx2.add(oid(10_000 + j), ask(10_000 + j, price_per_hour=PRICE_LIMIT - 1))
    m2 = idx2.match(b, rating)
    assert (m is None) == (m2 is None) and (m is None or m2 is None or m.order_id == m2.order_id)
    expl = explain(idx, b, rating)
    assert expl.winner == m
    if m is None:
        return None
    return next(i for i in range(len(asks)) if oid(i) == m.order_id)


def only_failure(a: Order, b: Order, rating: Callable[[bytes], int] = lambda x: 0) -> list[str]:
    return failures(b, a, rating)


def test_price_ask_at_most_the_bid() -> None:
    assert winner([ask(price_per_hour=100)], bid(price_per_hour=100)) == 0
    assert winner([ask(price_per_hour=101)], bid(price_per_hour=100)) is None
    assert only_failure(ask(price_per_hour=101), bid(price_per_hour=100)) == ["price"]


def test_prices_beyond_64_bits_compare_exactly() -> None:
    big = 2**70
    asks = [ask(1, price_per_hour=big + 1), ask(2, price_per_hour=big), ask(3, price_per_hour=5)]
    assert winner(asks[:2], bid(price_per_hour=big)) == 1
    assert winner(asks[:1], bid(price_per_hour=big)) is None
    assert winner(asks, bid(price_per_hour=2**256 - 1)) == 2  # any price: the cheapest


def test_duration_ask_at_least_the_bid() -> None:
    assert winner([ask(duration=3600)], bid(duration=3600)) == 0
    assert winner([ask(duration=3599)], bid(duration=3600)) is None
    assert only_failure(ask(duration=0), bid(duration=1)) == ["duration"]
    assert winner([ask(duration=0)], bid(duration=0)) == 0  # spot meets spot


@pytest.mark.parametrize("name", BENCHMARK_NAMES)
def test_every_benchmark_ask_at_least_the_bid(name: str) -> None:
    need = 7 * 2**20
    b = bid(benchmarks={name: need})
    assert winner([ask(benchmarks={name: need})], b) == 0
    assert winner([ask(benchmarks={name: need + 1})], b) == 0
    assert winner([ask(benchmarks={name: need - 1})], b) is None
    assert only_failure(ask(benchmarks={name: need - 1}), b) == [name]
    # a requirement above anything offered, and a zero requirement
    assert winner([ask(benchmarks={name: 3})], bid(benchmarks={name: 2**64 - 1})) is None
    assert winner([ask()], bid()) == 0


def test_benchmarks_must_all_hold_at_once() -> None:
    b = bid(cpu_cores=4, ram_bytes=8 * 2**30, gpu_count=1)
    asks = [
        ask(1, price_per_hour=10, cpu_cores=8, ram_bytes=4 * 2**30, gpu_count=1),
        ask(2, price_per_hour=20, cpu_cores=2, ram_bytes=16 * 2**30, gpu_count=1),
        ask(3, price_per_hour=30, cpu_cores=4, ram_bytes=8 * 2**30, gpu_count=0),
        ask(4, price_per_hour=40, cpu_cores=4, ram_bytes=8 * 2**30, gpu_count=2),
    ]
    assert winner(asks, b) == 3


@pytest.mark.parametrize(
    ("offered", "needed", "ok"),
    [
        (NetworkType.NONE, NetworkType.NONE, True),
        (NetworkType.OUTBOUND, NetworkType.NONE, True),
        (NetworkType.INBOUND_OUTBOUND, NetworkType.OUTBOUND, True),
        (NetworkType.INBOUND_OUTBOUND, NetworkType.INBOUND_OUTBOUND, True),
        (NetworkType.NONE, NetworkType.OUTBOUND, False),
        (NetworkType.OUTBOUND, NetworkType.INBOUND_OUTBOUND, False),
        # a flag gossip does not define yet (bit 4: no bitmap of its own) is still checked
        (NetworkType.INBOUND_OUTBOUND, 4 | NetworkType.OUTBOUND, False),
        (4 | NetworkType.INBOUND_OUTBOUND, 4 | NetworkType.OUTBOUND, True),
    ],
)
def test_network_flags_of_the_bid_a_subset_of_the_ask(offered: int, needed: int, ok: bool) -> None:
    a = dataclasses.replace(ask(), network=offered)  # past Order.create's check of the flags
    b = dataclasses.replace(bid(), network=needed)
    assert (winner([a], b) == 0) is ok
    assert only_failure(a, b) == ([] if ok else ["network"])


def test_counterparty_named_by_the_bid() -> None:
    asks = [ask(1, price_per_hour=10), ask(2, author=OTHER_SUPPLIER, price_per_hour=50)]
    assert winner(asks, bid(counterparty=OTHER_SUPPLIER)) == 1
    assert winner(asks, bid(counterparty=STRANGER)) is None  # an address with no ASK here
    assert only_failure(asks[0], bid(counterparty=OTHER_SUPPLIER)) == ["counterparty"]


def test_counterparty_named_by_the_ask() -> None:
    a = ask(counterparty=CONSUMER)
    assert winner([a], bid()) == 0
    assert winner([a], bid(author=STRANGER)) is None
    assert only_failure(a, bid(author=STRANGER)) == ["counterparty"]


def test_blacklist_both_ways() -> None:
    asks = [ask(1, price_per_hour=10), ask(2, author=OTHER_SUPPLIER, price_per_hour=50)]
    assert winner(asks, bid(blacklist=(SUPPLIER,))) == 1
    assert winner(asks, bid(blacklist=(SUPPLIER, OTHER_SUPPLIER))) is None
    assert winner(asks, bid(blacklist=(STRANGER,))) == 0  # unknown addresses change nothing
    refusing = ask(3, price_per_hour=1, blacklist=(CONSUMER,))
    assert winner([refusing, *asks], bid()) == 1
    assert winner([refusing, *asks], bid(author=STRANGER)) == 0
    assert only_failure(refusing, bid()) == ["blacklist"]


def test_rating_both_ways() -> None:
    ratings = {SUPPLIER: 9000, OTHER_SUPPLIER: 4000, CONSUMER: 5000}

    def rating(a: bytes) -> int:
        return ratings.get(a, 0)

    asks = [ask(1, author=OTHER_SUPPLIER, price_per_hour=10), ask(2, price_per_hour=50)]
    assert winner(asks, bid(min_rating=4000), rating) == 0
    assert winner(asks, bid(min_rating=4001), rating) == 1
    assert winner(asks, bid(min_rating=9001), rating) is None
    picky = ask(3, price_per_hour=1, min_rating=5001)
    assert winner([picky, *asks], bid(), rating) == 1
    assert winner([picky, *asks], bid(author=SUPPLIER), rating) == 0  # rated 9000
    assert only_failure(picky, bid(), rating) == ["rating"]
    assert winner([picky], bid()) is None  # no lookup: everyone is rated 0


def test_best_price_first_then_earliest() -> None:
    asks = [ask(1, price_per_hour=30), ask(2, price_per_hour=20), ask(3, price_per_hour=20)]
    assert winner(asks, bid()) == 1
    asks = [ask(i, price_per_hour=20, author=bytes([i]) * 20) for i in range(1, 40)]
    assert winner(asks, bid()) == 0


def test_cancel_takes_an_ask_out_and_a_late_copy_stays_out() -> None:
    idx = AskIndex(IndexParams(buffer_rows=16))
    cheap, dear = ask(1, price_per_hour=10), ask(2, price_per_hour=20)
    idx.add(oid(1), cheap)
    idx.add(oid(2), dear)
    m = idx.match(bid())
    assert m is not None and m.order_id == oid(1)
    assert idx.cancel(oid(1), SUPPLIER)
    m = idx.match(bid())
    assert m is not None and m.order_id == oid(2) and len(idx) == 1
    assert not idx.add(oid(1), cheap)  # gossip delivers the order again: still cancelled
    assert not idx.cancel(oid(1))
    # a cancel that arrives before its order
    assert not idx.cancel(oid(3))
    assert not idx.add(oid(3), ask(3, price_per_hour=1))
    m = idx.match(bid())
    assert m is not None and m.order_id == oid(2)


def test_cancel_signed_by_someone_else_is_the_peers_fault() -> None:
    idx = AskIndex()
    idx.add(oid(1), ask())
    with pytest.raises(RemoteOrderError, match="not by its author"):
        idx.cancel(oid(1), STRANGER)
    assert oid(1) in idx and len(idx) == 1


def test_duplicates_are_dropped() -> None:
    idx = AskIndex(IndexParams(buffer_rows=16))
    assert idx.add(oid(1), ask())
    assert not idx.add(oid(1), ask())
    for i in range(2, 40):  # push the first into a segment
        idx.add(oid(i), ask(i))
    assert not idx.add(oid(1), ask())
    assert len(idx) == 39


def test_duplicates_are_dropped_however_the_id_filters_answer() -> None:
    """The index-wide id filter and the segments' filters only say "surely not here".

    Ids that share the words the filters hash (the last 24 bytes) are all "maybe"
    to both, and are told apart by the segments' exact lookup; thousands of ids
    make the index-wide filter rebuild itself several times on the way.
    """
    idx = AskIndex(IndexParams(buffer_rows=256))
    tail = oid(0)[8:]
    twins = [i.to_bytes(8, "big") + tail for i in range(300)]  # differ in the first word only
    ids = twins + [oid(i) for i in range(1, 6000)]
    template = ask()
    for k, order_id in enumerate(ids):
        assert idx.add(order_id, dataclasses.replace(template, nonce=k + 1))
    assert len(idx) == len(ids) and len(idx.segment_sizes()) >= 1
    for k in range(0, len(ids), 7):  # every one refused again, wherever it sits
        assert not idx.add(ids[k], dataclasses.replace(template, nonce=k + 1))
        assert ids[k] in idx
    assert (b"\xff" * 8 + tail) not in idx and not idx.cancel(b"\xff" * 8 + tail)
    for order_id in twins:
        assert idx.cancel(order_id, SUPPLIER)
    assert len(idx) == len(ids) - len(twins) and all(t not in idx for t in twins)


def test_expiry_at_the_end_of_the_window() -> None:
    idx = AskIndex(IndexParams(buffer_rows=16))
    for i in range(40):
        idx.add(oid(i), ask(i, price_per_hour=100 - i, valid_until=2000 + i))
    assert idx.expire(2000) == 0  # valid through valid_until
    assert idx.expire(2010) == 10
    m = idx.match(bid())
    assert m is not None and m.order_id == oid(39) and len(idx) == 30
    assert idx.expire(10**6) == 30 and idx.match(bid()) is None and len(idx) == 0
    assert not idx.add(oid(99), ask(99, valid_until=3000))  # already over
    assert idx.interned() == 0 and idx.segment_sizes() == []


def test_addresses_are_released_with_their_asks() -> None:
    idx = AskIndex(IndexParams(buffer_rows=16))
    for i in range(50):
        idx.add(oid(i), ask(i, author=bytes([i + 100]) * 20, counterparty=CONSUMER))
    assert idx.interned() == 51
    for i in range(50):
        assert idx.cancel(oid(i))
    assert idx.interned() == 0 and len(idx) == 0 and idx.segment_sizes() == []


def test_remembered_cancels_are_capped() -> None:
    idx = AskIndex(IndexParams(early_cancels=100))
    for i in range(1000):
        idx.cancel(oid(i))
    assert idx.remembered_cancels() == 100
    assert idx.add(oid(0), ask())  # the oldest was forgotten
    assert not idx.add(oid(999), ask(2))


def test_wrong_use_and_bad_orders_say_whose_fault() -> None:
    idx = AskIndex()
    with pytest.raises(CallerError, match="holds ASKs"):
        idx.add(oid(1), bid())
    with pytest.raises(CallerError, match="only a BID"):
        idx.match(ask())
    with pytest.raises(CallerError, match="32 bytes"):
        idx.add(b"short", ask())
    with pytest.raises(RemoteOrderError, match="price_per_hour must be in"):
        idx.add(oid(1), ask(price_per_hour=PRICE_LIMIT))
    too_long = dataclasses.replace(ask(), duration=2**32)
    with pytest.raises(RemoteOrderError, match="duration must be in"):
        idx.add(oid(2), too_long)
    short = dataclasses.replace(ask(), benchmarks=(1, 2))
    with pytest.raises(RemoteOrderError, match="13 benchmarks expected"):
        idx.add(oid(3), short)
    bench = list(ask().benchmarks)
    for i, (fields, why) in enumerate(
        [
            ({"benchmarks": tuple([-1, *bench[1:]])}, "benchmarks must be in"),
            ({"benchmarks": tuple([2**64, *bench[1:]])}, "benchmarks must be in"),
            ({"benchmarks": tuple([1.5, *bench[1:]])}, "integers"),
            ({"price_per_hour": -1}, "price_per_hour must be in"),
            ({"min_rating": 65_536}, "min_rating must be in"),
            ({"network": 256}, "network must be in"),
            ({"valid_until": -1}, "valid_until must be >= 0"),
        ]
    ):
        with pytest.raises(RemoteOrderError, match=why):
            idx.add(oid(10 + i), dataclasses.replace(ask(), **fields))
    assert len(idx) == 0 and idx.match(bid()) is None and idx.interned() == 0
    assert idx.add(oid(4), ask())  # and it goes on taking good ones
    m = idx.match(bid())
    assert m is not None and m.order_id == oid(4) and m.seq == 1  # refused ones took no seq


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("buffer_rows", 1),
        ("growth", 1),
        ("levels", 0),
        ("compact_ratio", 0.0),
        ("early_cancels", -1),
    ],
)
def test_parameters_out_of_bounds_are_named(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"{field} must be in"):
        IndexParams(**{field: value}).validate()  # type: ignore[arg-type]


def test_explain_counts_each_constraint_and_alone() -> None:
    out = NetworkType.OUTBOUND
    asks = [
        ask(1, price_per_hour=200, cpu_cores=8, network=out),  # price
        ask(2, price_per_hour=200, cpu_cores=1, network=out),  # price and cpu-cores
        ask(3, cpu_cores=1, network=out),  # cpu-cores
        ask(4, cpu_cores=8, network=NetworkType.NONE),  # network
        ask(5, cpu_cores=8, network=out, price_per_hour=90),  # wins
        ask(6, cpu_cores=8, network=out, duration=1),  # duration
    ]
    idx = AskIndex()
    for i, a in enumerate(asks):
        idx.add(oid(i), a)
    b = bid(price_per_hour=100, cpu_cores=4, network=out)
    e = explain(idx, b)
    assert e.total == 6 and e.matching == 1
    assert e.winner is not None and e.winner.order_id == oid(4)
    assert e.ruled_out["price"] == 2 and e.only["price"] == 1
    assert e.ruled_out["cpu-cores"] == 2 and e.only["cpu-cores"] == 1
    assert e.ruled_out["network"] == 1 and e.only["network"] == 1
    assert e.ruled_out["duration"] == 1 and e.only["duration"] == 1
    assert e.ruled_out["rating"] == 0 and e.ruled_out["gpu-count"] == 0
    assert set(e.ruled_out) == set(CONSTRAINTS)
    text = "\n".join(e.lines())
    assert "6 ASKs, 1 match" in text and "network: rules out 1 (alone: 1)" in text


def test_zero_address_counterparty_means_anyone() -> None:
    assert failures(bid(counterparty=ZERO_ADDRESS), ask()) == []
    assert make_benchmarks()[0] == 0


def test_price_bound_holds_inside_a_sorted_segment() -> None:
    """Cheap ASKs that fail, dear ones that pass: the BID's price must still stop the search."""
    idx = AskIndex(IndexParams(buffer_rows=16))
    for i in range(100):  # 6 full segments' worth, prices 0..99; only odd prices have 4 cores
        idx.add(oid(i), ask(i, price_per_hour=i, cpu_cores=4 if i % 2 else 1))
    assert len(idx.segment_sizes()) >= 1
    assert idx.match(bid(price_per_hour=0, cpu_cores=4)) is None
    m = idx.match(bid(price_per_hour=40, cpu_cores=4))
    assert m is not None and m.price_per_hour == 1
    for i in range(1, 41, 2):
        idx.cancel(oid(i))
    assert idx.match(bid(price_per_hour=40, cpu_cores=4)) is None
    m = idx.match(bid(price_per_hour=41, cpu_cores=4))
    assert m is not None and m.price_per_hour == 41


def test_index_memory_per_ask_stays_under_250_bytes() -> None:
    """The columns, bitmaps, id order and Bloom filters: about 216 bytes per ASK."""
    idx = AskIndex()
    template = ask(cpu_cores=8)
    for i in range(40_000):
        author = bytes([1 + i % 200]) * 20
        idx.add(oid(i), dataclasses.replace(template, author=author, price_per_hour=i % 977))
    assert len(idx) == 40_000
    per_ask = idx.nbytes() / len(idx)
    assert 184 < per_ask <= 250, per_ask
