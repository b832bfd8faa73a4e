"""Orders on the local API: place an ASK or BID, cancel it, list what the node has seen.

Three parts, from the bottom:

- `OrderBook` keeps every order the node has accepted from gossip (or placed
  itself) in SQLite, with cancellations applied, so `sonm-p2p orders` works across
  restarts; it stores the signed bytes as received, so an order can be passed on
  and re-verified, plus a few columns to filter on.
- `OrderDesk` is the daemon service (`state.services["orders"]`): it signs orders
  with the node's unlocked Ethereum key, publishes them on `/sonm/orders/1`, takes
  deliveries from the gossip router, and re-publishes its own messages that could
  not be sent yet (no peers), so an order placed before the mesh formed still goes
  out.
- `router`, the FastAPI endpoints: POST /orders, POST /orders/{id}/cancel,
  GET /orders, GET /orders/{id}.

Amounts are strings of token base units in JSON (an SNM price in wei does not fit a
JavaScript number); ids and addresses are 0x-hex.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import trio
from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from gossip import codec
from gossip.eip712 import SigningDomain, address_of_key
from gossip.messages import (
    UINT64_MAX,
    FieldError,
    MessageDecodeError,
    address_hex,
    parse_address,
)
from gossip.orders import (
    BENCHMARK_NAMES,
    ORDER_MAX_BLACKLIST,
    ORDER_MAX_DURATION_SECONDS,
    ORDER_MAX_PROPERTIES,
    ORDER_MAX_PROPERTY_KEY_BYTES,
    ORDER_MAX_PROPERTY_VALUE_BYTES,
    ORDER_MAX_VALIDITY_SECONDS,
    RATING_MAX,
    RESOURCE_BENCHMARKS,
    NetworkType,
    Order,
    OrderCancel,
    Side,
)
from gossip.topics import ORDERS_TOPIC
from p2pnode.api.errors import error, unprocessable
from p2pnode.api.state import NodeDep
from p2pnode.errors import LocalError, UserError
from p2pnode.storage import Storage

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], Awaitable[bytes]]
_INT64_MAX = 2**63 - 1  # SQLite INTEGER; uint64 columns are clamped for filtering only

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS gossip_orders (
        order_id BLOB PRIMARY KEY,      -- EIP-712 digest
        data BLOB NOT NULL,             -- the signed message, canonical msgpack
        side INTEGER NOT NULL,
        author BLOB NOT NULL,
        price TEXT NOT NULL,            -- uint256 as 64 hex digits: text order = numeric order
        cpu_cores INTEGER NOT NULL,     -- uint64 clamped to 2^63-1 (data is authoritative)
        ram INTEGER NOT NULL,
        storage INTEGER NOT NULL,
        gpu_count INTEGER NOT NULL,
        gpu_mem INTEGER NOT NULL,
        network INTEGER NOT NULL,
        geo TEXT NOT NULL,
        nonce TEXT NOT NULL,
        valid_until INTEGER NOT NULL,
        received_at REAL NOT NULL,
        own INTEGER NOT NULL,
        published INTEGER NOT NULL,
        cancelled_at REAL
    )
    """,
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


def _price_key(price: int) -> str:
    return f"{price:064x}"


def _clamp(value: int) -> int:
    return min(value, _INT64_MAX)


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
        for name in (
            "min_cpu_cores",
            "min_ram_bytes",
            "min_storage_bytes",
            "min_gpu_count",
            "min_gpu_mem_bytes",
        ):
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
        cancelled_at = now if cancel else None
        with self.storage.lock:
            cur = self.storage.connection.execute(
                "INSERT OR IGNORE INTO gossip_orders VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    order_id,
                    data,
                    int(order.side),
                    order.author,
                    _price_key(order.price_per_hour),
                    _clamp(order.cpu_cores),
                    _clamp(order.ram_bytes),
                    _clamp(order.storage_bytes),
                    _clamp(order.gpu_count),
                    _clamp(order.gpu_mem_bytes),
                    int(order.network),
                    order.geo,
                    str(order.nonce),
                    _clamp(order.valid_until),
                    now,
                    int(own),
                    int(published),
                    cancelled_at,
                ),
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
            "SELECT order_id, data, received_at, own, published, cancelled_at "
            "FROM gossip_orders WHERE order_id = ?",
            (order_id,),
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
        for column, value in (
            ("cpu_cores", flt.min_cpu_cores),
            ("ram", flt.min_ram_bytes),
            ("storage", flt.min_storage_bytes),
            ("gpu_count", flt.min_gpu_count),
            ("gpu_mem", flt.min_gpu_mem_bytes),
        ):
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
            "SELECT order_id, data, received_at, own, published, cancelled_at FROM gossip_orders"
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


