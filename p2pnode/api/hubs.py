"""GET /hubs: every hub this node knows, its status and why (the reputation service)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from p2pnode.api.errors import error
from p2pnode.api.state import NodeDep

router = APIRouter(tags=["reputation"])

_DOWN: dict[int | str, dict[str, Any]] = {
    503: error("the reputation service is not running on this node")
}


class HubTransition(BaseModel):
    at: float = Field(description="unix seconds")
    from_status: str = Field(alias="from")
    to: str
    reason: str
    detail: str


class Hub(BaseModel):
    hub: str = Field(description="the hub wallet's address")
    owner: str | None = Field(description="the announcing owner's address")
    name: str
    status: str = Field(description="unknown, unverified, checked, safe, suspected or fake")
    reason: str | None = Field(description="the reason of the latest change")
    why: str = Field(description="that reason in words")
    detail: str
    since: float | None
    history: list[HubTransition] = Field(description="the newest 64 changes, oldest first")
    payments_seen: int = Field(ge=0, description="hub wallet payments read from the chain")
    paid_total: str = Field(description="their sum, token base units (decimal)")
    agreements: int = Field(ge=0, description="this node's agreements with the hub")
    evidence: str | None = Field(description="what our own evidence says: good, bad or none")
    answers: int = Field(ge=0, description="trust answers kept about the hub")
    weight_positive: float
    weight_negative: float
    warning: float = Field(
        description="weight of trusted or proven news that a worker went unpaid there since "
        "the hub last paid us; a worker neither joins nor stays with a hub that has one"
    )
    proven: int = Field(
        ge=0, description="answers whose proof of a missed first payday checks on chain"
    )
    trust: float = Field(description="the owner's global trust, 1.0 = average")
    rating: int = Field(ge=0, le=10_000, description="the owner's rating, basis points")


class Hubs(BaseModel):
    counts: dict[str, int]
    hubs: list[Hub]


@router.get("/hubs", response_model=Hubs, response_model_by_alias=True, responses=_DOWN)
async def get_hubs(state: NodeDep) -> Hubs:
    service = state.services.get("reputation")
    if service is None:
        raise HTTPException(503, "the reputation service is not running on this node")
    hubs = [Hub.model_validate(h) for h in service.hubs()]
    counts: dict[str, int] = {}
    for h in hubs:
        counts[h.status] = counts.get(h.status, 0) + 1
    return Hubs(counts=counts, hubs=hubs)
