"""The web view at /ui: its page and files, and the one-time login codes.

HTTP only. The page (p2pnode/api/ui_static/) is plain HTML, CSS and JS written
for this project, served from the package: it loads nothing from elsewhere, and
its Content-Security-Policy says so to the browser. It reads its data through the
API's own GET endpoints and the live feed of p2pnode/api/events.py.

The /ui routes are not in /openapi.json: they are the page's, not a contract for
API clients (the one call a client makes, POST /ui/login-code, is what
`sonm-p2p ui` does).
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel

from p2pnode.api import events
from p2pnode.api.ui_auth import CODE_TTL, LOGIN_PATH, UiSessionMiddleware, UiSessions
from p2pnode.liveview import ViewParams

router = APIRouter(include_in_schema=False)

_FILES = {
    "": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "app.css": ("app.css", "text/css; charset=utf-8"),
}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class LoginCode(BaseModel):
    path: str
    expires_in: float


@router.post("/ui/login-code")
async def login_code(request: Request) -> LoginCode:
    """A one-time code for the browser; only with the bearer token (a session's
    cookie reads, and this is no read)."""
    sessions: UiSessions = request.app.state.ui_sessions
    return LoginCode(path=f"{LOGIN_PATH}?code={sessions.new_code()}", expires_in=CODE_TTL)


@router.get("/ui")
async def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/")
async def ui_page() -> Response:
    return await ui_file("")


@router.get("/ui/{name}")
async def ui_file(name: str) -> Response:
    if name not in _FILES:
        raise HTTPException(404, "no such file in the web view")
    filename, media_type = _FILES[name]
    body = resources.files("p2pnode.api").joinpath("ui_static", filename).read_bytes()
    return Response(
        body,
        media_type=media_type,
        headers={
            "Content-Security-Policy": _CSP,
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


def install(app: FastAPI, token: str) -> None:
    """The page's routes, and the login/session layer outside the bearer check (so
    call it after that middleware is added)."""
    app.state.ui_sessions = UiSessions()
    params = ViewParams()
    params.validate()
    app.state.ui_view_params = params
    app.include_router(events.router)  # before ui_file's /ui/{name}
    app.include_router(router)
    app.add_middleware(UiSessionMiddleware, token=token, sessions=app.state.ui_sessions)
