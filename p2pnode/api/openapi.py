"""/openapi.json as exact as the code: numbers the document states are the ones enforced.

The framework keeps a schema's `minimum`/`maximum` as floats, so a bound of 2^64-1
(every uint64 field) came out as 1.8446744073709552e19, i.e. 2^64, a value the node
refuses. Bounds are put back as integers here; 2^64 itself is no bound of this API,
so it can only be the rounded uint64 maximum.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from gossip.messages import UINT64_MAX

_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _integral_bounds(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _BOUNDS and isinstance(value, float) and value.is_integer():
                exact = int(value)
                node[key] = UINT64_MAX if exact == UINT64_MAX + 1 else exact
            else:
                _integral_bounds(value)
    elif isinstance(node, list):
        for item in node:
            _integral_bounds(item)


def install_exact_openapi(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _integral_bounds(generate())  # generate() caches the document it returns
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
