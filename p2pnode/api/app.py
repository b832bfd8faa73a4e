"""The API app: a list of routers, one per area, behind one bearer-token check.

To add an area's endpoints, write `p2pnode/api/<area>.py` with a module-level
`router = APIRouter(...)` and add its module name to ROUTER_MODULES below. A module
that has not landed yet is skipped, so areas can land in any order.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from fastapi import APIRouter, FastAPI
from fastapi.security import HTTPBearer

from p2pnode import __version__
from p2pnode.api.auth import BearerAuthMiddleware
from p2pnode.api.state import NodeState

ROUTER_MODULES: tuple[str, ...] = (
    "p2pnode.api.status",
    "p2pnode.api.peers",
    "p2pnode.api.metrics",
    "p2pnode.api.orders",
    "p2pnode.api.deals",
    "p2pnode.api.slots",
)

# Declares the scheme in the OpenAPI document; the middleware enforces it.
bearer_scheme = HTTPBearer(auto_error=False, description="token from <data_dir>/api.token")


def load_routers(modules: Sequence[str] = ROUTER_MODULES) -> list[APIRouter]:
    routers: list[APIRouter] = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that area has not landed its endpoints yet
                continue
            raise
        routers.append(module.router)
    return routers


def build_app(state: NodeState, token: str, routers: Sequence[APIRouter] | None = None) -> FastAPI:
    from fastapi import Security

    app = FastAPI(
        title="sonm-p2p node API",
        version=__version__,
        description="Local API of one node. Every request needs `Authorization: Bearer <token>`.",
        dependencies=[Security(bearer_scheme)],
    )
    app.state.node = state
    for router in load_routers() if routers is None else routers:
        app.include_router(router)
    app.add_middleware(BearerAuthMiddleware, token=token)
    return app
