"""Serving the API with hypercorn's trio worker inside the daemon's nursery."""

from __future__ import annotations

import logging
from typing import Any

import trio
from fastapi import FastAPI
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

from p2pnode.config import is_loopback_host
from p2pnode.errors import UserError


def hypercorn_config(host: str, port: int) -> HypercornConfig:
    if not is_loopback_host(host):  # checked in config too; never bind elsewhere
        raise UserError(f"api.host = {host!r}: allowed loopback only")
    cfg = HypercornConfig()
    bind_host = f"[{host}]" if ":" in host else host
    cfg.bind = [f"{bind_host}:{port}"]
    cfg.accesslog = None
    cfg.errorlog = logging.getLogger("p2pnode.api")
    cfg.graceful_timeout = 0.5
    cfg.keep_alive_timeout = 5
    return cfg


async def serve_api(
    app: FastAPI | Any, host: str, port: int, *, task_status: Any = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve `app` (the FastAPI app, or any ASGI app in front of it) until cancelled;
    `task_status.started(url)` once the socket is bound."""
    cfg = hypercorn_config(host, port)
    try:
        # bound here, before serving, so a taken port is one clear error
        sockets = cfg.create_sockets()
        for sock in sockets.insecure_sockets:
            sock.listen(cfg.backlog)
    except OSError as exc:
        raise UserError(f"api.port = {port}: cannot bind {host}:{port} ({exc.strerror})") from None

    async def run(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await worker_serve(
            wrap_app(app, cfg.wsgi_max_body_size, None),  # type: ignore[arg-type]
            cfg,
            sockets=sockets,
            task_status=task_status,
        )

    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(run)
        task_status.started(urls[0] if urls else f"http://{host}:{port}")