class NoAccountError(UserError):
    """The node has no unlocked Ethereum key, so it cannot sign orders."""


class AlreadyCancelledError(UserError):
    """The order is cancelled already; a second cancel would be signed and gossiped for
    nothing (and would spend a nonce and every peer's bandwidth)."""


class OrderDesk:
    """Signs, publishes and books the node's orders; books what gossip delivers.

    `publish` is the pubsub driver's `publish(topic, data) -> msg id` (it raises
    gossip.router.PublishError, a LocalError, when no peer can take the message);
    `accepted` is the validator's `pop_accepted`, so a delivered order is not
    decoded and hashed twice.
    """

    def __init__(
        self,
        book: OrderBook,
        domain: SigningDomain,
        *,
        private_key: bytes | None,
        publish: Publish | None,
        accepted: Callable[[bytes], Any] | None = None,
        clock: Callable[[], float] = time.time,
        republish_interval: float = 5.0,
    ) -> None:
        domain.validate()
        if not republish_interval > 0:
            raise ValueError(f"republish_interval: must be > 0 s, got {republish_interval}")
        self.book = book
        self.domain = domain
        self._key = private_key
        self.address = address_of_key(private_key) if private_key is not None else None
        self.signing_key = private_key  # the account other services sign with (peer records)
        self._publish = publish
        self._accepted = accepted
        self.clock = clock
        self.republish_interval = republish_interval
        self.delivered = 0
        self.bad_deliveries = 0
        self._last_nonce = -1

    def _nonce(self, author: bytes, now: float) -> int:
        """Unique and rising per author, across restarts (the book) and within one ms."""
        nonce = max(self.book.next_nonce(author, now), self._last_nonce + 1)
        self._last_nonce = nonce
        return nonce

    def _require_key(self) -> tuple[bytes, bytes]:
        if self._key is None or self.address is None:
            raise NoAccountError(
                "this node has no unlocked Ethereum account: create one with "
                "`sonm-p2p keys new` and start the node with SONM_KEY_PASSWORD set"
            )
        return self._key, self.address

    async def _send(self, data: bytes) -> str | None:
        """Publish; None on success, else why not (the message stays queued to retry)."""
        if self._publish is None:
            return "the node has no pubsub service"
        try:
            await self._publish(ORDERS_TOPIC, data)
        except LocalError as exc:
            return str(exc) or type(exc).__name__
        return None

    async def place(self, make: Callable[[bytes, int, int], Order]) -> tuple[BookEntry, str | None]:
        """Sign and publish the order `make(author, nonce, now)` builds."""
        key, author = self._require_key()
        now = self.clock()
        order = make(author, self._nonce(author, now), math.floor(now))
        signed = order.signed(self.domain, key)
        data = codec.encode(signed)
        order_id = signed.order_id(self.domain)
        self.book.add(signed, order_id, data, now, own=True, published=False)
        error = await self._send(data)
        if error is None:
            self.book.mark_published(order_id)
        entry = self.book.get(order_id)
        assert entry is not None
        return entry, error

    async def cancel(self, order_id: bytes) -> tuple[BookEntry, str | None]:
        key, author = self._require_key()
        entry = self.book.get(order_id)
        if entry is None:
            raise KeyError(order_id)
        if entry.order.author != author:
            raise UserError(
                f"order 0x{order_id.hex()} belongs to {address_hex(entry.order.author)}, "
                f"not to this node's account {address_hex(author)}"
            )
        if entry.cancelled:
            raise AlreadyCancelledError(f"order 0x{order_id.hex()} is cancelled already")
        now = self.clock()
        until = entry.order.valid_until
        start = min(max(math.floor(now), until - ORDER_MAX_VALIDITY_SECONDS), until - 1)
        cancel = OrderCancel(
            author=author,
            order_id=order_id,
            nonce=self._nonce(author, now),
            valid_from=start,
            valid_until=until,
        ).signed(self.domain, key)
        data = codec.encode(cancel)
        self.book.apply_cancel(cancel, data, now, own=True, published=False)
        error = await self._send(data)
        if error is None:
            self.book.mark_published(order_id, cancel=True)
        updated = self.book.get(order_id)
        assert updated is not None
        return updated, error

    def on_delivery(self, topic: str, data: bytes) -> None:
        """Book an order or cancellation the router accepted (already validated)."""
        if topic != ORDERS_TOPIC:
            return
        verdict = self._accepted(data) if self._accepted is not None else None
        msg = getattr(verdict, "message", None)
        try:
            if msg is None:
                msg = codec.decode(data)
        except MessageDecodeError:
            self.bad_deliveries += 1
            return
        now = self.clock()
        if isinstance(msg, Order):
            order_id = getattr(verdict, "digest", None) or msg.order_id(self.domain)
            self.book.add(msg, order_id, data, now, own=False, published=True)
        elif isinstance(msg, OrderCancel):
            self.book.apply_cancel(msg, data, now, own=False, published=True)
        else:
            self.bad_deliveries += 1
            return
        self.delivered += 1

    async def republish_once(self) -> int:
        """Send own messages that could not go out before; returns how many went now."""
        sent = 0
        for order_id, data, is_cancel in self.book.unpublished(self.clock()):
            if await self._send(data) is None:
                self.book.mark_published(order_id, cancel=is_cancel)
                sent += 1
        return sent

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self.republish_interval)
            try:
                await self.republish_once()
                self.book.prune(self.clock())
            except (LocalError, sqlite3.Error) as exc:  # a full disk must not stop the node
                log.warning("orders upkeep failed: %s", exc)


