"""The daemon in-process: services plug in through factories, run in its nursery,
show up in the API, and are cancelled on stop; ready.json appears and goes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from p2pnode.config import build_config
from p2pnode.context import MissingRequirement, NodeContext, ServiceSpec
from p2pnode.daemon import READY_FILE, Daemon
from p2pnode.errors import UserError
from p2pnode.ready import read_ready
from p2pnode.services import SERVICES
from tests.conftest import run_python


class Recorder:
    def __init__(self, host: Any, config: Any, storage: Any) -> None:
        self.peer = host.get_id()
        self.role = config.node.role
        self.storage = storage
        self.events: list[str] = []

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.events.append("started")
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            self.events.append("cancelled")


def _config(tmp_path: Path, role: str = "supplier") -> Any:
    return build_config(
        [
            {
                "node.data_dir": str(tmp_path),
                "node.role": role,
                "network.listen_port": 0,
                "api.port": 0,
            }
        ]
    )


def test_services_run_in_the_daemon_and_stop_with_it(tmp_path: Path) -> None:
    made: list[Recorder] = []

    def factory(ctx: NodeContext) -> Recorder:
        made.append(Recorder(ctx.host, ctx.config, ctx.storage))
        return made[-1]

    never = ServiceSpec("never", factory, roles=("seed",))
    daemon = Daemon(_config(tmp_path), services=[ServiceSpec("recorder", factory), never])
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            info = read_ready(tmp_path)
            assert info is not None
            token = (tmp_path / "api.token").read_text().strip()
            async with httpx.AsyncClient() as client:
                resp = await client.get(
                    info["api_url"] + "/status", headers={"Authorization": f"Bearer {token}"}
                )
            seen["status"] = resp.json()
            seen["info"] = info
            daemon.request_stop()

    trio.run(main)
    assert len(made) == 1  # the seed-only service was not built for a supplier
    rec = made[0]
    assert rec.events == ["started", "cancelled"]
    assert rec.role == "supplier" and rec.peer.to_base58() == seen["info"]["peer_id"]
    assert seen["status"]["services"] == ["recorder"]
    assert seen["status"]["role"] == "supplier"
    assert not (tmp_path / READY_FILE).exists()


def test_default_services_in_start_order() -> None:
    names = [s.name for s in SERVICES]
    # the validator needs the chain's hub check; the orders desk needs pubsub
    assert names.index("chain") < names.index("pubsub") < names.index("orders")
    # a hub's remote workers are wired into the tasks service, which runs before
    assert names.index("market") < names.index("tasks") < names.index("workers")
    provided: set[str] = set()
    for spec in SERVICES:  # everything a default service requires is provided before it
        assert set(spec.requires) <= provided, spec.name
        provided.add(spec.name)


def test_a_missing_requirement_stops_the_start_and_names_it(tmp_path: Path) -> None:
    built: list[str] = []

    def factory(ctx: NodeContext) -> None:
        built.append("orders")

    daemon = Daemon(_config(tmp_path), services=[ServiceSpec("orders", factory, ("pubsub",))])
    with pytest.raises(BaseExceptionGroup) as err:
        trio.run(daemon.run)
    assert err.group_contains(MissingRequirement, match="'orders' requires pubsub", depth=None)
    assert built == []  # never built half-wired
    assert not (tmp_path / READY_FILE).exists()
    with pytest.raises(ValueError, match="requires \\['pubsbu'\\]"):
        ServiceSpec("typo", factory, ("pubsbu",))  # type: ignore[arg-type]


def test_a_failing_service_stops_the_daemon_with_its_error(tmp_path: Path) -> None:
    class Broken:
        async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            raise RuntimeError("service broke")

    daemon = Daemon(_config(tmp_path), services=[ServiceSpec("broken", lambda ctx: Broken())])
    with pytest.raises(BaseExceptionGroup) as err:
        trio.run(daemon.run)
    assert err.group_contains(RuntimeError, match="service broke", depth=None)
    assert not (tmp_path / READY_FILE).exists()


def test_service_stats_are_exported_on_metrics(tmp_path: Path) -> None:
    class Counting:
        def __init__(self) -> None:
            self.calls = 0

        async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            await trio.sleep_forever()

        def stats(self) -> dict[str, float]:
            self.calls += 1
            return {"widgets": 7.0, "odd-name": 1.5}

    class Broken(Counting):
        def stats(self) -> dict[str, float]:
            raise RuntimeError("no stats today")

    daemon = Daemon(
        _config(tmp_path),
        services=[
            ServiceSpec("counting", lambda ctx: Counting()),
            ServiceSpec("broken", lambda ctx: Broken()),
        ],
    )
    text: dict[str, str] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            info = read_ready(tmp_path)
            assert info is not None
            token = (tmp_path / "api.token").read_text().strip()
            async with httpx.AsyncClient() as client:
                r = await client.get(
                    info["api_url"] + "/metrics", headers={"Authorization": f"Bearer {token}"}
                )
            text["body"] = r.text
            daemon.request_stop()

    trio.run(main)
    assert "sonm_counting_widgets 7.0" in text["body"]
    assert "sonm_counting_odd_name 1.5" in text["body"]
    assert "sonm_connections" in text["body"]  # the scrape survived the broken service


@pytest.mark.parametrize(
    ("file", "content", "needle"),
    [
        ("node.sqlite3", b"not a database " * 20, "file is not a database"),
        ("identity.key", b"\x00bad key", "identity key"),
    ],
    ids=["corrupt-db", "corrupt-identity"],
)
def test_run_with_a_corrupt_data_dir_is_one_line(
    tmp_path: Path, file: str, content: bytes, needle: str
) -> None:
    from tests.conftest import run_cli

    (tmp_path / file).write_bytes(content)
    result = run_cli(
        "run", "--data-dir", str(tmp_path), "--listen-port", "0", "--api-port", "0", timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sonm-p2p: error: cannot run the node: ")
    assert needle in lines[0]


def test_the_daemon_unlocks_the_account_once_for_every_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gossip.messages import address_hex
    from p2pnode import keys

    config = _config(tmp_path)
    address = keys.import_private_key(config.keystore_path, "22" * 32, "pw")
    monkeypatch.setenv(keys.PASSWORD_ENV, "pw")
    unlocks: list[Path] = []
    real_unlock = keys.unlock_keystore

    def counting_unlock(path: Path, password: str) -> tuple[bytes, str]:
        unlocks.append(path)
        return real_unlock(path, password)

    monkeypatch.setattr(keys, "unlock_keystore", counting_unlock)
    daemon = Daemon(config)  # the default services: orders and peer_topic both sign
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            ctx = daemon.context
            assert ctx is not None
            seen["account"] = ctx.account
            seen["orders"] = ctx.services["orders"]
            seen["peer_topic"] = ctx.services["peer_topic"]
            daemon.request_stop()

    trio.run(main)
    assert unlocks == [config.keystore_path]
    account = seen["account"]
    assert address_hex(account.address) == address and repr(account) == f"Account({address})"
    assert seen["orders"].address == account.address
    assert seen["peer_topic"].account is account

    monkeypatch.setenv(keys.PASSWORD_ENV, "wrong")
    with pytest.raises(UserError, match="wrong password"):
        trio.run(Daemon(config).run)  # before the host or any service starts
    assert not (tmp_path / READY_FILE).exists()


def test_freeze_startup_heap_takes_the_heap_out_of_the_collectors_walks() -> None:
    # in a child: freezing is process-wide, and this test process builds and drops
    # daemons (the reason `run` alone freezes)
    code = (
        "import gc, re\n"
        "from p2pnode.heap import freeze_startup_heap, frozen_objects\n"
        "from p2pnode.metrics import NodeMetrics\n"
        "from prometheus_client import generate_latest\n"
        "before = frozen_objects()\n"
        "n = freeze_startup_heap()\n"
        "text = generate_latest(NodeMetrics().registry).decode()\n"
        "m = re.search(r'^sonm_gc_frozen_objects (\\S+)$', text, re.M)\n"
        "print(before, n, gc.get_freeze_count(), len(gc.get_objects()), m.group(1) if m else '')\n"
    )
    result = run_python(code, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout.split()
    before, frozen, count, tracked = (int(x) for x in out[:4])
    assert before == 0  # nothing is frozen until asked
    assert frozen > 10_000  # the imports alone are tens of thousands of objects
    assert abs(count - frozen) < frozen / 100  # the interpreter's own count agrees
    assert tracked < frozen / 10  # what a full collection still walks
    assert float(out[4]) == frozen  # the metric reads the count kept at the freeze
