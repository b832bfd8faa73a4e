"""Request limits for every endpoint, before any handler or parser sees the body.

A local caller holding the token is still untrusted input: a body of 100 MB would be
read whole into memory by the framework, and a deeply nested JSON value costs one
C stack frame per level in the parser. So every request body is read here, at most
`max_body_bytes` of it (a declared Content-Length over the cap is refused without
reading; a chunked body is refused as soon as it passes the cap), its nesting depth
is counted without recursion, and numbers JSON cannot carry (NaN, Infinity, a float
that overflows) are refused before validation would have to print them. Only then
is the body handed on, replayed from the one buffer.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32

# a JSON string, escapes included; what is left between strings holds the brackets
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def json_depth(body: bytes) -> int:
    """How deeply brackets nest in `body`, brackets inside strings not counted."""
    depth = deepest = 0
    for m in _BRACKET.finditer(_STRING.sub(b'""', body)):
        if m.group() in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class NonFiniteNumberError(ValueError):
    """NaN, Infinity or a float too large for a double: not a JSON number."""


def _reject_constant(name: str) -> Any:
    raise NonFiniteNumberError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise NonFiniteNumberError(f"{text} overflows a double")
    return value


def check_finite_json(body: bytes) -> str | None:
    """Why `body` is refused (a non-finite number), or None; other syntax errors are
    left to the framework's own parser, which names them."""
    try:
        json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
    except NonFiniteNumberError as exc:
        return str(exc)
    except ValueError:  # malformed JSON or not UTF-8: the framework answers 422 / 400
        return None
    return None


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return True  # no content type: the framework parses the body as JSON


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def send_json(send: Any, status: int, payload: object, headers: tuple = ()) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def validation_error(loc: list[str | int], msg: str, kind: str = "value_error") -> dict[str, Any]:
    """A 422 body in the one shape the API documents (HTTPValidationError)."""
    return {"detail": [{"loc": loc, "msg": msg, "type": kind}]}


class RequestLimitsMiddleware:
    """Pure ASGI middleware: 413 over the body cap, 400 over the nesting cap, 422 for
    NaN/Infinity; the body is read once, at most `max_body_bytes` of it."""

    def __init__(
        self,
        app: Any,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_json_depth: int = MAX_JSON_DEPTH,
    ) -> None:
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes: must be >= 1, got {max_body_bytes}")
        if max_json_depth < 1:
            raise ValueError(f"max_json_depth: must be >= 1, got {max_json_depth}")
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        too_large = (
            f"request body over {self.max_body_bytes} bytes: allowed at most {self.max_body_bytes}"
        )
        declared = _content_length(headers)
        if declared is not None and declared > self.max_body_bytes:
            await send_json(send, 413, {"detail": too_large}, ((b"connection", b"close"),))
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await send_json(send, 413, {"detail": too_large}, ((b"connection", b"close"),))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body:
            depth = json_depth(body)
            if depth > self.max_json_depth:
                detail = f"JSON nested {depth} deep: allowed at most {self.max_json_depth}"
                await send_json(send, 400, {"detail": detail})
                return
            if _is_json(headers):
                problem = check_finite_json(body)
                if problem is not None:
                    await send_json(send, 422, validation_error(["body"], problem, "json_invalid"))
                    return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return dict(await receive())

        await self.app(scope, replay, send)
