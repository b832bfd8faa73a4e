"""The order book's caps on real SQLite: per-author quota, largest author evicted first,
cancels kept only while they have work to do, and an indexed prune."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip import codec, eip712
from gossip.eip712 import SigningDomain
from gossip.orders import Order, OrderCancel, Side
from p2pnode.market.book import BookLimits, OrderBook, OrderFilter, water_fill
from p2pnode.replay_store import ReplayStore
from p2pnode.storage import Storage

DOMAIN = SigningDomain(chain_id=31337)
T0 = 1_700_000_000.0
DAY = 86_400


def key(n: int) -> bytes:
    return (n + 1).to_bytes(32, "big")


def place(
    book: OrderBook, who: int, nonce: int, *, life: int = DAY, now: float = T0, own: bool = False
) -> bool:
    k = key(who)
    order = Order.create(
        author=eip712.address_of_key(k),
        side=Side.ASK,
        price_per_hour=10**16,
        duration=3600,
        nonce=nonce,
        valid_from=int(T0),
        valid_until=int(T0) + life,
        cpu_cores=1,
    ).signed(DOMAIN, k)
    return book.add(
        order, order.order_id(DOMAIN), codec.encode(order), now, own=own, published=True
    )


def cancel_unknown(book: OrderBook, who: int, nonce: int, *, now: float = T0) -> None:
    k = key(who)
    c = OrderCancel(
        author=eip712.address_of_key(k),
        order_id=(10**6 + nonce).to_bytes(32, "big"),
        nonce=nonce,
        valid_from=int(T0),
        valid_until=int(T0) + 30 * DAY,
    ).signed(DOMAIN, k)
    book.apply_cancel(c, codec.encode(c), now, own=False, published=True)


def authors(book: OrderBook) -> Counter[str]:
    return Counter(e.order.author.hex() for e in book.query(OrderFilter(limit=10_000), T0))


def test_limits_name_the_bound(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_cancels_per_author"):
        BookLimits(max_cancels_per_author=0).validate()
    with pytest.raises(ValueError, match="unknown_cancel_ttl"):
        BookLimits(unknown_cancel_ttl=0).validate()


def test_one_long_lived_flooder_cannot_evict_honest_short_orders(tmp_path: Path) -> None:
    """1000 attacker orders valid 31 days against 500 honest 1-day orders, cap 1000:
    evicting by earliest expiry dropped every honest order; largest author first
    keeps them all."""
    book = OrderBook(Storage.open_in(tmp_path), limits=BookLimits(max_orders=1000))
    for who in range(50):
        for n in range(10):
            assert place(book, who, n, life=DAY)
    for n in range(1000):
        place(book, 999, n, life=31 * DAY)
    held = authors(book)
    attacker = eip712.address_of_key(key(999)).hex()
    assert sum(c for a, c in held.items() if a != attacker) == 500
    assert held[attacker] <= 500 and book.count() <= 1000
    assert book.counters.evicted >= 500


def test_per_author_cap_refuses_and_frees_on_expiry(tmp_path: Path) -> None:
    book = OrderBook(Storage.open_in(tmp_path), limits=BookLimits(max_orders_per_author=5))
    assert [place(book, 1, n, life=100 + n) for n in range(7)] == [True] * 5 + [False] * 2
    assert book.counters.refused_author_quota == 2
    assert place(book, 2, 0)  # others are not affected
    assert place(book, 1, 10, now=T0 + 100.5)  # its first order expired: room again
    # own orders are the desk's to limit, never refused or evicted here
    assert all(place(book, 1, 100 + n, own=True) for n in range(10))


def test_counts_survive_a_reopen(tmp_path: Path) -> None:
    storage = Storage.open_in(tmp_path)
    book = OrderBook(storage, limits=BookLimits(max_orders_per_author=3))
    for n in range(3):
        place(book, 1, n)
    cancel_unknown(book, 2, 1)
    again = OrderBook(storage, limits=BookLimits(max_orders_per_author=3))
    assert not place(again, 1, 9) and again.cancel_count() == 1 and again.count() == 3


def test_sybils_of_equal_size_lose_the_newest_identities_first(tmp_path: Path) -> None:
    book = OrderBook(Storage.open_in(tmp_path), limits=BookLimits(max_orders=100))
    for who in range(100):  # established, one order each
        place(book, who, 0)
    for who in range(1000, 1050):  # fresh identities, one order each
        place(book, who, 0)
    held = authors(book)
    established = {eip712.address_of_key(key(w)).hex() for w in range(100)}
    assert sum(1 for a in held if a in established) >= 95
    assert book.count() <= 100


def test_cancels_of_unknown_orders_are_capped_and_short_lived(tmp_path: Path) -> None:
    book = OrderBook(
        Storage.open_in(tmp_path),
        limits=BookLimits(max_cancels_per_author=10, max_cancels=25, unknown_cancel_ttl=60),
    )
    for n in range(50):
        cancel_unknown(book, 1, n)
    assert book.cancel_count() == 10 and book.counters.cancels_refused == 40
    for who in range(2, 6):
        for n in range(10):
            cancel_unknown(book, who, n)
    assert book.cancel_count() <= 25 and book.counters.cancels_evicted > 0
    book.prune(T0 + 61)  # the TTL, not the cancel's own 30 days
    assert book.cancel_count() == 0


def test_a_cancel_that_applied_is_not_kept_but_one_that_precedes_its_order_is(
    tmp_path: Path,
) -> None:
    book = OrderBook(Storage.open_in(tmp_path))
    k = key(7)
    order = Order.create(
        author=eip712.address_of_key(k),
        side=Side.BID,
        price_per_hour=1,
        duration=60,
        nonce=1,
        valid_from=int(T0),
        valid_until=int(T0) + DAY,
    ).signed(DOMAIN, k)
    oid = order.order_id(DOMAIN)
    c = OrderCancel(
        author=order.author,
        order_id=oid,
        nonce=2,
        valid_from=int(T0),
        valid_until=order.valid_until,
    ).signed(DOMAIN, k)
    book.apply_cancel(c, codec.encode(c), T0, own=False, published=True)
    assert book.cancel_count() == 1  # waits for its order
    book.add(order, oid, codec.encode(order), T0, own=False, published=True)
    entry = book.get(oid)
    assert entry is not None and entry.cancelled and book.cancel_count() == 0


def test_the_prune_reads_indexes(tmp_path: Path) -> None:
    storage = Storage.open_in(tmp_path)
    OrderBook(storage)
    db = storage.connection
    for sql in (
        "DELETE FROM gossip_order_cancels WHERE valid_until < 1",
        "DELETE FROM gossip_orders WHERE valid_until < 1",
        "SELECT 1 FROM gossip_order_cancels WHERE author = x'00' AND valid_until < 1",
    ):
        plan = " ".join(str(r) for r in db.execute("EXPLAIN QUERY PLAN " + sql).fetchall())
        assert "USING" in plan and "INDEX" in plan, (sql, plan)


def test_spent_nonces_expire_while_running(tmp_path: Path) -> None:
    from gossip.replay import ReplayGuard

    store = ReplayStore(Storage.open_in(tmp_path))
    guard = ReplayGuard()
    guard.record(b"k", 5, T0 + 10, monotonic=False, now=T0)
    store.flush(guard, now=T0)
    count = "SELECT COUNT(*) FROM replay_spent"
    assert store._storage.connection.execute(count).fetchone()[0] == 1
    store.flush(guard, now=T0 + 30)  # expired, but the interval has not passed
    assert store._storage.connection.execute(count).fetchone()[0] == 1
    store.flush(guard, now=T0 + 61)
    assert store._storage.connection.execute(count).fetchone()[0] == 0 and store.expired == 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=20), st.integers(0, 200))
def test_water_fill_takes_from_the_largest_first(counts: list[int], amount: int) -> None:
    c: Counter[bytes] = Counter({bytes([i]): n for i, n in enumerate(counts)})
    plan = water_fill(c, amount)
    assert sum(plan.values()) == min(amount, sum(counts))
    after = {k: c[k] - plan.get(k, 0) for k in c}
    assert all(v >= 0 for v in after.values())
    # the largest were cut to one level: what was cut ends within 1 of each other, and
    # no more than 1 below what was left alone
    touched = [after[k] for k in plan]
    untouched = [after[k] for k in c if k not in plan]
    if touched and untouched:
        assert min(touched) >= max(untouched) - 1
    if touched:
        assert max(touched) - min(touched) <= 1
