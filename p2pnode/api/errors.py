"""The API's error bodies, one shape per kind, declared in /openapi.json and kept.

- 422 (the request does not fit the documented schema, or a field is out of the
  range the node signs): `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`,
  the shape request validation uses, also for the checks the handlers make
  themselves, so a client reads every 422 the same way.
- Every other 4xx/5xx: `{"detail": "one line saying why"}`.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from p2pnode.api.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH


class ErrorOut(BaseModel):
    detail: str


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    detail: list[ValidationErrorItem]


def unprocessable(loc: list[str | int], msg: str) -> RequestValidationError:
    """A 422 raised by a handler, in the same shape as request validation's."""
    return RequestValidationError([{"loc": loc, "msg": msg, "type": "value_error"}])


def error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


# What every operation may answer, whatever its own handler does.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: error(f"the body is not UTF-8, or its JSON nests deeper than {MAX_JSON_DEPTH}"),
    401: {
        **error("missing or wrong bearer token"),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    413: error(f"the request body is over {MAX_BODY_BYTES} bytes"),
    422: {
        "model": ValidationErrorOut,
        "description": "a field is missing, of the wrong type, or out of its range",
    },
}


def _allowed_methods(request: Request) -> list[str]:
    """Every method the document declares for this path (plus the framework's own
    routes, /openapi.json and /docs): starlette's 405 names only the first route that
    matched the path, though GET /orders and POST /orders are two routes."""
    path = request.scope.get("path", "")
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        if _template_regex(template).fullmatch(path):
            methods.update(m.upper() for m in operations if m.upper() in _METHODS)
    for route in request.app.router.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


@functools.lru_cache(maxsize=64)
def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        allow = ", ".join(_allowed_methods(request))
        return JSONResponse(
            {"detail": f"method {request.method} not allowed here; allowed: {allow}"},
            status_code=405,
            headers={"Allow": allow},
        )
    if not isinstance(exc.detail, str):
        return JSONResponse({"detail": str(exc.detail)}, exc.status_code, headers=exc.headers)
    return await http_exception_handler(request, exc)


def install(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
