"""The order book: every order the node has accepted from gossip (or placed itself).

Kept in SQLite, with cancellations applied, so `sonm-p2p orders` works across
restarts. It stores the signed bytes as received, so an order can be passed on and
re-verified, plus a few columns to filter on. The columns are declared once, in
`_ORDER_COLUMNS`: the table, the insert and the filter all read that list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from gossip import codec
from gossip.messages import UINT64_MAX
from gossip.orders import NetworkType, Order, OrderCancel, Side
from p2pnode.errors import UserError
from p2pnode.storage import Storage

_INT64_MAX = 2**63 - 1  # SQLite INTEGER; uint64 columns are clamped for filtering only


def _price_key(price: int) -> str:
    return f"{price:064x}"


def _clamp(value: int) -> int:
    return min(value, _INT64_MAX)


class _Row(NamedTuple):
    """What one stored order is made of, before it becomes columns."""

    order: Order
    order_id: bytes
    data: bytes
    received_at: float
    own: bool
    published: bool
    cancelled_at: float | None


# Resource columns: SQL column -> Order field. Each is a uint64 clamped to 2^63-1
# (the signed data stays authoritative) and filtered by OrderFilter.min_<field>.
_RESOURCE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("cpu_cores", "cpu_cores"),
    ("ram", "ram_bytes"),
    ("storage", "storage_bytes"),
    ("gpu_count", "gpu_count"),
    ("gpu_mem", "gpu_mem_bytes"),
)


def _resource(field: str) -> Callable[[_Row], Any]:
    return lambda r: _clamp(getattr(r.order, field))


# The one list of gossip_orders columns: (name, SQL declaration, value of a row).
_ORDER_COLUMNS: tuple[tuple[str, str, Callable[[_Row], Any]], ...] = (
    ("order_id", "BLOB PRIMARY KEY", lambda r: r.order_id),  # EIP-712 digest
    ("data", "BLOB NOT NULL", lambda r: r.data),  # the signed message, canonical msgpack
    ("side", "INTEGER NOT NULL", lambda r: int(r.order.side)),
    ("author", "BLOB NOT NULL", lambda r: r.order.author),
    # uint256 as 64 hex digits: text order = numeric order
    ("price", "TEXT NOT NULL", lambda r: _price_key(r.order.price_per_hour)),
    *((column, "INTEGER NOT NULL", _resource(field)) for column, field in _RESOURCE_COLUMNS),
    ("network", "INTEGER NOT NULL", lambda r: int(r.order.network)),
    ("geo", "TEXT NOT NULL", lambda r: r.order.geo),
    ("nonce", "TEXT NOT NULL", lambda r: str(r.order.nonce)),
    ("valid_until", "INTEGER NOT NULL", lambda r: _clamp(r.order.valid_until)),
    ("received_at", "REAL NOT NULL", lambda r: r.received_at),
    ("own", "INTEGER NOT NULL", lambda r: int(r.own)),
    ("published", "INTEGER NOT NULL", lambda r: int(r.published)),
    ("cancelled_at", "REAL", lambda r: r.cancelled_at),
)

_ORDER_NAMES = ", ".join(name for name, _, _ in _ORDER_COLUMNS)
_INSERT_ORDER = (
    f"INSERT OR IGNORE INTO gossip_orders ({_ORDER_NAMES}) "
    f"VALUES ({', '.join('?' for _ in _ORDER_COLUMNS)})"
)
# what a BookEntry is read from, in _entry's order
_ENTRY_COLUMNS = "order_id, data, received_at, own, published, cancelled_at"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS gossip_orders ("
    + ", ".join(f"{name} {decl}" for name, decl, _ in _ORDER_COLUMNS)
    + ")",
    "CREATE INDEX IF NOT EXISTS gossip_orders_by_side_price ON gossip_orders(side, price)",
    "CREATE INDEX IF NOT EXISTS gossip_orders_by_expiry ON gossip_orders(valid_until)",
    """
    CREATE TABLE IF NOT EXISTS gossip_order_cancels (
        order_id BLOB NOT NULL,
        author BLOB NOT NULL,
        data BLOB NOT NULL,
        valid_until INTEGER NOT NULL,
        own INTEGER NOT NULL,
        published INTEGER NOT NULL,
        PRIMARY KEY (order_id, author)
    )
    """,
)


@dataclass(frozen=True)
class OrderFilter:
    """What GET /orders may ask for; every bound is checked with the parameter's name."""

    side: Side | None = None
    author: bytes | None = None
    min_price: int | None = None
    max_price: int | None = None
    min_cpu_cores: int = 0
    min_ram_bytes: int = 0
    min_storage_bytes: int = 0
    min_gpu_count: int = 0
    min_gpu_mem_bytes: int = 0
    network: NetworkType | None = None  # orders whose network covers this
    geo: str | None = None
    own: bool | None = None
    include_cancelled: bool = False
    include_expired: bool = False
    sort: Literal["price", "-price", "received"] = "price"
    limit: int = 100

    def validate(self) -> None:
        for name in ("min_price", "max_price"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 2**256:
                raise UserError(f"{name} = {value}: allowed 0..2^256-1 token base units")
        for _, field in _RESOURCE_COLUMNS:
            name = f"min_{field}"
            value = getattr(self, name)
            if not 0 <= value <= UINT64_MAX:
                raise UserError(f"{name} = {value}: allowed 0..2^64-1")
        if not 1 <= self.limit <= 10_000:
            raise UserError(f"limit = {self.limit}: allowed 1..10000")


@dataclass(frozen=True)
class BookEntry:
    order: Order
    order_id: bytes
    data: bytes
    received_at: float
    own: bool
    published: bool
    cancelled: bool


class OrderBook:
    """Seen orders in the node's SQLite file, bounded by `max_orders` (expired go first)."""

    def __init__(self, storage: Storage, *, max_orders: int = 200_000) -> None:
        if max_orders < 1:
            raise ValueError(f"max_orders: must be >= 1, got {max_orders}")
        self.storage = storage
        self.max_orders = max_orders
        storage.migrate("gossip_orders", _SCHEMA)
        # kept in memory: COUNT(*) walks the whole table, too slow per delivered order
        self._count = int(self._exec("SELECT COUNT(*) FROM gossip_orders")[0][0])

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.storage.lock:
            return self.storage.connection.execute(sql, args).fetchall()

    def add(
        self, order: Order, order_id: bytes, data: bytes, now: float, *, own: bool, published: bool
    ) -> bool:
        """Store an accepted order; False if it was already known. A cancellation that
        arrived first (gossip does not keep order) applies at once."""
        # keyed by author too: anyone may sign a cancel for any id, and a stranger's
        # must neither apply nor crowd out the author's own
        cancel = self._exec(
            "SELECT 1 FROM gossip_order_cancels WHERE order_id = ? AND author = ?",
            (order_id, order.author),
        )
        row = _Row(order, order_id, data, now, own, published, now if cancel else None)
        with self.storage.lock:
            cur = self.storage.connection.execute(
                _INSERT_ORDER, tuple(value(row) for _, _, value in _ORDER_COLUMNS)
            )
            added = cur.rowcount == 1
        if added:
            self._count += 1
            if self._count > self.max_orders:
                self.prune(now)
                self._evict_over_cap()
        return added

    def apply_cancel(
        self, cancel: OrderCancel, data: bytes, now: float, *, own: bool, published: bool
    ) -> bool:
        """Record a (valid, signed) cancellation; True if it cancelled a known order now.

        Only the order's author can cancel it: a cancellation signed by anyone else
        is kept (it may precede an order of that signer's) but never applies."""
        with self.storage.lock:
            db = self.storage.connection
            db.execute(
                "INSERT OR IGNORE INTO gossip_order_cancels VALUES (?, ?, ?, ?, ?, ?)",
                (
                    cancel.order_id,
                    cancel.author,
                    data,
                    _clamp(cancel.valid_until),
                    int(own),
                    int(published),
                ),
            )
            cur = db.execute(
                "UPDATE gossip_orders SET cancelled_at = ? "
                "WHERE order_id = ? AND author = ? AND cancelled_at IS NULL",
                (now, cancel.order_id, cancel.author),
            )
            return cur.rowcount == 1

    def get(self, order_id: bytes) -> BookEntry | None:
        rows = self._exec(
            f"SELECT {_ENTRY_COLUMNS} FROM gossip_orders WHERE order_id = ?", (order_id,)
        )
        return _entry(rows[0]) if rows else None

    def count(self) -> int:
        return self._count

    def query(self, flt: OrderFilter, now: float) -> list[BookEntry]:
        flt.validate()
        where: list[str] = []
        args: list[Any] = []

        def cond(sql: str, *values: Any) -> None:
            where.append(sql)
            args.extend(values)

        if flt.side is not None:
            cond("side = ?", int(flt.side))
        if flt.author is not None:
            cond("author = ?", flt.author)
        if flt.min_price is not None:
            cond("price >= ?", _price_key(flt.min_price))
        if flt.max_price is not None:
            cond("price <= ?", _price_key(flt.max_price))
        for column, field in _RESOURCE_COLUMNS:
            value = getattr(flt, f"min_{field}")
            if value:
                cond(f"{column} >= ?", _clamp(value))
        if flt.network is not None:
            cond("(network & ?) = ?", int(flt.network), int(flt.network))
        if flt.geo is not None:
            cond("geo = ?", flt.geo)
        if flt.own is not None:
            cond("own = ?", int(flt.own))
        if not flt.include_cancelled:
            cond("cancelled_at IS NULL")
        if not flt.include_expired:
            cond("valid_until >= ?", now)
        order_by = {
            "price": "price ASC, received_at ASC",
            "-price": "price DESC, received_at ASC",
            "received": "received_at DESC",
        }[flt.sort]
        sql = (
            f"SELECT {_ENTRY_COLUMNS} FROM gossip_orders"
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY {order_by} LIMIT ?"
        )
        return [_entry(r) for r in self._exec(sql, (*args, flt.limit))]

    def mark_published(self, order_id: bytes, *, cancel: bool = False) -> None:
        table = "gossip_order_cancels" if cancel else "gossip_orders"
        self._exec(f"UPDATE {table} SET published = 1 WHERE order_id = ?", (order_id,))

    def unpublished(self, now: float) -> list[tuple[bytes, bytes, bool]]:
        """Own live messages not sent yet: (order_id, data, is_cancel)."""
        cutoff = float(now)
        orders = self._exec(
            "SELECT order_id, data FROM gossip_orders "
            "WHERE own = 1 AND published = 0 AND cancelled_at IS NULL AND valid_until >= ?",
            (cutoff,),
        )
        cancels = self._exec(
            "SELECT order_id, data FROM gossip_order_cancels "
            "WHERE own = 1 AND published = 0 AND valid_until >= ?",
            (cutoff,),
        )
        return [(i, d, False) for i, d in orders] + [(i, d, True) for i, d in cancels]

    def next_nonce(self, author: bytes, now: float) -> int:
        """Milliseconds since the epoch, or one past this author's highest own nonce."""
        rows = self._exec("SELECT nonce FROM gossip_orders WHERE author = ? AND own = 1", (author,))
        highest = max((int(r[0]) for r in rows), default=-1)
        return max(int(now * 1000), highest + 1)

    def prune(self, now: float) -> int:
        """Drop expired orders and cancellations; returns how many orders went."""
        cutoff = float(now)
        with self.storage.lock:
            db = self.storage.connection
            cur = db.execute("DELETE FROM gossip_orders WHERE valid_until < ?", (cutoff,))
            db.execute("DELETE FROM gossip_order_cancels WHERE valid_until < ?", (cutoff,))
            self._count -= cur.rowcount
            return int(cur.rowcount)

    def _evict_over_cap(self) -> None:
        excess = self._count - self.max_orders
        if excess > 0:
            with self.storage.lock:
                cur = self.storage.connection.execute(
                    "DELETE FROM gossip_orders WHERE order_id IN (SELECT order_id FROM "
                    "gossip_orders WHERE own = 0 ORDER BY valid_until ASC LIMIT ?)",
                    (excess,),
                )
                self._count -= cur.rowcount


def _entry(row: tuple[Any, ...]) -> BookEntry:
    order_id, data, received_at, own, published, cancelled_at = row
    order = codec.decode(bytes(data))
    assert isinstance(order, Order)
    return BookEntry(
        order=order,
        order_id=bytes(order_id),
        data=bytes(data),
        received_at=float(received_at),
        own=bool(own),
        published=bool(published),
        cancelled=cancelled_at is not None,
    )
