"""Slots on the local API: GET /slots, POST /slots, DELETE /slots/{id}.

HTTP only; the slots live in the market service (p2pnode/market/dealsvc.py), which
places an ASK for each free one. A slot that does not fit the worker is a 409 whose
detail names every shortfall.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from gossip.orders import NetworkType
from p2pnode.api.deals import MARKET_DOWN, market
from p2pnode.api.errors import error
from p2pnode.api.state import NodeDep
from p2pnode.errors import LocalError
from p2pnode.market.dealstore import slot_to_json
from p2pnode.market.slots import Slot, SlotDoesNotFit, SlotError

router = APIRouter(tags=["slots"])

_NETWORK = {
    "none": NetworkType.NONE,
    "out": NetworkType.OUTBOUND,
    "in/out": NetworkType.INBOUND_OUTBOUND,
}


class SlotIn(BaseModel):
    slot_id: str = Field(min_length=1, max_length=64)
    cpu_cores: int = Field(ge=1)
    ram_bytes: int = Field(ge=1)
    storage_bytes: int = Field(0, ge=0)
    gpu_uuids: list[str] = Field(default_factory=list)
    network: Literal["none", "out", "in/out"] = "none"
    price_per_hour: str = Field(pattern=r"^[0-9]{1,78}$", description="token wei per hour")
    duration: int = Field(ge=0, description="longest deal, seconds")
    available_from: int = Field(0, ge=0)
    available_until: int = Field(0, ge=0)
    worker: str = Field(
        "",
        pattern=r"^(0x[0-9a-fA-F]{40})?$",
        description="a joined worker's account; empty: this node's own machine",
    )


def _out(service: Any, slot: Slot) -> dict[str, Any]:
    return {
        **slot_to_json(slot),
        "gpus": service.slot_gpus(slot),
        **service.slot_status(slot.slot_id),
    }


@router.get("/slots", responses=MARKET_DOWN)
async def list_slots(state: NodeDep) -> dict[str, Any]:
    service = market(state)
    try:
        planner = service.planner()
    except LocalError as exc:
        raise HTTPException(503, str(exc)) from None
    free = planner.free()
    remote = [s for s in service.store.slots() if s.worker]
    return {
        "slots": [_out(service, s) for s in (*planner.slots, *remote)],
        "free": {
            "cpu_cores": free.cpu_cores,
            "ram_bytes": free.ram_bytes,
            "storage_bytes": free.storage_bytes,
            "gpu_uuids": sorted(free.gpus),
        },
    }


@router.post(
    "/slots",
    status_code=201,
    responses={
        **MARKET_DOWN,
        409: error("the node sells nothing, or the slot does not fit the worker"),
    },
)
async def add_slot(body: SlotIn, state: NodeDep) -> dict[str, Any]:
    service = market(state)
    if not service.is_supplier:
        raise HTTPException(
            409, "this node sells nothing: set market.hub_wallet, a chain and an account"
        )
    try:
        slot = Slot.create(
            body.slot_id,
            cpu_cores=body.cpu_cores,
            ram_bytes=body.ram_bytes,
            storage_bytes=body.storage_bytes,
            gpu_uuids=body.gpu_uuids,
            network=_NETWORK[body.network],
            price_per_hour=int(body.price_per_hour),
            duration=body.duration,
            available_from=body.available_from,
            available_until=body.available_until,
            worker=body.worker.lower(),
        )
        service.add_slot(slot)
    except SlotDoesNotFit as exc:
        raise HTTPException(409, str(exc)) from None
    except SlotError as exc:
        raise HTTPException(422, str(exc)) from None
    except LocalError as exc:
        raise HTTPException(503, str(exc)) from None
    return _out(service, slot)


@router.delete(
    "/slots/{slot_id}",
    responses={
        **MARKET_DOWN,
        404: error("no slot with this id"),
        409: error("the slot has a deal running"),
    },
)
async def remove_slot(slot_id: str, state: NodeDep) -> dict[str, Any]:
    service = market(state)
    try:
        slot = await service.remove_slot(slot_id)
    except SlotError as exc:
        code = 404 if str(exc).startswith("no slot") else 409
        raise HTTPException(code, str(exc)) from None
    return slot_to_json(slot)