def orders_service(host: Any, config: Any, storage: Storage) -> OrderDesk:
    """Daemon service factory: `ServiceSpec("orders", orders_service)` after "pubsub".

    Unlocks the keystore when SONM_KEY_PASSWORD is set and the keystore exists;
    otherwise the desk is read-only (lists orders, refuses to place them). A wrong
    password is an error at start, not a silent read-only node.
    """
    from p2pnode import keys

    private_key: bytes | None = None
    path = config.keystore_path
    if path.exists() and keys.PASSWORD_ENV in os.environ:
        password = keys.read_password(keys.PasswordSource(interactive=False))
        private_key, _ = keys.unlock_keystore(path, password)
    ctx = getattr(host, "sonm_context", None)
    pubsub_service = ctx.services.get("pubsub") if ctx is not None else None
    pubsub = getattr(pubsub_service, "pubsub", None)
    validator = getattr(pubsub_service, "validator", None)
    desk = OrderDesk(
        OrderBook(storage),
        SigningDomain(chain_id=int(getattr(config.chain, "chain_id", 31337))),
        private_key=private_key,
        publish=pubsub.publish if pubsub is not None else None,
        accepted=getattr(validator, "pop_accepted", None),
    )
    handlers = getattr(pubsub_service, "delivery_handlers", None)
    if isinstance(handlers, dict):
        handlers.setdefault(ORDERS_TOPIC, []).append(desk.on_delivery)
    return desk


# --- HTTP ----------------------------------------------------------------------------
# Every bound the handlers or the order model enforce is declared in the models below,
# so /openapi.json says exactly what is accepted: a body valid by the document is
# signed, one invalid by it is a 422 naming the field.

router = APIRouter(tags=["orders"])

NETWORK_NAMES: dict[str, NetworkType] = {
    "none": NetworkType.NONE,
    "out": NetworkType.OUTBOUND,
    "in/out": NetworkType.INBOUND_OUTBOUND,
}
_NETWORK_TEXT = {v: k for k, v in NETWORK_NAMES.items()}
# 77 digits: every such number is below 2^256, so the pattern is the whole bound
_UINT256 = r"^[0-9]{1,77}$"
_ADDRESS = r"^0[xX][0-9a-fA-F]{40}$"
ORDER_ID_PATTERN = r"^0[xX][0-9a-fA-F]{64}$"
_STRICT = ConfigDict(strict=True, extra="forbid")


