"""Orders on the local API: place an ASK or BID, cancel it, list what the node has seen.

HTTP only: POST /orders, POST /orders/{id}/cancel, GET /orders, GET /orders/{id}.
The book and the desk they call live in p2pnode/market/ (`state.services["orders"]`
is the desk).

Amounts are strings of token base units in JSON (an SNM price in wei does not fit a
JavaScript number); ids and addresses are 0x-hex.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from gossip.messages import (
    UINT64_MAX,
    FieldError,
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
    Side,
)
from p2pnode.api.errors import error, unprocessable
from p2pnode.api.state import NodeDep
from p2pnode.errors import UserError
from p2pnode.market.book import BookEntry, OrderFilter
from p2pnode.market.desk import AlreadyCancelledError, NoAccountError, OrderDesk, OrderQuotaError

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


# Order fields the JSON carries as they are, in and out (same name, same value); the
# rest are converted above and below, one line each.
_VERBATIM = (
    "duration",
    "cpu_cores",
    "ram_bytes",
    "storage_bytes",
    "gpu_count",
    "gpu_mem_bytes",
    "net_in_bps",
    "net_out_bps",
    "min_rating",
    "geo",
)


def order_out(entry: BookEntry) -> OrderOut:
    o = entry.order
    return OrderOut(
        **{name: getattr(o, name) for name in (*_VERBATIM, "valid_from", "valid_until")},
        order_id="0x" + entry.order_id.hex(),
        side="ask" if o.side is Side.ASK else "bid",
        author=address_hex(o.author),
        price_per_hour=str(o.price_per_hour),
        benchmarks=dict(zip(BENCHMARK_NAMES, o.benchmarks, strict=True)),
        network=_NETWORK_TEXT[o.network],
        properties={p.key: p.value for p in o.properties},
        counterparty=None if not any(o.counterparty) else address_hex(o.counterparty),
        blacklist=[address_hex(a) for a in o.blacklist],
        nonce=str(o.nonce),
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
            **{name: getattr(body, name) for name in _VERBATIM},
            author=author,
            side=Side.ASK if body.side == "ask" else Side.BID,
            price_per_hour=int(body.price_per_hour),
            nonce=nonce,
            valid_from=now,
            valid_until=now + body.valid_for,
            benchmarks=body.benchmarks.values(),
            network=NETWORK_NAMES[body.network],
            properties=body.properties,
            counterparty=counterparty,
            blacklist=blacklist,
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
    except OrderQuotaError as exc:
        raise HTTPException(429, str(exc)) from None
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
