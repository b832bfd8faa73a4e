"""The order book's table is declared once: the schema, the insert and the filters
agree with that one column list, and a data dir made before it still works."""

from __future__ import annotations

from pathlib import Path

from gossip import codec, eip712
from gossip.eip712 import SigningDomain
from gossip.orders import Order, Side
from p2pnode.market import book as book_mod
from p2pnode.market.book import OrderBook, OrderFilter
from p2pnode.storage import Storage

KEY = bytes.fromhex("22" * 32)
DOMAIN = SigningDomain(chain_id=31337)
T0 = 1_700_000_000.0

# gossip_orders as the first release created it, before the column list existed
_FIRST_SCHEMA = """
    CREATE TABLE gossip_orders (
        order_id BLOB PRIMARY KEY, data BLOB NOT NULL, side INTEGER NOT NULL,
        author BLOB NOT NULL, price TEXT NOT NULL, cpu_cores INTEGER NOT NULL,
        ram INTEGER NOT NULL, storage INTEGER NOT NULL, gpu_count INTEGER NOT NULL,
        gpu_mem INTEGER NOT NULL, network INTEGER NOT NULL, geo TEXT NOT NULL,
        nonce TEXT NOT NULL, valid_until INTEGER NOT NULL, received_at REAL NOT NULL,
        own INTEGER NOT NULL, published INTEGER NOT NULL, cancelled_at REAL
    )
"""


def _order(nonce: int, **kw: int) -> tuple[Order, bytes, bytes]:
    order = Order.create(
        author=eip712.address_of_key(KEY),
        side=Side.ASK,
        price_per_hour=10**17,
        duration=1800,
        nonce=nonce,
        valid_from=int(T0),
        valid_until=int(T0) + 3600,
        **kw,
    ).signed(DOMAIN, KEY)
    return order, order.order_id(DOMAIN), codec.encode(order)


def _columns(storage: Storage) -> list[str]:
    rows = storage.connection.execute("PRAGMA table_info(gossip_orders)").fetchall()
    return [r[1] for r in rows]


def test_the_table_is_the_column_list(tmp_path: Path) -> None:
    storage = Storage.open_in(tmp_path)
    OrderBook(storage)
    assert _columns(storage) == [name for name, _, _ in book_mod._ORDER_COLUMNS]
    # every resource the filter bounds is a column, and a field of the filter
    names = set(_columns(storage))
    for column, field in book_mod._RESOURCE_COLUMNS:
        assert column in names and hasattr(OrderFilter(), f"min_{field}")


def test_resource_columns_filter_as_their_fields(tmp_path: Path) -> None:
    book = OrderBook(Storage.open_in(tmp_path))
    small, small_id, small_data = _order(1, cpu_cores=2, ram_bytes=2**30, gpu_count=0)
    big, big_id, big_data = _order(2, cpu_cores=16, ram_bytes=2**64 - 1, gpu_count=2)
    book.add(small, small_id, small_data, T0, own=False, published=True)
    book.add(big, big_id, big_data, T0, own=False, published=True)
    for flt in (
        OrderFilter(min_cpu_cores=4),
        OrderFilter(min_ram_bytes=2**63),  # clamped in SQL, exact in the signed data
        OrderFilter(min_gpu_count=1),
    ):
        assert [e.order_id for e in book.query(flt, T0)] == [big_id]
    assert len(book.query(OrderFilter(), T0)) == 2


def test_a_table_made_before_the_column_list_still_takes_orders(tmp_path: Path) -> None:
    storage = Storage.open_in(tmp_path)
    with storage.lock:
        storage.connection.execute(_FIRST_SCHEMA)
    book = OrderBook(storage)
    order, order_id, data = _order(7, cpu_cores=3)
    assert book.add(order, order_id, data, T0, own=True, published=False) is True
    entry = book.get(order_id)
    assert entry is not None and entry.order == order and entry.own and not entry.published
    assert [e.order_id for e in book.query(OrderFilter(min_cpu_cores=3), T0)] == [order_id]
