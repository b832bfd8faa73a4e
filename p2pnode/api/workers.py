"""A node's workers on the local API: GET /workers.

HTTP only. On a hub (p2pnode/worker/hub.py): its workers, each agreement's hours,
what was paid and what is owed, and the last payouts. On a worker
(p2pnode/worker/agent.py): the hub it joined, the hubs it heard and what it did last.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from p2pnode.api.errors import error
from p2pnode.api.state import NodeDep
from p2pnode.worker.agent import WorkerAgent
from p2pnode.worker.hub import HubWorkers

router = APIRouter(tags=["workers"])


@router.get(
    "/workers",
    # a node of another role has no workers to show: not a failure of this one
    responses={404: error("this node is neither a hub taking workers nor a worker")},
)
async def workers(state: NodeDep) -> dict[str, Any]:
    service = state.services.get("workers")
    if isinstance(service, HubWorkers):
        return {"role": "hub", **service.workers()}
    if isinstance(service, WorkerAgent):
        return {"role": "worker", **service.status()}
    raise HTTPException(404, "this node is neither a hub taking workers nor a worker")
