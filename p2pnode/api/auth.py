"""Bearer-token auth for every path, /openapi.json and /metrics included.

The API binds to loopback only, but other local users and any web page in a local
browser can still reach loopback; the token (0600 in the data dir) limits the API
to whoever can read the node's files.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Any

TOKEN_FILE = "api.token"


def load_or_create_token(data_dir: Path) -> str:
    path = data_dir / TOKEN_FILE
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, token.encode() + b"\n")
    finally:
        os.close(fd)
    return token


def read_token(data_dir: Path) -> str | None:
    try:
        return (data_dir / TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None


def bearer_credentials(header: bytes) -> bytes | None:
    """The token of an `Authorization: Bearer <token>` header; the scheme name is
    case-insensitive (RFC 9110 section 11.1), so `bearer` and `BEARER` count too."""
    scheme, _, credentials = header.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return credentials.strip() or None


class BearerAuthMiddleware:
    """Pure ASGI middleware: 401 unless `Authorization: Bearer <token>` matches."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self._expected = token.encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            got = b""
            for name, value in scope.get("headers", []):
                if name == b"authorization":
                    got = value
                    break
            presented = bearer_credentials(got)
            if presented is None or not hmac.compare_digest(presented, self._expected):
                body = b'{"detail":"missing or wrong bearer token"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
