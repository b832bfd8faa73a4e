"""The API app: a list of routers, one per area, behind one bearer-token check.

To add an area's endpoints, write `p2pnode/api/<area>.py` with a module-level
`router = APIRouter(...)` and add its module name to ROUTER_MODULES below. A module
that has not landed yet is skipped, so areas can land in any order.

Every request passes the token check first, then the request limits (body size,
JSON depth, non-finite numbers; p2pnode/api/limits.py), then its handler.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from fastapi import APIRouter, FastAPI
from fastapi.security import HTTPBearer

from p2pnode import __version__
from p2pnode.api import errors
from p2pnode.api.auth import BearerAuthMiddleware
from p2pnode.api.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH, RequestLimitsMiddleware
from p2pnode.api.openapi import install_exact_openapi
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
        description=(
            "Local API of one node. Every request needs `Authorization: Bearer <token>`. "
            f"Request bodies are at most {MAX_BODY_BYTES} bytes of JSON nested at most "
            f"{MAX_JSON_DEPTH} deep."
        ),
        dependencies=[Security(bearer_scheme)],
        responses=errors.COMMON_RESPONSES,
    )
    app.state.node = state
    for router in load_routers() if routers is None else routers:
        app.include_router(router)
    errors.install(app)
    install_exact_openapi(app)
    app.add_middleware(RequestLimitsMiddleware)
    app.add_middleware(BearerAuthMiddleware, token=token)  # outermost: no token, no read
    return app