def _integral(value: Any) -> Any:
    """JSON Schema counts 1225.0 as an integer; bool and "1225" stay refused (strict)."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


Int = Annotated[int, BeforeValidator(_integral)]
U64 = Annotated[int, Field(ge=0, le=UINT64_MAX), BeforeValidator(_integral)]
Address = Annotated[str, Field(pattern=_ADDRESS, description="0x followed by 40 hex digits")]
PropertyKey = Annotated[
    str, Field(pattern=rf"^[a-z0-9][a-z0-9._-]{{0,{ORDER_MAX_PROPERTY_KEY_BYTES - 1}}}$")
]
# printable ASCII: a character count is then a byte count, as the wire's bound is
PropertyValue = Annotated[str, Field(pattern=rf"^[ -~]{{0,{ORDER_MAX_PROPERTY_VALUE_BYTES}}}$")]
OrderIdPath = Annotated[
    str, Path(pattern=ORDER_ID_PATTERN, description="0x followed by 64 hex digits")
]


class BenchmarksIn(BaseModel):
    """The benchmarks that are not resources; resources are the order's own fields."""

    model_config = _STRICT

    cpu_sysbench_multi: U64 = Field(0, alias="cpu-sysbench-multi")
    cpu_sysbench_single: U64 = Field(0, alias="cpu-sysbench-single")
    gpu_eth_hashrate: U64 = Field(0, alias="gpu-eth-hashrate")
    gpu_cash_hashrate: U64 = Field(0, alias="gpu-cash-hashrate")
    gpu_redshift: U64 = Field(0, alias="gpu-redshift")
    cpu_cryptonight: U64 = Field(0, alias="cpu-cryptonight")

    @model_validator(mode="before")
    @classmethod
    def _resources_are_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            by_name = {bench: field for field, bench in RESOURCE_BENCHMARKS.items()}
            for name in data:
                if name in by_name:
                    raise ValueError(f"benchmarks.{name} is a resource: give it as {by_name[name]}")
        return data

    def values(self) -> dict[str, int]:
        return self.model_dump(by_alias=True)


class OrderIn(BaseModel):
    """An order to sign and publish. Resources are requirements (BID) or offers (ASK)."""

    model_config = _STRICT

    side: Literal["ask", "bid"]
    price_per_hour: str = Field(pattern=_UINT256, description="token base units (10^-18 SNM)")
    duration: Int = Field(ge=0, le=ORDER_MAX_DURATION_SECONDS, description="seconds; 0 = spot")
    cpu_cores: U64 = 0
    ram_bytes: U64 = 0
    storage_bytes: U64 = 0
    gpu_count: U64 = 0
    gpu_mem_bytes: U64 = 0
    net_in_bps: U64 = 0
    net_out_bps: U64 = 0
    benchmarks: BenchmarksIn = Field(default_factory=lambda: BenchmarksIn.model_validate({}))
    network: Literal["none", "out", "in/out"] = "none"
    properties: dict[PropertyKey, PropertyValue] = Field(
        default_factory=dict,
        max_length=ORDER_MAX_PROPERTIES,
        json_schema_extra={"additionalProperties": False},  # keys not matching: refused
    )
    counterparty: Address | None = Field(None, description="only deal with this address")
    blacklist: list[Address] = Field(default_factory=list, max_length=ORDER_MAX_BLACKLIST)
    min_rating: Int = Field(0, ge=0, le=RATING_MAX, description="basis points")
    geo: str = Field("", pattern=r"^([A-Z]{2})?$", description="ISO 3166-1 alpha-2, or empty")
    valid_for: Int = Field(
        86_400, ge=60, le=ORDER_MAX_VALIDITY_SECONDS, description="seconds from now"
    )


