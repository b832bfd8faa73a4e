"""How a browser gets into /ui without the API token in its address bar or history.

`sonm-p2p ui` asks the API (with the token) for a one-time code and prints
`<api>/ui/login?code=...`. Opening it trades the code, once and within
`CODE_TTL` seconds, for a session cookie (HttpOnly, SameSite=Strict) and
redirects to /ui/, so the address the browser keeps holds only a spent code.

A session only reads: with its cookie a request may GET or HEAD any path (the page
reads /peers, /hubs, /tasks/{id}/logs, ... like any client), and nothing else; a
request that changes something still needs the bearer token. Cookies are not kept
apart by port, so the cookie's name carries the API's port: nodes on one machine
each keep their own session.

Codes and sessions are held in memory, at most `MAX_CODES` and `MAX_SESSIONS`
(the oldest goes first); a restart of the node ends every session.
"""

from __future__ import annotations

import hmac
import html
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

CODE_TTL = 60.0
SESSION_TTL = 12 * 3600.0
MAX_CODES = 16
MAX_SESSIONS = 32
READ_METHODS = frozenset({"GET", "HEAD"})
LOGIN_PATH = "/ui/login"


class UiSessions:
    """One-time codes and the sessions they became; the clock is injected."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._codes: OrderedDict[str, float] = OrderedDict()  # code -> expiry
        self._sessions: OrderedDict[str, float] = OrderedDict()  # session id -> expiry

    def new_code(self) -> str:
        self._expire(self._codes)
        code = secrets.token_urlsafe(24)
        self._codes[code] = self.clock() + CODE_TTL
        while len(self._codes) > MAX_CODES:
            self._codes.popitem(last=False)
        return code

    def redeem(self, code: str) -> str | None:
        """A new session id for a live code, which is spent; None otherwise."""
        self._expire(self._codes)
        found = next((c for c in self._codes if hmac.compare_digest(c, code)), None)
        if found is None:
            return None
        del self._codes[found]
        self._expire(self._sessions)
        session = secrets.token_urlsafe(32)
        self._sessions[session] = self.clock() + SESSION_TTL
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session

    def valid(self, session: str) -> bool:
        self._expire(self._sessions)
        return any(hmac.compare_digest(s, session) for s in self._sessions)

    def counts(self) -> tuple[int, int]:
        return len(self._codes), len(self._sessions)

    def _expire(self, table: OrderedDict[str, float]) -> None:
        now = self.clock()
        for key in [k for k, until in table.items() if until <= now]:
            del table[key]


def cookie_name(scope: dict[str, Any]) -> str:
    server = scope.get("server") or ("", 0)
    return f"sonm_ui_{server[1] or 0}"


def _cookies(scope: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, val = part.strip().partition("=")
                if key:
                    out[key] = val
    return out


_REFUSED_PAGE = """<!doctype html><meta charset="utf-8"><title>sonm-p2p: log in</title>
<h1>Not logged in</h1><p>{why}</p>
<p>Run <code>sonm-p2p ui</code> (with this node's <code>--config</code> or
<code>--data-dir</code>) and open the address it prints.</p>"""


async def _send(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [
        *headers,
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"referrer-policy", b"no-referrer"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse(send: Any, why: str) -> None:
    body = _REFUSED_PAGE.format(why=html.escape(why)).encode()
    await _send(
        send,
        401,
        body,
        [(b"content-type", b"text/html; charset=utf-8"), (b"www-authenticate", b"Bearer")],
    )


class UiSessionMiddleware:
    """Pure ASGI middleware around the bearer check: trades login codes for cookies,
    and lets a session's read-only requests through as if they bore the token."""

    def __init__(self, app: Any, token: str, sessions: UiSessions) -> None:
        self.app = app
        self._authorization = b"Bearer " + token.encode()
        self.sessions = sessions

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path == LOGIN_PATH and scope.get("method") in READ_METHODS:
            await self._login(scope, send)
            return
        headers = scope.get("headers", [])
        if any(name == b"authorization" for name, _ in headers):
            await self.app(scope, receive, send)  # the bearer check decides
            return
        session = _cookies(scope).get(cookie_name(scope))
        if session and self.sessions.valid(session):
            if scope.get("method") in READ_METHODS:
                scope = {**scope, "headers": [*headers, (b"authorization", self._authorization)]}
            await self.app(scope, receive, send)
            return
        if path == "/ui" or path.startswith("/ui/"):
            await _refuse(send, "This page needs a login.")
            return
        await self.app(scope, receive, send)

    async def _login(self, scope: dict[str, Any], send: Any) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        code = (query.get("code") or [""])[0]
        session = self.sessions.redeem(code) if code else None
        if session is None:
            await _refuse(send, "This login address is spent or expired.")
            return
        cookie = (
            f"{cookie_name(scope)}={session}; Path=/; HttpOnly; SameSite=Strict; "
            f"Max-Age={int(SESSION_TTL)}"
        )
        await _send(
            send,
            303,
            b"",
            [(b"location", b"/ui/"), (b"set-cookie", cookie.encode())],
        )
