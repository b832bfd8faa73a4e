"""The order book: every order the node has accepted from gossip (or placed itself).

Kept in SQLite, with cancellations applied, so `sonm-p2p orders` works across
restarts. It stores the signed bytes as received, so an order can be passed on and
re-verified, plus a few columns to filter on. The columns are declared once, in
`_ORDER_COLUMNS`: the table, the insert and the filter all read that list.

Everything here is bounded (`BookLimits`), because every row is something a remote
signer made us hold:

- orders: `max_orders` in all and `max_orders_per_author` per signer. Over the
  total, the largest foreign author loses its earliest-expiring orders first, down
  to the next largest ("water-filling"); among authors of equal size the one first
  seen most recently goes first, so fresh identities cannot outlast established
  ones. The node's own orders are never evicted.
- cancellations: only those that still have work to do are kept: a cancel of an
  order not seen yet (gossip does not keep order), for `unknown_cancel_ttl` at
  most, and the node's own (to re-publish). They are capped per author and in all.
- what the prune reads is indexed, and the prune runs once per eviction batch
  (1% of the cap), not on every insert.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
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
    "CREATE INDEX IF NOT EXISTS gossip_orders_by_author ON gossip_orders(author, valid_until)",
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
    "CREATE INDEX IF NOT EXISTS gossip_order_cancels_by_expiry "
    "ON gossip_order_cancels(valid_until)",
    "CREATE INDEX IF NOT EXISTS gossip_order_cancels_by_author "
    "ON gossip_order_cancels(author, valid_until)",
)


@dataclass(frozen=True)
class BookLimits:
    """What the book holds at most; see the module docstring for the policy."""

    max_orders: int = 200_000
    max_orders_per_author: int = 1000
    max_cancels: int = 50_000
    max_cancels_per_author: int = 1000
    # a cancel whose order has not arrived is kept this long at most (seconds)
    unknown_cancel_ttl: float = 600.0

    def validate(self) -> None:
        for name in (
            "max_orders",
            "max_orders_per_author",
            "max_cancels",
            "max_cancels_per_author",
        ):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"{name}: must be an integer >= 1, got {value!r}")
        if not 1.0 <= self.unknown_cancel_ttl <= 31 * 86400:
            raise ValueError(
                f"unknown_cancel_ttl: must be in [1, 2678400] s, got {self.unknown_cancel_ttl}"
            )


@dataclass
class BookCounters:
    refused_author_quota: int = 0  # foreign orders over their author's cap
    evicted: int = 0  # foreign orders evicted over the total cap
    cancels_refused: int = 0  # cancels of unknown orders over their author's cap
    cancels_evicted: int = 0  # cancels of unknown orders evicted over the total cap


def water_fill(counts: Counter[bytes], amount: int) -> dict[bytes, int]:
    """How many to take from each key so the largest shrink first, `amount` in all.

    Keys left at the final level give one more each, in reverse insertion order (the
    newest first), until `amount` is reached.
    """
    plan: dict[bytes, int] = {}
    if amount <= 0:
        return plan
    ordered = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)
    total = sum(c for _, c in ordered)
    amount = min(amount, total)
    # find the level L: taking everything above L takes <= amount, above L-1 takes more
    above = 0  # how many counts sit above the current level, summed as excess
    i = 0
    level = ordered[0][1] if ordered else 0
    while level > 0:
        while i < len(ordered) and ordered[i][1] >= level:
            i += 1
        # taking every key in ordered[:i] down to level-1 costs `above + i`
        if above + i > amount:
            break
        above += i
        level -= 1
    for key, count in ordered:
        if count > level:
            plan[key] = count - level
    rest = amount - above
    if rest > 0:
        at_level = [key for key, count in reversed(counts.items()) if count >= level > 0]
        for key in at_level[:rest]:
            plan[key] = plan.get(key, 0) + 1
    return plan


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
    """Seen orders in the node's SQLite file, bounded by `BookLimits`."""

    def __init__(
        self,
        storage: Storage,
        *,
        max_orders: int | None = None,
        limits: BookLimits | None = None,
    ) -> None:
        limits = limits or BookLimits()
        if max_orders is not None:
            limits = BookLimits(**{**limits.__dict__, "max_orders": max_orders})
        limits.validate()
        self.storage = storage
        self.limits = limits
        self.max_orders = limits.max_orders
        self.counters = BookCounters()
        storage.migrate("gossip_orders", _SCHEMA)
        # kept in memory: COUNT(*) walks the whole table, too slow per delivered order;
        # per-author counts of foreign orders (for the quota and the eviction order)
        self._count = int(self._exec("SELECT COUNT(*) FROM gossip_orders")[0][0])
        self._foreign: Counter[bytes] = Counter()
        for author, n in self._exec(
            "SELECT author, COUNT(*) FROM gossip_orders WHERE own = 0 GROUP BY author"
        ):
            self._foreign[bytes(author)] = int(n)
        self._cancels: Counter[bytes] = Counter()
        for author, n in self._exec(
            "SELECT author, COUNT(*) FROM gossip_order_cancels GROUP BY author"
        ):
            self._cancels[bytes(author)] = int(n)

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.storage.lock:
            return self.storage.connection.execute(sql, args).fetchall()

    def add(
        self, order: Order, order_id: bytes, data: bytes, now: float, *, own: bool, published: bool
    ) -> bool:
        """Store an accepted order; False if it was already known or its author is at
        the per-author cap. A cancellation that arrived first (gossip does not keep
        order) applies at once."""
        if not own and self._foreign[order.author] >= self.limits.max_orders_per_author:
            self._forget(
                self._exec(
                    "DELETE FROM gossip_orders WHERE author = ? AND own = 0 AND valid_until < ? "
                    "RETURNING author",
                    (order.author, float(now)),
                )
            )
            if self._foreign[order.author] >= self.limits.max_orders_per_author:
                self.counters.refused_author_quota += 1
                return False
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
            if not own:
                self._foreign[order.author] += 1
            if cancel:
                self._drop_cancel(order_id, order.author)
            if self._count > self.max_orders:
                self.prune(now)
                self._evict_over_cap()
        return added

    def own_live(self, author: bytes, now: float) -> int:
        """How many of `author`'s own orders are live (not cancelled, not expired)."""
        rows = self._exec(
            "SELECT COUNT(*) FROM gossip_orders WHERE author = ? AND own = 1 "
            "AND cancelled_at IS NULL AND valid_until >= ?",
            (author, float(now)),
        )
        return int(rows[0][0])

    def cancel_count(self) -> int:
        return sum(self._cancels.values())

    def _forget(self, rows: Iterable[tuple[Any, ...]]) -> int:
        """Account for deleted foreign orders, given their authors."""
        n = _uncount(self._foreign, rows)
        self._count -= n
        return n

    def _drop_cancel(self, order_id: bytes, author: bytes) -> None:
        """A foreign cancel has done its work once its order is here and cancelled."""
        rows = self._exec(
            "DELETE FROM gossip_order_cancels WHERE order_id = ? AND author = ? AND own = 0 "
            "RETURNING author",
            (order_id, author),
        )
        self._forget_cancels(rows)

    def _forget_cancels(self, rows: Iterable[tuple[Any, ...]]) -> int:
        """Account for deleted cancels, given their authors."""
        return _uncount(self._cancels, rows)

    def apply_cancel(
        self, cancel: OrderCancel, data: bytes, now: float, *, own: bool, published: bool
    ) -> bool:
        """Apply a (valid, signed) cancellation; True if it cancelled a known order now.

        Only the order's author can cancel it: a cancellation signed by anyone else
        never applies. A cancel of an order not seen yet is kept (it may precede the
        order) for `unknown_cancel_ttl` at most, within its author's cap; the node's
        own cancels are kept until published. Others have done their work at once.
        """
        with self.storage.lock:
            db = self.storage.connection
            cur = db.execute(
                "UPDATE gossip_orders SET cancelled_at = ? "
                "WHERE order_id = ? AND author = ? AND cancelled_at IS NULL",
                (now, cancel.order_id, cancel.author),
            )
            applied = cur.rowcount == 1
            known = applied or bool(
                db.execute(
                    "SELECT 1 FROM gossip_orders WHERE order_id = ? AND author = ?",
                    (cancel.order_id, cancel.author),
                ).fetchall()
            )
        if known and not own:
            return applied
        valid_until = _clamp(cancel.valid_until)
        if not known:
            valid_until = min(valid_until, int(now + self.limits.unknown_cancel_ttl))
            if self._cancels[cancel.author] >= self.limits.max_cancels_per_author:
                self._forget_cancels(
                    self._exec(
                        "DELETE FROM gossip_order_cancels WHERE author = ? AND valid_until < ? "
                        "RETURNING author",
                        (cancel.author, float(now)),
                    )
                )
                if self._cancels[cancel.author] >= self.limits.max_cancels_per_author:
                    self.counters.cancels_refused += 1
                    return False
        rows = self._exec(
            "INSERT OR IGNORE INTO gossip_order_cancels VALUES (?, ?, ?, ?, ?, ?) RETURNING author",
            (cancel.order_id, cancel.author, data, valid_until, int(own), int(published)),
        )
        for (author,) in rows:
            self._cancels[bytes(author)] += 1
        if self.cancel_count() > self.limits.max_cancels:
            self._evict_cancels(now)
        return applied

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

    def live(self, side: Side, now: float, batch: int = 1000) -> Iterator[list[BookEntry]]:
        """Every live (not cancelled, not expired) order of `side`, `batch` at a time.

        For loading an in-memory index at start: `query` stops at 10000 rows, and a
        keyset walk over the primary key reads each row once without holding the
        book's lock between batches (deliveries go on meanwhile).
        """
        if batch < 1:
            raise UserError(f"batch = {batch}: allowed >= 1")
        after = b""
        while True:
            rows = self._exec(
                f"SELECT {_ENTRY_COLUMNS} FROM gossip_orders WHERE order_id > ? AND side = ? "
                "AND cancelled_at IS NULL AND valid_until >= ? ORDER BY order_id LIMIT ?",
                (after, int(side), float(now), batch),
            )
            if not rows:
                return
            yield [_entry(r) for r in rows]
            if len(rows) < batch:
                return
            after = bytes(rows[-1][0])

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
            gone = db.execute(
                "DELETE FROM gossip_orders WHERE valid_until < ? RETURNING author, own", (cutoff,)
            ).fetchall()
            cancels = db.execute(
                "DELETE FROM gossip_order_cancels WHERE valid_until < ? RETURNING author",
                (cutoff,),
            ).fetchall()
        self._forget_cancels(cancels)
        own = sum(1 for _, is_own in gone if is_own)
        self._count -= own
        return own + self._forget((author,) for author, is_own in gone if not is_own)

    def _evict_over_cap(self) -> None:
        excess = self._count - self.max_orders
        if excess <= 0:
            return
        # a batch, so the next evictions (and their prune) wait for 1% more inserts
        plan = water_fill(self._foreign, excess + self.max_orders // 100)
        for author, n in plan.items():
            gone = self._exec(
                "DELETE FROM gossip_orders WHERE order_id IN (SELECT order_id FROM "
                "gossip_orders WHERE author = ? AND own = 0 ORDER BY valid_until ASC LIMIT ?) "
                "RETURNING author",
                (author, n),
            )
            self.counters.evicted += self._forget(gone)

    def _evict_cancels(self, now: float) -> None:
        self._forget_cancels(
            self._exec(
                "DELETE FROM gossip_order_cancels WHERE valid_until < ? RETURNING author",
                (float(now),),
            )
        )
        excess = self.cancel_count() - self.limits.max_cancels
        if excess <= 0:
            return
        plan = water_fill(self._cancels, excess + self.limits.max_cancels // 100)
        for author, n in plan.items():
            gone = self._exec(
                "DELETE FROM gossip_order_cancels WHERE rowid IN (SELECT rowid FROM "
                "gossip_order_cancels WHERE author = ? AND own = 0 ORDER BY valid_until ASC "
                "LIMIT ?) RETURNING author",
                (author, n),
            )
            self.counters.cancels_evicted += self._forget_cancels(gone)


def _uncount(counts: Counter[bytes], rows: Iterable[tuple[Any, ...]]) -> int:
    """Take one off each deleted row's author (`RETURNING author` rows); how many."""
    n = 0
    for (author,) in rows:
        key = bytes(author)
        counts[key] -= 1
        if counts[key] <= 0:
            del counts[key]
        n += 1
    return n


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