class OrderOut(BaseModel):
    order_id: str = Field(pattern=ORDER_ID_PATTERN)
    side: Literal["ask", "bid"]
    author: str = Field(pattern=_ADDRESS)
    price_per_hour: str
    duration: int
    cpu_cores: int
    ram_bytes: int
    storage_bytes: int
    gpu_count: int
    gpu_mem_bytes: int
    net_in_bps: int
    net_out_bps: int
    benchmarks: dict[str, int]
    network: str
    properties: dict[str, str]
    counterparty: str | None
    blacklist: list[str]
    min_rating: int
    geo: str
    nonce: str
    valid_from: int
    valid_until: int
    received_at: float
    own: bool
    published: bool
    cancelled: bool


class PlaceResult(BaseModel):
    order: OrderOut
    published: bool
    publish_error: str | None = None


class OrderList(BaseModel):
    count: int
    orders: list[OrderOut]


def order_out(entry: BookEntry) -> OrderOut:
    o = entry.order
    return OrderOut(
        order_id="0x" + entry.order_id.hex(),
        side="ask" if o.side is Side.ASK else "bid",
        author=address_hex(o.author),
        price_per_hour=str(o.price_per_hour),
        duration=o.duration,
        cpu_cores=o.cpu_cores,
        ram_bytes=o.ram_bytes,
        storage_bytes=o.storage_bytes,
        gpu_count=o.gpu_count,
        gpu_mem_bytes=o.gpu_mem_bytes,
        net_in_bps=o.net_in_bps,
        net_out_bps=o.net_out_bps,
        benchmarks=dict(zip(BENCHMARK_NAMES, o.benchmarks, strict=True)),
        network=_NETWORK_TEXT[o.network],
        properties={p.key: p.value for p in o.properties},
        counterparty=None if not any(o.counterparty) else address_hex(o.counterparty),
        blacklist=[address_hex(a) for a in o.blacklist],
        min_rating=o.min_rating,
        geo=o.geo,
        nonce=str(o.nonce),
        valid_from=o.valid_from,
        valid_until=o.valid_until,
        received_at=entry.received_at,
        own=entry.own,
        published=entry.published,
        cancelled=entry.cancelled,
    )


def _desk(state: Any) -> OrderDesk:
    desk = state.services.get("orders")
    if not isinstance(desk, OrderDesk):
        raise HTTPException(503, "the orders service is not running on this node")
    return desk


def _order_maker(body: OrderIn) -> Callable[[bytes, int, int], Order]:
    counterparty = (
        parse_address("counterparty", body.counterparty) if body.counterparty else bytes(20)
    )
    blacklist = tuple(parse_address(f"blacklist[{i}]", a) for i, a in enumerate(body.blacklist))

    def make(author: bytes, nonce: int, now: int) -> Order:
        return Order.create(
            author=author,
            side=Side.ASK if body.side == "ask" else Side.BID,
            price_per_hour=int(body.price_per_hour),
            duration=body.duration,
            nonce=nonce,
            valid_from=now,
            valid_until=now + body.valid_for,
            cpu_cores=body.cpu_cores,
            ram_bytes=body.ram_bytes,
            storage_bytes=body.storage_bytes,
            gpu_count=body.gpu_count,
            gpu_mem_bytes=body.gpu_mem_bytes,
            net_in_bps=body.net_in_bps,
            net_out_bps=body.net_out_bps,
            benchmarks=body.benchmarks.values(),
            network=NETWORK_NAMES[body.network],
            properties=body.properties,
            counterparty=counterparty,
            blacklist=blacklist,
            min_rating=body.min_rating,
            geo=body.geo,
        )

    return make


def _field_error(where: str, exc: FieldError) -> RequestValidationError:
    return unprocessable([where, *exc.field.split(".")], exc.problem)


_SERVICE_DOWN: dict[int | str, dict[str, Any]] = {
    503: error("the orders service is not running on this node")
}
_NO_ORDER: dict[int | str, dict[str, Any]] = {
    404: error("no order with this id is known to this node")
}


