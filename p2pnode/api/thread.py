"""The local API on its own thread and event loop, so that it answers under load.

Why: the daemon's trio loop also runs every peer's streams (py-libp2p's Yamux and
Noise layers are Python), and trio has no priorities: with 50 peers flooding, one
round of the scheduler takes long enough that a /status request, which needs
several rounds, waited seconds. A second loop on its own thread gets the
interpreter every switch interval (5 ms) whatever the first one is doing.

What runs where:

- this thread: hypercorn (accepting, parsing, writing responses) and the paths in
  `LOCAL_PATHS`, whose handlers only read state that is safe to read from any
  thread (the storage behind its lock, the host's address and connection lists,
  the configuration);
- the daemon's loop: every other request, through the same app (token check and
  request limits included). The request's body (capped, see limits.py) is read
  here and handed over; the response's messages come back one at a time, so a
  streamed response (task logs with `follow`) streams, and a client that goes
  away ends it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio
from fastapi import FastAPI

from p2pnode.api.limits import MAX_BODY_BYTES
from p2pnode.api.server import serve_api
from p2pnode.errors import LocalError

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Served on the API thread itself: handlers that read thread-safe state only.
LOCAL_PATHS = frozenset({"/status"})
_START_TIMEOUT = 60.0


class _Relay:
    """The ASGI app hypercorn runs on the API thread: local paths at once, the rest
    on the daemon's loop."""

    def __init__(self, app: FastAPI, main_token: trio.lowlevel.TrioToken) -> None:
        self.app = app
        self.main_token = main_token
        self.relayed = 0
        self.local = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in LOCAL_PATHS:
            if scope["type"] == "http":
                self.local += 1
            await self.app(scope, receive, send)
            return
        self.relayed += 1
        body = await _read_body(receive)
        api_token = trio.lowlevel.current_trio_token()
        out_send, out_recv = trio.open_memory_channel[Message](8)

        async def forward(msg: Message) -> None:
            # on the daemon's loop: hand one response message to this thread
            await trio.to_thread.run_sync(
                lambda: trio.from_thread.run(out_send.send, msg, trio_token=api_token)
            )

        gone = trio.Event()  # the client has gone; set and read on the daemon's loop only

        async def on_main() -> None:
            sent_body = False

            async def main_receive() -> Message:
                nonlocal sent_body
                if not sent_body:
                    sent_body = True
                    return {"type": "http.request", "body": body, "more_body": False}
                # no await when it is known already: a caller polling with a
                # cancelled scope (Request.is_disconnected) must still get it
                if not gone.is_set():
                    await gone.wait()
                return {"type": "http.disconnect"}

            await self.app(scope, main_receive, forward)

        def call_main() -> None:
            trio.from_thread.run(on_main, trio_token=self.main_token)

        async def run_on_main() -> None:
            try:
                await trio.to_thread.run_sync(call_main)
            except trio.RunFinishedError:  # the daemon is stopping
                with trio.move_on_after(1):
                    await out_send.send(_status_start(503))
                    await out_send.send(
                        {"type": "http.response.body", "body": b'{"detail":"stopping"}'}
                    )
            finally:
                await out_send.aclose()

        async def watch_disconnect() -> None:
            # the client's going, told to the daemon's side at once: a response
            # that sends seldom (the web view's event stream) would otherwise hold
            # its place until its next send failed
            while (await receive())["type"] != "http.disconnect":
                pass
            with contextlib.suppress(trio.RunFinishedError):
                self.main_token.run_sync_soon(gone.set)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_on_main)
            nursery.start_soon(watch_disconnect)
            try:
                async with out_recv:
                    async for msg in out_recv:
                        await send(msg)
            except BaseException:
                # the client went away: the daemon's side fails its next send and
                # stops (a followed log stream among them)
                await out_recv.aclose()
                raise
            nursery.cancel_scope.cancel()  # answered: nothing more to watch


def _status_start(status: int) -> Message:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json")],
    }


async def _read_body(receive: Receive) -> bytes:
    """The request body, at most MAX_BODY_BYTES + 1 bytes: enough for the limits
    middleware (on the daemon's side) to answer 413 to a larger one."""
    chunks: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] != "http.request":
            break
        chunk = msg.get("body", b"")
        if size <= MAX_BODY_BYTES:
            chunks.append(chunk[: MAX_BODY_BYTES + 1 - size])
            size += len(chunks[-1])
        if not msg.get("more_body", False):
            break
    return b"".join(chunks)


async def serve_api_thread(
    app: FastAPI, host: str, port: int, *, task_status: Any = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the API on its own thread until cancelled; `task_status.started(url)`
    once bound. A bind error is raised here, as serve_api raises it."""
    relay = _Relay(app, trio.lowlevel.current_trio_token())
    app.state.api_relay = relay
    bound = threading.Event()
    box: dict[str, Any] = {}

    async def api_main() -> None:
        box["token"] = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            box["scope"] = scope
            async with trio.open_nursery() as nursery:
                box["url"] = await nursery.start(serve_api, relay, host, port)
                bound.set()

    def thread_main() -> None:
        try:
            trio.run(api_main)
        except BaseException as exc:  # handed to the daemon's loop below
            box["error"] = exc
        finally:
            bound.set()

    thread = threading.Thread(target=thread_main, name="api", daemon=True)
    thread.start()
    await trio.to_thread.run_sync(bound.wait, _START_TIMEOUT)
    if "error" in box:
        raise box["error"]
    if "url" not in box:
        raise LocalError(f"the API did not start within {_START_TIMEOUT:.0f} s")
    task_status.started(box["url"])
    try:
        await trio.sleep_forever()
    finally:
        scope = box.get("scope")
        if scope is not None:
            with contextlib.suppress(trio.RunFinishedError):  # it ended on its own
                box["token"].run_sync_soon(scope.cancel)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(thread.join, 5.0)
