"""Deals on the local API: GET /deals, GET /deals/{id}, POST /deals/{id}/close, and
GET /orders/{id}/explain (why a BID does or does not match, over the market's index).

HTTP only; the market service (p2pnode/market/dealsvc.py) does the work. Amounts are
strings of token wei (price per second as on chain, and per hour as in the orders).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from gossip.messages import address_hex
from p2pnode.api.errors import error
from p2pnode.api.orders import OrderIdPath
from p2pnode.api.state import NodeDep
from p2pnode.errors import UserError
from p2pnode.market.dealsvc import MarketService
from p2pnode.market.matching import CONSTRAINTS

router = APIRouter(tags=["deals"])

MARKET_DOWN: dict[int | str, dict[str, Any]] = {
    503: error("the market service is not running on this node")
}
_NO_DEAL: dict[int | str, dict[str, Any]] = {404: error("no deal with this id known to this node")}
# deal ids as the node's SQLite stores them (the registry counts from 1)
DealId = Annotated[int, Path(ge=0, le=2**63 - 1)]


class ConstraintOut(BaseModel):
    name: str = Field(description="price, duration, a benchmark's name, network, ...")
    ruled_out: int = Field(ge=0, description="live ASKs failing this constraint")
    only: int = Field(ge=0, description="... failing it and nothing else")


class WinnerOut(BaseModel):
    order_id: str = Field(pattern=r"^0x[0-9a-f]{64}$")
    author: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    price_per_hour: str = Field(pattern=r"^[0-9]{1,77}$", description="token base units")


class ExplainOut(BaseModel):
    bid_id: str = Field(pattern=r"^0x[0-9a-f]{64}$")
    total: int = Field(ge=0, description="live ASKs this node knows (its own excluded)")
    matching: int = Field(ge=0, description="ASKs passing every constraint")
    constraints: list[ConstraintOut] = Field(description="every constraint, in rule order")
    winner: WinnerOut | None = Field(description="the ASK the BID takes now; null if none")


def market(state: Any) -> MarketService:
    service = state.services.get("market")
    if not isinstance(service, MarketService):
        raise HTTPException(503, "the market service is not running on this node")
    return service


@router.get("/deals", responses=MARKET_DOWN)
async def list_deals(
    state: NodeDep,
    status: Literal["pending", "accepted", "closed"] | None = None,
    limit: int = Query(100, ge=1, le=10_000),
) -> dict[str, Any]:
    """Deals this node is party to, newest first, as last read from the registry."""
    rows = market(state).store.deals(status, limit)
    return {"count": len(rows), "deals": [r.to_json() for r in rows]}


@router.get("/deals/{deal_id}", responses={**MARKET_DOWN, **_NO_DEAL})
async def get_deal(deal_id: DealId, state: NodeDep) -> dict[str, Any]:
    row = market(state).store.deal(deal_id)
    if row is None:
        raise HTTPException(404, f"no deal {deal_id} known to this node")
    return row.to_json()


@router.post(
    "/deals/{deal_id}/close",
    responses={
        **MARKET_DOWN,
        **_NO_DEAL,
        409: error("the deal is not accepted, or only its consumer may close it now"),
        502: error("the chain refused or did not answer the close"),
    },
)
async def close_deal(deal_id: DealId, state: NodeDep) -> dict[str, Any]:
    """Close on chain: the consumer at any time (paid pro rata, the rest refunded),
    either side once the deal has ended."""
    service = market(state)
    try:
        row = await service.close_deal(deal_id)
    except KeyError:
        raise HTTPException(404, f"no deal {deal_id} known to this node") from None
    except UserError as exc:
        raise HTTPException(409, str(exc)) from None
    except Exception as exc:  # a revert or an unreachable chain: say which
        raise HTTPException(502, f"closing deal {deal_id} failed: {exc}") from None
    return row.to_json()


@router.get(
    "/orders/{order_id}/explain",
    response_model=ExplainOut,
    responses={
        **MARKET_DOWN,
        404: error("no order with this id is known to this node"),
        409: error("the order is an ASK; only a BID is explained"),
    },
)
async def explain_order(order_id: OrderIdPath, state: NodeDep) -> ExplainOut:
    """For one BID against the ASKs this node knows: how many each constraint rules
    out (`only`: those that relaxing it alone would bring in) and which ASK wins."""
    service = market(state)
    try:
        _, why = service.explain_bid(bytes.fromhex(order_id[2:]))
    except KeyError:
        raise HTTPException(404, f"no order {order_id} known to this node") from None
    except UserError as exc:
        raise HTTPException(409, str(exc)) from None
    w = why.winner
    return ExplainOut(
        bid_id="0x" + order_id[2:].lower(),
        total=why.total,
        matching=why.matching,
        constraints=[
            ConstraintOut(name=c, ruled_out=why.ruled_out[c], only=why.only[c]) for c in CONSTRAINTS
        ],
        winner=None
        if w is None
        else WinnerOut(
            order_id="0x" + w.order_id.hex(),
            author=address_hex(w.author),
            price_per_hour=str(w.price_per_hour),
        ),
    )
