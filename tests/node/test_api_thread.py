"""The API on its own thread (p2pnode/api/thread.py), served by hypercorn over real
loopback sockets.

The daemon's loop is held busy in Python (what 50 flooding peers do to it): /status,
served on the API's own loop, must still answer, while a relayed path answers once
the loop is free again. The bound is generous (a held loop is held for 3 s; the API
must answer well inside it); the figure under a real flood is
benchmarks/hostile_peers.py's. Relayed requests keep the token check, the body cap
and streamed responses.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from p2pnode.api import metrics, status
from p2pnode.api.app import build_app
from p2pnode.api.auth import load_or_create_token
from p2pnode.api.limits import MAX_BODY_BYTES
from p2pnode.api.state import NodeState
from p2pnode.api.thread import serve_api_thread
from p2pnode.config import NodeConfig
from p2pnode.metrics import NodeMetrics
from p2pnode.storage import Storage

HOLD_S = 3.0

extra = APIRouter()


@extra.post("/echo")
async def echo(request: Request) -> dict[str, Any]:
    body = await request.json()
    return {"got": body, "thread": threading.current_thread().name}


@extra.get("/count")
async def count(n: int = 3) -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        for i in range(n):
            await trio.sleep(0.01)
            yield b"%d\n" % i

    return StreamingResponse(lines(), media_type="text/plain")


QUIET = {"open": 0, "started": 0}


@extra.get("/quiet")
async def quiet() -> StreamingResponse:
    """Sends one line, then nothing for a minute (as an event stream with no news)."""

    async def lines() -> AsyncIterator[bytes]:
        QUIET["open"] += 1
        QUIET["started"] += 1
        try:
            yield b"first\n"
            await trio.sleep(60)
            yield b"late\n"
        finally:
            QUIET["open"] -= 1

    return StreamingResponse(lines(), media_type="text/plain")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[dict[str, Any]]:
    storage = Storage.open_in(tmp_path)
    state = NodeState(config=NodeConfig(), storage=storage, metrics=NodeMetrics(), peer_id="Me")
    token = load_or_create_token(tmp_path)
    app = build_app(state, token, [status.router, metrics.router, extra])
    box: dict[str, Any] = {}
    started = threading.Event()

    async def daemon_loop() -> None:
        async with trio.open_nursery() as nursery:
            box["url"] = await nursery.start(serve_api_thread, app, "127.0.0.1", 0)
            box["token"] = trio.lowlevel.current_trio_token()
            box["scope"] = nursery.cancel_scope
            started.set()

    thread = threading.Thread(target=trio.run, args=(daemon_loop,), daemon=True)
    thread.start()
    assert started.wait(30), "API did not start"

    def hold_loop() -> None:
        """Keep the daemon's loop busy in Python for HOLD_S (it never yields)."""

        def busy() -> None:
            end = time.monotonic() + HOLD_S
            while time.monotonic() < end:
                sum(range(1000))

        trio.from_thread.run_sync(busy, trio_token=box["token"])

    yield {"url": box["url"], "token": token, "hold": hold_loop, "app": app}
    trio.from_thread.run_sync(box["scope"].cancel, trio_token=box["token"])
    thread.join(10)
    storage.close()


def _client(node: dict[str, Any]) -> httpx.Client:
    return httpx.Client(
        base_url=node["url"], headers={"Authorization": f"Bearer {node['token']}"}, timeout=30
    )


def test_status_answers_while_the_daemon_loop_is_held(node: dict[str, Any]) -> None:
    with _client(node) as c:
        assert c.get("/status").status_code == 200  # warm: connection open
        holder = threading.Thread(target=node["hold"])
        holder.start()
        time.sleep(0.3)  # the hold has begun
        t0 = time.monotonic()
        resp = c.get("/status")
        status_s = time.monotonic() - t0
        assert resp.status_code == 200 and resp.json()["peer_id"] == "Me"
        t0 = time.monotonic()
        relayed = c.get("/metrics")
        relayed_s = time.monotonic() - t0
        holder.join()
    assert relayed.status_code == 200
    # /status did not wait for the held loop; /metrics, run on it, did
    assert status_s < 1.0, status_s
    assert relayed_s > 1.0, relayed_s
    relay = node["app"].state.api_relay
    assert relay.local >= 2 and relay.relayed >= 1


def test_relayed_requests_keep_token_body_cap_and_streaming(node: dict[str, Any]) -> None:
    with _client(node) as c:
        resp = c.post("/echo", json={"a": [1, 2]})
        assert resp.status_code == 200
        assert resp.json()["got"] == {"a": [1, 2]}
        assert resp.json()["thread"] != "api"  # ran on the daemon's loop
        assert c.post("/echo", content=b"x" * (MAX_BODY_BYTES + 10)).status_code == 413
        assert c.get("/count", params={"n": 5}).text == "0\n1\n2\n3\n4\n"
        with c.stream("GET", "/count", params={"n": 200}) as s:
            first = next(s.iter_lines())
        assert first == "0"  # left early: the stream ends on both sides
        assert c.get("/status").status_code == 200
    anon = httpx.get(node["url"] + "/metrics", timeout=30)
    assert anon.status_code == 401
    assert httpx.get(node["url"] + "/status", timeout=30).status_code == 401


def test_a_client_gone_from_a_quiet_stream_ends_it_at_once(node: dict[str, Any]) -> None:
    """The relay tells the daemon's side when the client goes, so a response that
    sends seldom (the web view's event stream, which holds one of a few places) ends
    then, not at its next send."""
    QUIET.update(open=0, started=0)
    with _client(node) as c, c.stream("GET", "/quiet") as s:
        assert next(s.iter_lines()) == "first"
    # leaving mid-body closes the connection
    end = time.monotonic() + 5
    while QUIET["open"] and time.monotonic() < end:
        time.sleep(0.05)
    assert QUIET == {"open": 0, "started": 1}
