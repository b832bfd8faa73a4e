"""What the API handlers may read: one object per daemon, put on `app.state.node`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from p2pnode.config import NodeConfig
from p2pnode.metrics import NodeMetrics
from p2pnode.storage import Storage


@dataclass
class NodeState:
    """Handles the API needs. `host` and `discovery` are None in an API-only test app;
    `services` maps a service's name to the object its factory returned, so an
    area's router finds its own service (e.g. `state.services["market"]`)."""

    config: NodeConfig
    storage: Storage
    metrics: NodeMetrics
    peer_id: str
    host: Any = None
    discovery: Any = None
    services: dict[str, Any] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)


def node_state(request: Request) -> NodeState:
    """FastAPI dependency: `state: NodeState = Depends(node_state)`."""
    state = request.app.state.node
    assert isinstance(state, NodeState)
    return state


NodeDep = Annotated[NodeState, Depends(node_state)]
