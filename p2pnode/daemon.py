"""The node daemon: one trio nursery holding the libp2p host, discovery, the API
and every service an area plugs in.

Extension point: a service is any object with
`async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None` that calls
`task_status.started()` once it is ready and runs until cancelled. It is built by a
factory `(NodeContext) -> service | None` (None: it does not run with this config),
listed with what it requires in `p2pnode/services.py` (or passed to
`Daemon(services=...)`); see p2pnode/context.py. The daemon unlocks the account
once, starts services in list order after the host listens and before the API
opens, refuses to start when a service's requirement is missing, puts each
service on the API state under its name, and cancels them all on shutdown.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio
from libp2p.abc import IHost

from p2pnode import keys
from p2pnode.api.app import build_app
from p2pnode.api.auth import load_or_create_token
from p2pnode.api.state import NodeState
from p2pnode.api.thread import serve_api_thread
from p2pnode.config import NodeConfig
from p2pnode.context import NodeContext, Service, ServiceSpec, unlock_account
from p2pnode.discovery import Discovery
from p2pnode.errors import LocalError
from p2pnode.heap import freeze_startup_heap
from p2pnode.host import build_host, listen_multiaddr
from p2pnode.metrics import NodeMetrics
from p2pnode.ready import READY_FILE, write_ready
from p2pnode.services import SERVICES
from p2pnode.storage import Storage

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 1.5  # seconds; the whole stop must stay under 2 s


class Daemon:
    def __init__(self, config: NodeConfig, services: Sequence[ServiceSpec] | None = None) -> None:
        config.validate()
        self.config = config
        self.data_dir = config.data_path
        self.metrics = NodeMetrics()
        self.service_specs = list(SERVICES if services is None else services)
        self.ready = trio.Event()
        self.api_url: str | None = None
        self.host: IHost | None = None
        self.discovery: Discovery | None = None
        self.context: NodeContext | None = None
        self._stop = trio.Event()

    def request_stop(self) -> None:
        self._stop.set()

    def _prepare_data_dir(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.data_dir, 0o700)
        except OSError as exc:
            raise LocalError(f"cannot use data dir {self.data_dir}: {exc.strerror}") from None

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run until `request_stop()` or cancellation."""
        self._prepare_data_dir()
        key_pair = keys.load_or_create_identity(self.data_dir)
        account = unlock_account(self.config)  # once; a wrong password stops the start here
        storage = Storage.open_in(self.data_dir)
        try:
            token = load_or_create_token(self.data_dir)
            net = self.config.network
            listen = listen_multiaddr(net.listen_host, net.listen_port)
            host = build_host(key_pair, listen, self.metrics, net.max_connections)
            self.host = host
            peer_id = host.get_id().to_base58()
            ctx = NodeContext(host, self.config, storage, self.metrics, key_pair, account=account)
            self.context = ctx
            self.metrics.watch_services(lambda: ctx.services)
        except BaseException:
            storage.close()  # nothing else holds it yet
            raise
        try:
            async with host.run([listen]), trio.open_nursery() as nursery:
                self.discovery = Discovery(host, self.config, storage, self.metrics, key_pair)
                ctx.discovery = self.discovery
                await nursery.start(self.discovery.run)
                for spec in self.service_specs:
                    if spec.roles and self.config.node.role not in spec.roles:
                        continue
                    service = spec.build(ctx)  # MissingRequirement names what is not there
                    if service is None:
                        continue
                    ctx.services[spec.name] = service
                    await nursery.start(_run_service, spec.name, service)
                state = NodeState(
                    config=self.config,
                    storage=storage,
                    metrics=self.metrics,
                    peer_id=peer_id,
                    host=host,
                    discovery=self.discovery,
                    services=ctx.services,
                )
                app = build_app(state, token)
                # on its own thread and loop: it answers while peers keep this one busy
                self.api_url = await nursery.start(
                    serve_api_thread, app, self.config.api.host, self.config.api.port
                )
                self._write_ready(host, peer_id)
                log.info("ready: peer %s, api %s", peer_id, self.api_url)
                self.ready.set()
                task_status.started()
                await self._stop.wait()
                log.info("stopping")
                nursery.cancel_scope.cancel()
        finally:
            _remove(self.data_dir / READY_FILE)
            storage.close()

    def _write_ready(self, host: IHost, peer_id: str) -> None:
        """ready.json tells scripts (demo, tests) the actual ports once all is bound."""
        info = {
            "pid": os.getpid(),
            "peer_id": peer_id,
            "role": self.config.node.role,
            "addrs": [str(a) for a in host.get_addrs()],
            "api_url": self.api_url,
        }
        write_ready(self.data_dir, info)


async def _run_service(name: str, service: Service, *, task_status: Any) -> None:
    log.debug("starting service %s", name)
    await service.run(task_status=task_status)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def _freeze_when_ready(daemon: Daemon) -> None:
    """Once the daemon is up, its start-up heap leaves the collector's walks (the
    process is this one daemon: p2pnode/heap.py says why)."""
    await daemon.ready.wait()
    frozen = freeze_startup_heap()
    log.info("start-up heap frozen: %d objects out of the collector's walks", frozen)


async def run_until_signal(daemon: Daemon) -> None:
    """Run the daemon; SIGINT/SIGTERM stop it, with a hard stop if cleanup hangs.
    The process is this one daemon: its start-up heap is frozen once it is ready."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_freeze_when_ready, daemon)

            async def watch() -> None:
                async for signum in signals:
                    log.info("got %s", signal.Signals(signum).name)
                    _arm_watchdog(SHUTDOWN_GRACE)
                    daemon.request_stop()
                    with trio.move_on_after(SHUTDOWN_GRACE - 0.3):
                        await trio.sleep_forever()
                    nursery.cancel_scope.cancel()  # cleanup took too long: cancel it
                    return

            nursery.start_soon(watch)
            await daemon.run()
            nursery.cancel_scope.cancel()


def _arm_watchdog(seconds: float) -> None:
    """Last resort: if trio cleanup is stuck in a library, leave anyway.

    SQLite in WAL mode keeps committed data through an abrupt exit, so this only
    skips closing sockets that the OS closes for us.
    """

    def fire() -> None:
        logging.getLogger(__name__).warning("shutdown took over %.1f s; exiting", seconds)
        logging.shutdown()
        os._exit(0)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    lib = logging.getLogger("libp2p")
    if level.upper() == "DEBUG":
        lib.propagate = True  # py-libp2p detaches itself from the root logger on import
        lib.setLevel(logging.INFO)
    else:
        # py-libp2p logs every failed dial attempt at ERROR; those are normal in a
        # peer-to-peer network and are counted in the metrics instead.
        logging.getLogger("libp2p").setLevel(logging.CRITICAL)
        for noisy in ("multiaddr", "hypercorn", "p2pnode.api"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
