"""Deals on the local API: GET /deals, GET /deals/{id}, POST /deals/{id}/close.

HTTP only; the market service (p2pnode/market/dealsvc.py) does the work. Amounts are
strings of token wei (price per second as on chain, and per hour as in the orders).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query

from p2pnode.api.errors import error
from p2pnode.api.state import NodeDep
from p2pnode.errors import UserError
from p2pnode.market.dealsvc import MarketService

router = APIRouter(tags=["deals"])

_DOWN: dict[int | str, dict[str, Any]] = {
    503: error("the market service is not running on this node")
}
_NO_DEAL: dict[int | str, dict[str, Any]] = {404: error("no deal with this id known to this node")}
# deal ids as the node's SQLite stores them (the registry counts from 1)
DealId = Annotated[int, Path(ge=0, le=2**63 - 1)]


def market(state: Any) -> MarketService:
    service = state.services.get("market")
    if not isinstance(service, MarketService):
        raise HTTPException(503, "the market service is not running on this node")
    return service


@router.get("/deals", responses=_DOWN)
async def list_deals(
    state: NodeDep,
    status: Literal["pending", "accepted", "closed"] | None = None,
    limit: int = Query(100, ge=1, le=10_000),
) -> dict[str, Any]:
    """Deals this node is party to, newest first, as last read from the registry."""
    rows = market(state).store.deals(status, limit)
    return {"count": len(rows), "deals": [r.to_json() for r in rows]}


@router.get("/deals/{deal_id}", responses={**_DOWN, **_NO_DEAL})
async def get_deal(deal_id: DealId, state: NodeDep) -> dict[str, Any]:
    row = market(state).store.deal(deal_id)
    if row is None:
        raise HTTPException(404, f"no deal {deal_id} known to this node")
    return row.to_json()


@router.post(
    "/deals/{deal_id}/close",
    responses={
        **_DOWN,
        **_NO_DEAL,
        409: error("the deal is not accepted, or has not ended and this node is its hub"),
        502: error("the close transaction failed or the chain is unreachable"),
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
