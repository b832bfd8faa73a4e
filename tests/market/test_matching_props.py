"""The index against a brute-force scan of the same book, on random books and histories.

The scan below is the rule written the plain way, independent of the core's code:
every ASK still in the book is checked field by field, the cheapest passing one
wins, the one added first on a tie. Hypothesis drives adds (with repeats), cancels
(of present and absent ids), expiry and matches through small buffers and few
bitmap levels, so that segments are made, merged and compacted along the way.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gossip.messages import ZERO_ADDRESS
from gossip.orders import BENCHMARK_NAMES, NetworkType, Order, Side
from p2pnode.market.matching import CONSTRAINTS, AskIndex, IndexParams, explain

AUTHORS = [bytes([i]) * 20 for i in range(1, 6)]
RATINGS = {a: r for a, r in zip(AUTHORS, (0, 2500, 5000, 7500, 10_000), strict=True)}
NB = len(BENCHMARK_NAMES)


def rating(address: bytes) -> int:
    return RATINGS.get(address, 0)


def oid(n: int) -> bytes:
    return hashlib.sha256(b"ask" + n.to_bytes(8, "big")).digest()


prices = st.one_of(
    st.integers(0, 12), st.integers(0, 12), st.sampled_from([2**64 - 1, 2**64, 2**64 + 3, 2**100])
)
offered = st.sampled_from([0, 1, 2, 3, 4, 8, 2**40, 2**64 - 1])
BID_AUTHORS = [*AUTHORS, b"\xcc" * 20]
rare = st.integers(0, 4)


@st.composite
def asks(draw: st.DrawFn) -> Order:
    """Rich ASKs: any benchmark may be offered; some name a counterparty or blacklist."""
    plain = draw(st.booleans())
    bench = [0] * NB if plain else draw(st.lists(offered, min_size=NB, max_size=NB))
    return Order(
        author=draw(st.sampled_from(AUTHORS)),
        side=Side.ASK,
        price_per_hour=draw(prices),
        duration=draw(st.sampled_from([0, 60, 3600, 7200])),
        benchmarks=tuple(bench),
        network=draw(st.sampled_from(list(NetworkType))),
        properties=(),
        counterparty=draw(st.sampled_from(BID_AUTHORS)) if draw(rare) == 0 else ZERO_ADDRESS,
        blacklist=tuple(sorted(set(draw(st.lists(st.sampled_from(BID_AUTHORS), max_size=2)))))
        if draw(rare) == 0
        else (),
        min_rating=draw(st.sampled_from([2500, 5000, 10_000])) if draw(rare) == 0 else 0,
        geo="",
        nonce=draw(st.integers(0, 2**32)),
        valid_from=0,
        valid_until=draw(st.integers(10, 60)),
    )


@st.composite
def bids(draw: st.DrawFn) -> Order:
    """BIDs that often match: a few needs each, the rarer constraints now and then."""
    bench = [0] * NB
    for d in draw(st.lists(st.integers(0, NB - 1), max_size=3)):
        bench[d] = draw(st.sampled_from([1, 2, 3, 4, 5, 8, 2**40, 2**64 - 1]))
    return Order(
        author=draw(st.sampled_from(BID_AUTHORS)),
        side=Side.BID,
        price_per_hour=draw(prices),
        duration=draw(st.sampled_from([0, 0, 60, 3600, 7200])),
        benchmarks=tuple(bench),
        network=draw(st.sampled_from([NetworkType.NONE, NetworkType.NONE, *NetworkType])),
        properties=(),
        counterparty=draw(st.sampled_from([*AUTHORS, b"\xee" * 20]))
        if draw(rare) == 0
        else ZERO_ADDRESS,
        blacklist=tuple(sorted(set(draw(st.lists(st.sampled_from(AUTHORS), max_size=2)))))
        if draw(rare) == 0
        else (),
        min_rating=draw(st.sampled_from([2500, 5000, 10_000])) if draw(rare) == 0 else 0,
        geo="",
        nonce=draw(st.integers(0, 2**32)),
        valid_from=0,
        valid_until=100,
    )


# --- the brute-force reference ---------------------------------------------------------


def plain_fails(bid: Order, ask: Order) -> set[str]:
    out = set()
    if ask.price_per_hour > bid.price_per_hour:
        out.add("price")
    if ask.duration < bid.duration:
        out.add("duration")
    for i, name in enumerate(BENCHMARK_NAMES):
        if ask.benchmarks[i] < bid.benchmarks[i]:
            out.add(name)
    if (bid.network & ask.network) != bid.network:
        out.add("network")
    if bid.counterparty != ZERO_ADDRESS and bid.counterparty != ask.author:
        out.add("counterparty")
    if ask.counterparty != ZERO_ADDRESS and ask.counterparty != bid.author:
        out.add("counterparty")
    if ask.author in bid.blacklist or bid.author in ask.blacklist:
        out.add("blacklist")
    if rating(ask.author) < bid.min_rating or rating(bid.author) < ask.min_rating:
        out.add("rating")
    return out


@dataclass
class PlainBook:
    asks: dict[bytes, tuple[int, Order]] = field(default_factory=dict)
    cancelled: set[bytes] = field(default_factory=set)
    now: int = 0
    seq: int = 0

    def add(self, order_id: bytes, ask: Order) -> bool:
        if order_id in self.asks or order_id in self.cancelled or ask.valid_until < self.now:
            return False
        self.seq += 1
        self.asks[order_id] = (self.seq, ask)
        return True

    def cancel(self, order_id: bytes) -> bool:
        self.cancelled.add(order_id)
        return self.asks.pop(order_id, None) is not None

    def expire(self, now: int) -> int:
        self.now = max(self.now, now)
        gone = [k for k, (_, a) in self.asks.items() if a.valid_until < now]
        for k in gone:
            del self.asks[k]
        return len(gone)

    def best(self, bid: Order) -> bytes | None:
        best = None
        for order_id, (seq, ask) in self.asks.items():
            if not plain_fails(bid, ask):
                key = (ask.price_per_hour, seq)
                if best is None or key < best[0]:
                    best = (key, order_id)
        return None if best is None else best[1]


ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 60), asks()),
        st.tuples(st.just("cancel"), st.integers(0, 70), st.none()),
        st.tuples(st.just("expire"), st.integers(0, 70), st.none()),
        st.tuples(st.just("match"), st.integers(0, 0), bids()),
    ),
    max_size=120,
)
params = st.builds(
    IndexParams,
    buffer_rows=st.sampled_from([16, 17, 64]),
    growth=st.sampled_from([2, 4]),
    levels=st.sampled_from([1, 2, 16]),
    compact_ratio=st.sampled_from([0.1, 0.5, 1.0]),
)


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(history=ops, p=params, final_bids=st.lists(bids(), min_size=1, max_size=4))
def test_index_picks_what_the_scan_picks(
    history: list[tuple[str, int, Order | None]], p: IndexParams, final_bids: list[Order]
) -> None:
    idx, book = AskIndex(p), PlainBook()
    for op, n, order in history:
        if op == "add":
            assert order is not None
            assert idx.add(oid(n), order) == book.add(oid(n), order)
        elif op == "cancel":
            assert idx.cancel(oid(n)) == book.cancel(oid(n))
        elif op == "expire":
            assert idx.expire(n) == book.expire(n)
        else:
            assert order is not None
            m = idx.match(order, rating)
            assert (m and m.order_id) == book.best(order)
        assert len(idx) == len(book.asks)
    for bid in final_bids:
        m = idx.match(bid, rating)
        assert (m and m.order_id) == book.best(bid)


@settings(
    max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(book_asks=st.lists(asks(), max_size=80), bid=bids(), cut=st.integers(0, 80))
def test_explain_counts_what_a_scan_counts(book_asks: list[Order], bid: Order, cut: int) -> None:
    idx, book = AskIndex(IndexParams(buffer_rows=16, levels=2)), PlainBook()
    for i, a in enumerate(book_asks):
        idx.add(oid(i), a)
        book.add(oid(i), a)
    for i in range(0, cut, 3):  # some tombstones in the segments
        idx.cancel(oid(i))
        book.cancel(oid(i))
    e = explain(idx, bid, rating)
    fails = [plain_fails(bid, a) for _, a in book.asks.values()]
    assert e.total == len(fails)
    assert e.matching == sum(1 for f in fails if not f)
    for c in CONSTRAINTS:
        assert e.ruled_out[c] == sum(1 for f in fails if c in f), c
        assert e.only[c] == sum(1 for f in fails if f == {c}), c
    assert (e.winner and e.winner.order_id) == book.best(bid)
    assert e.winner == idx.match(bid, rating)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed_prices=st.lists(st.integers(0, 3), min_size=200, max_size=400))
def test_ties_go_to_the_earliest_through_merges(seed_prices: list[int]) -> None:
    """Many equal prices across segments of every age: the first added of the cheapest wins."""
    idx = AskIndex(IndexParams(buffer_rows=16, growth=2))
    for i, price in enumerate(seed_prices):
        a = Order.create(
            author=AUTHORS[i % 5],
            side=Side.ASK,
            price_per_hour=price,
            duration=0,
            nonce=i,
            valid_from=0,
            valid_until=100,
        )
        idx.add(oid(i), a)
    bid = Order.create(
        author=b"\xcc" * 20,
        side=Side.BID,
        price_per_hour=10,
        duration=0,
        nonce=0,
        valid_from=0,
        valid_until=100,
    )
    cheapest = min(seed_prices)
    first = seed_prices.index(cheapest)
    m = idx.match(bid)
    assert m is not None and m.order_id == oid(first)
    idx.cancel(oid(first))
    rest = [i for i, p in enumerate(seed_prices) if p == cheapest and i != first]
    m = idx.match(bid)
    expected = rest[0] if rest else seed_prices.index(min(p for p in seed_prices if p != cheapest))
    assert m is not None and m.order_id == oid(expected)


def test_large_random_books_agree_with_the_scan() -> None:
    """Thousands of ASKs (segments of many words, 16 bitmap levels), seeded."""
    rnd = random.Random(7)
    idx, book = AskIndex(IndexParams(buffer_rows=256)), PlainBook()
    sizes = [1, 2, 4, 8, 16, 32, 64]
    matched = 0
    for i in range(6000):
        bench = [rnd.choice(sizes) if rnd.random() < 0.7 else 0 for _ in range(NB)]
        a = Order(
            author=AUTHORS[rnd.randrange(5)],
            side=Side.ASK,
            price_per_hour=rnd.randrange(1000),
            duration=rnd.choice([0, 3600, 86400]),
            benchmarks=tuple(bench),
            network=rnd.choice(list(NetworkType)),
            properties=(),
            counterparty=ZERO_ADDRESS,
            blacklist=(),
            min_rating=0,
            geo="",
            nonce=i,
            valid_from=0,
            valid_until=rnd.randrange(10, 1000),
        )
        assert idx.add(oid(i), a) == book.add(oid(i), a)
        if rnd.random() < 0.2:
            k = rnd.randrange(i + 1)
            assert idx.cancel(oid(k)) == book.cancel(oid(k))
        if i % 1000 == 999:
            assert idx.expire(i // 10) == book.expire(i // 10)
        if i % 50 == 0:
            need = [0] * NB
            for d in rnd.sample(range(NB), rnd.randrange(5)):
                need[d] = rnd.choice(sizes)
            b = Order(
                author=b"\xcc" * 20,
                side=Side.BID,
                price_per_hour=rnd.randrange(1000),
                duration=rnd.choice([0, 3600, 86400]),
                benchmarks=tuple(need),
                network=rnd.choice(list(NetworkType)),
                properties=(),
                counterparty=ZERO_ADDRESS,
                blacklist=(),
                min_rating=0,
                geo="",
                nonce=i,
                valid_from=0,
                valid_until=100,
            )
            m = idx.match(b, rating)
            assert (m and m.order_id) == book.best(b)
            matched += m is not None
    assert len(idx) == len(book.asks) and max(idx.segment_sizes()) > 1024
    assert 20 < matched < 110  # both outcomes were exercised


def test_exact_and_inexact_bitmaps_agree_with_the_scan() -> None:
    """Bitmaps at a BID's own minimum settle that constraint; those below it do not.

    Half the benchmarks take a few values (every value a threshold: exact bitmaps),
    the others many (quantile thresholds: a BID's minimum usually falls between
    two), and a few ASKs in the way name a counterparty, a blacklist or a minimum
    rating, so the winner is often not the first row the bitmaps leave.
    """
    rnd = random.Random(11)
    idx, book = AskIndex(IndexParams(buffer_rows=512, levels=4)), PlainBook()
    few = [2, 4, 8, 16]

    def value(d: int) -> int:
        return rnd.choice(few) if d % 2 else rnd.randrange(1, 10**6)

    for i in range(2000):
        a = Order(
            author=AUTHORS[rnd.randrange(5)],
            side=Side.ASK,
            price_per_hour=rnd.randrange(200),
            duration=rnd.choice([60, 3600, 86400, 7 * 86400]),
            benchmarks=tuple(value(d) for d in range(NB)),
            network=rnd.choice(list(NetworkType)),
            properties=(),
            counterparty=rnd.choice(BID_AUTHORS) if rnd.random() < 0.05 else ZERO_ADDRESS,
            blacklist=(rnd.choice(BID_AUTHORS),) if rnd.random() < 0.05 else (),
            min_rating=rnd.choice([2500, 10_000]) if rnd.random() < 0.05 else 0,
            geo="",
            nonce=i,
            valid_from=0,
            valid_until=10**6,
        )
        assert idx.add(oid(i), a) == book.add(oid(i), a)
    matched = 0
    for k in range(40):
        need = [0] * NB
        for d in rnd.sample(range(NB), rnd.randrange(3, 8)):
            # minima at a value (an exact bitmap where values are few) and in between
            if d % 2:
                need[d] = rnd.choice([8, 16, 9, 12])
            else:
                need[d] = rnd.randrange(4 * 10**5, 10**6)
        b = Order(
            author=BID_AUTHORS[k % len(BID_AUTHORS)],
            side=Side.BID,
            price_per_hour=rnd.randrange(5, 200),
            duration=rnd.choice([0, 3600, 86400]),
            benchmarks=tuple(need),
            network=rnd.choice(list(NetworkType)),
            properties=(),
            counterparty=ZERO_ADDRESS,
            blacklist=(),
            min_rating=rnd.choice([0, 0, 5000]),
            geo="",
            nonce=k,
            valid_from=0,
            valid_until=100,
        )
        m = idx.match(b, rating)
        assert (m and m.order_id) == book.best(b), k
        matched += m is not None
    assert 8 < matched < 32, matched  # both outcomes were exercised
