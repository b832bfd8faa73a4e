"""GET /ui/events: the web view's live feed, as server-sent events.

HTTP only: what is shown and how two readings differ is p2pnode/liveview.py. The
stream opens with one `snapshot` event (every section), then sends a `change`
event per section whose items changed, read every `ViewParams.interval` seconds,
and a comment line every `KEEPALIVE` seconds so proxies and browsers keep it open.
At most `ViewParams.max_streams` streams run at once; one more is a 503.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from libp2p.peer.id import ID

from p2pnode.api.state import NodeDep
from p2pnode.liveview import OrderRate, StreamSlots, ViewParams, diff, read_view

router = APIRouter(include_in_schema=False)

KEEPALIVE = 15.0


def _peer_name(raw: bytes) -> str:
    return ID(raw).to_base58()


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _slots(request: Request, params: ViewParams) -> StreamSlots:
    slots = getattr(request.app.state, "ui_streams", None)
    if not isinstance(slots, StreamSlots):
        slots = request.app.state.ui_streams = StreamSlots(params.max_streams)
    return slots


@router.get("/ui/events")
async def events(request: Request, state: NodeDep) -> StreamingResponse:
    params: ViewParams = request.app.state.ui_view_params
    slots = _slots(request, params)
    if not slots.take():
        raise HTTPException(503, f"{slots.cap} event streams are open already")

    async def stream() -> AsyncIterator[bytes]:
        rate = OrderRate()
        try:
            view = read_view(state, params, _peer_name, rate, time.time())
            yield _sse("snapshot", view)
            quiet = 0.0
            while True:
                await anyio.sleep(params.interval)
                new = read_view(state, params, _peer_name, rate, time.time())
                changes = diff(view, new)
                view = new
                for change in changes:
                    yield _sse("change", change)
                quiet = 0.0 if changes else quiet + params.interval
                if quiet >= KEEPALIVE:
                    quiet = 0.0
                    yield b": keepalive\n\n"
        finally:
            slots.give()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
