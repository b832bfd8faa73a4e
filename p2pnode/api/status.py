"""GET /status: who this node is and how connected it is."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from fastapi import APIRouter
from pydantic import BaseModel

from p2pnode import __version__
from p2pnode.api.state import NodeDep

router = APIRouter(tags=["node"])
T = TypeVar("T")
_READ_TRIES = 5


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


def _off_loop_read(read: Callable[[], T]) -> T:
    """Call a read of the host's state from the API's own thread (p2pnode/api/thread.py).

    The host's maps belong to the daemon's loop; a Python-level walk over one may
    meet it changing size ("dictionary changed size during iteration"): read again."""
    for _ in range(_READ_TRIES - 1):
        try:
            return read()
        except RuntimeError:
            continue
    return read()


@router.get("/status", response_model=Status)
async def get_status(state: NodeDep) -> Status:
    """Served on the API's own thread: everything read here must be safe to read
    from outside the daemon's loop (the storage has its lock)."""
    host = state.host
    addrs = [str(a) for a in _off_loop_read(host.get_addrs)] if host is not None else []
    conns = len(_off_loop_read(host.get_connected_peers)) if host is not None else 0
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
