"""Orders on the local API: place an ASK or BID, cancel it, list what the node has seen.

HTTP only: POST /orders, POST /orders/{id}/cancel, GET /orders, GET /orders/{id}.
The book and the desk they call live in p2pnode/market/ (`state.services["orders"]`
is the desk).

Amounts are strings of token base units in JSON (an SNM price in wei does not fit a
JavaScript number); ids and addresses are 0x-hex.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from gossip.messages import (
    FieldError,
    address_hex,
    parse_address,
)
from gossip.orders import (
    BENCHMARK_NAMES,
    ORDER_MAX_VALIDITY_SECONDS,
    NetworkType,
    Order,
    Side,
)
from p2pnode.api.state import NodeDep
from p2pnode.errors import UserError
from p2pnode.market.book import BookEntry, OrderFilter
from p2pnode.market.desk import NoAccountError, OrderDesk

# --- HTTP ----------------------------------------------------------------------------

router = APIRouter(tags=["orders"])

NETWORK_NAMES: dict[str, NetworkType] = {
    "none": NetworkType.NONE,
    "out": NetworkType.OUTBOUND,
    "in/out": NetworkType.INBOUND_OUTBOUND,
}
_NETWORK_TEXT = {v: k for k, v in NETWORK_NAMES.items()}
_UINT = r"^[0-9]{1,78}$"


class OrderIn(BaseModel):
    """An order to sign and publish. Resources are requirements (BID) or offers (ASK)."""

    side: Literal["ask", "bid"]
    price_per_hour: str = Field(pattern=_UINT, description="token base units (10^-18 SNM)")
    duration: int = Field(ge=0, description="seconds; 0 = spot")
    cpu_cores: int = Field(0, ge=0)
    ram_bytes: int = Field(0, ge=0)
    storage_bytes: int = Field(0, ge=0)
    gpu_count: int = Field(0, ge=0)
    gpu_mem_bytes: int = Field(0, ge=0)
    net_in_bps: int = Field(0, ge=0)
    net_out_bps: int = Field(0, ge=0)
    benchmarks: dict[str, int] = Field(default_factory=dict, description=str(BENCHMARK_NAMES))
    network: Literal["none", "out", "in/out"] = "none"
    properties: dict[str, str] = Field(default_factory=dict)
    counterparty: str | None = Field(None, description="0x address; only deal with it")
    blacklist: list[str] = Field(default_factory=list)
    min_rating: int = Field(0, ge=0, le=10_000, description="basis points")
    geo: str = ""
    valid_for: int = Field(
        86_400, ge=60, le=ORDER_MAX_VALIDITY_SECONDS, description="seconds from now"
    )


class OrderOut(BaseModel):
    order_id: str
    side: Literal["ask", "bid"]
    author: str
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


def _parse_id(order_id: str) -> bytes:
    text = order_id[2:] if order_id.startswith(("0x", "0X")) else order_id
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise HTTPException(422, "order_id: 0x followed by 64 hex digits expected")
    return raw


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
            benchmarks=body.benchmarks,
            network=NETWORK_NAMES[body.network],
            properties=body.properties,
            counterparty=counterparty,
            blacklist=blacklist,
            min_rating=body.min_rating,
            geo=body.geo,
        )

    return make


@router.post("/orders", response_model=PlaceResult, status_code=201)
async def place_order(body: OrderIn, state: NodeDep) -> PlaceResult:
    """Sign an ASK or BID with the node's account and publish it on /sonm/orders/1.

    If no peer can take it yet, the order is kept and re-sent when peers appear:
    `published` says which happened."""
    desk = _desk(state)
    try:
        entry, error = await desk.place(_order_maker(body))
    except FieldError as exc:
        raise HTTPException(422, str(exc)) from None
    except NoAccountError as exc:
        raise HTTPException(409, str(exc)) from None
    return PlaceResult(order=order_out(entry), published=error is None, publish_error=error)


@router.post("/orders/{order_id}/cancel", response_model=PlaceResult)
async def cancel_order(order_id: str, state: NodeDep) -> PlaceResult:
    """Sign and publish a cancellation of one of this node's own orders."""
    desk = _desk(state)
    raw = _parse_id(order_id)
    try:
        entry, error = await desk.cancel(raw)
    except KeyError:
        raise HTTPException(404, f"no order {order_id} known to this node") from None
    except NoAccountError as exc:
        raise HTTPException(409, str(exc)) from None
    except UserError as exc:
        raise HTTPException(403, str(exc)) from None
    return PlaceResult(order=order_out(entry), published=error is None, publish_error=error)


@router.get("/orders", response_model=OrderList)
async def list_orders(
    state: NodeDep,
    side: Literal["ask", "bid"] | None = None,
    author: str | None = Query(None, description="0x address"),
    min_price: str | None = Query(None, pattern=_UINT),
    max_price: str | None = Query(None, pattern=_UINT),
    min_cpu_cores: int = Query(0, ge=0),
    min_ram_bytes: int = Query(0, ge=0),
    min_storage_bytes: int = Query(0, ge=0),
    min_gpu_count: int = Query(0, ge=0),
    min_gpu_mem_bytes: int = Query(0, ge=0),
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
    except (FieldError, UserError) as exc:
        raise HTTPException(422, str(exc)) from None
    return OrderList(count=len(entries), orders=[order_out(e) for e in entries])


@router.get("/orders/{order_id}", response_model=OrderOut)
async def get_order(order_id: str, state: NodeDep) -> OrderOut:
    desk = _desk(state)
    entry = desk.book.get(_parse_id(order_id))
    if entry is None:
        raise HTTPException(404, f"no order {order_id} known to this node")
    return order_out(entry)
