"""The API app: a list of routers, one per area, behind one bearer-token check.

To add an area's endpoints, write `p2pnode/api/<area>.py` with a module-level
`router = APIRouter(...)` and add it to ROUTERS below. Imported, not looked up by
name: a router that fails to import is a start-up error, not a silently missing area.

Every request passes the token check first, then the request limits (body size,
JSON depth, non-finite numbers; p2pnode/api/limits.py), then its handler.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI
from fastapi.security import HTTPBearer

from p2pnode import __version__
from p2pnode.api import (
    deals,
    errors,
    hubs,
    metrics,
    orders,
    peers,
    slots,
    status,
    tasks,
    workers,
)
from p2pnode.api import ui as web_ui
from p2pnode.api.auth import BearerAuthMiddleware
from p2pnode.api.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH, RequestLimitsMiddleware
from p2pnode.api.openapi import install_exact_openapi
from p2pnode.api.state import NodeState

ROUTERS: tuple[APIRouter, ...] = (
    status.router,
    peers.router,
    metrics.router,
    orders.router,
    deals.router,
    slots.router,
    tasks.router,
    hubs.router,
    workers.router,
)

# Declares the scheme in the OpenAPI document; the middleware enforces it.
bearer_scheme = HTTPBearer(auto_error=False, description="token from <data_dir>/api.token")


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
    for router in ROUTERS if routers is None else routers:
        app.include_router(router)
    errors.install(app)
    install_exact_openapi(app)
    app.add_middleware(RequestLimitsMiddleware)
    app.add_middleware(BearerAuthMiddleware, token=token)  # no token, no read
    web_ui.install(app, token)  # /ui, and its login: a cookie may read, outside the token check
    return app