@router.post(
    "/orders",
    response_model=PlaceResult,
    status_code=201,
    responses={**_SERVICE_DOWN, 409: error("this node has no unlocked Ethereum account")},
)
async def place_order(body: OrderIn, state: NodeDep) -> PlaceResult:
    """Sign an ASK or BID with the node's account and publish it on /sonm/orders/1.

    If no peer can take it yet, the order is kept and re-sent when peers appear:
    `published` says which happened."""
    desk = _desk(state)
    try:
        entry, error_text = await desk.place(_order_maker(body))
    except FieldError as exc:
        raise _field_error("body", exc) from None
    except NoAccountError as exc:
        raise HTTPException(409, str(exc)) from None
    return PlaceResult(
        order=order_out(entry), published=error_text is None, publish_error=error_text
    )


@router.post(
    "/orders/{order_id}/cancel",
    response_model=PlaceResult,
    responses={
        **_SERVICE_DOWN,
        **_NO_ORDER,
        403: error("the order belongs to another account"),
        409: error("the order is cancelled already, or the node has no unlocked account"),
    },
)
async def cancel_order(order_id: OrderIdPath, state: NodeDep) -> PlaceResult:
    """Sign and publish a cancellation of one of this node's own orders."""
    desk = _desk(state)
    try:
        entry, error_text = await desk.cancel(bytes.fromhex(order_id[2:]))
    except KeyError:
        raise HTTPException(404, f"no order {order_id} known to this node") from None
    except (NoAccountError, AlreadyCancelledError) as exc:
        raise HTTPException(409, str(exc)) from None
    except UserError as exc:
        raise HTTPException(403, str(exc)) from None
    return PlaceResult(
        order=order_out(entry), published=error_text is None, publish_error=error_text
    )


@router.get("/orders", response_model=OrderList, responses=_SERVICE_DOWN)
async def list_orders(
    state: NodeDep,
    side: Literal["ask", "bid"] | None = None,
    author: str | None = Query(None, pattern=_ADDRESS, description="0x address"),
    min_price: str | None = Query(None, pattern=_UINT256),
    max_price: str | None = Query(None, pattern=_UINT256),
    min_cpu_cores: int = Query(0, ge=0, le=UINT64_MAX),
    min_ram_bytes: int = Query(0, ge=0, le=UINT64_MAX),
    min_storage_bytes: int = Query(0, ge=0, le=UINT64_MAX),
    min_gpu_count: int = Query(0, ge=0, le=UINT64_MAX),
    min_gpu_mem_bytes: int = Query(0, ge=0, le=UINT64_MAX),
    network: Literal["none", "out", "in/out"] | None = Query(
        None, description="orders whose network type covers this"
    ),
    geo: str | None = Query(None, pattern=r"^[A-Z]{2}$"),
    own: bool | None = None,
    include_cancelled: bool = False,
    include_expired: bool = False,
    sort: Literal["price", "-price", "received"] = "price",
    limit: int = Query(100, ge=1, le=10_000),
) -> OrderList:
    """Orders this node has seen (and its own), newest state, filtered."""
    desk = _desk(state)
    try:
        flt = OrderFilter(
            side=None if side is None else (Side.ASK if side == "ask" else Side.BID),
            author=parse_address("author", author) if author else None,
            min_price=int(min_price) if min_price is not None else None,
            max_price=int(max_price) if max_price is not None else None,
            min_cpu_cores=min_cpu_cores,
            min_ram_bytes=min_ram_bytes,
            min_storage_bytes=min_storage_bytes,
            min_gpu_count=min_gpu_count,
            min_gpu_mem_bytes=min_gpu_mem_bytes,
            network=None if network is None else NETWORK_NAMES[network],
            geo=geo,
            own=own,
            include_cancelled=include_cancelled,
            include_expired=include_expired,
            sort=sort,
            limit=limit,
        )
        entries = desk.book.query(flt, desk.clock())
    except FieldError as exc:
        raise _field_error("query", exc) from None
    except UserError as exc:
        raise unprocessable(["query"], str(exc)) from None
    return OrderList(count=len(entries), orders=[order_out(e) for e in entries])


@router.get("/orders/{order_id}", response_model=OrderOut, responses={**_SERVICE_DOWN, **_NO_ORDER})
async def get_order(order_id: OrderIdPath, state: NodeDep) -> OrderOut:
    desk = _desk(state)
    entry = desk.book.get(bytes.fromhex(order_id[2:]))
    if entry is None:
        raise HTTPException(404, f"no order {order_id} known to this node")
    return order_out(entry)
