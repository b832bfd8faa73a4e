"""GET /status: who this node is and how connected it is."""

from __future__ import annotations

import time

from fastapi import APIRouter
from pydantic import BaseModel

from p2pnode import __version__
from p2pnode.api.state import NodeDep

router = APIRouter(tags=["node"])


class Status(BaseModel):
    peer_id: str
    role: str
    version: str
    listen_addrs: list[str]
    connections: int
    known_peers: int
    min_connections: int
    max_connections: int
    uptime_s: float
    services: list[str]


@router.get("/status", response_model=Status)
async def get_status(state: NodeDep) -> Status:
    host = state.host
    addrs = [str(a) for a in host.get_addrs()] if host is not None else []
    conns = len(host.get_connected_peers()) if host is not None else 0
    net = state.config.network
    return Status(
        peer_id=state.peer_id,
        role=state.config.node.role,
        version=__version__,
        listen_addrs=addrs,
        connections=conns,
        known_peers=state.storage.count_peers(),
        min_connections=net.min_connections,
        max_connections=net.max_connections,
        uptime_s=round(time.time() - state.started_at, 3),
        services=sorted(state.services),
    )
