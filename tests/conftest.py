"""Shared fixtures. Kept small: anything area-specific lives next to its tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


# The suite runs on two processes (`make test`: pytest -n 2 --dist loadfile). Each
# file stays on one process, so its module fixtures start once. The files that start
# many daemons at once (with the chain and containers, most of them) form one unit,
# run first and one after another on one process: two of them side by side on two
# cores would leave each a fraction of what its timings were written for, while the
# other process runs the rest.
NETWORK_FILES = frozenset(
    f"tests/integration/{name}"
    for name in (
        "test_daemon_net.py",
        "test_demo.py",
        "test_trust_net.py",
        "test_workers_net.py",
        "test_tasks_net.py",
        "test_deals_net.py",
        "test_ui_browser.py",
    )
)


def _unit_of(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return "networks" if path in NETWORK_FILES else path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The network files first (a stable sort), so their unit starts at once."""
    items.sort(key=lambda item: _unit_of(item.nodeid) != "networks")


try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:  # without the plugin the suite runs on one process
    pass
else:

    class _FilesAndNetworks(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit_of(nodeid)

    def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
        config.option.loadscopereorder = False  # keep the collection's order
        return _FilesAndNetworks(config, log)


def free_port() -> int:
    """A loopback TCP port free right now (for settings that cannot take 0)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The real `sonm-p2p` command in a subprocess, as an operator runs it."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SONM_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "p2pnode.cli.main", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=ROOT,
        timeout=timeout,
    )


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`code` run by a fresh interpreter from the checkout: for what only a new
    process shows (imports a command pulls in, start-up state, the heap)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=timeout
    )


@pytest.fixture
def spawn_node(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start `sonm-p2p run` daemons (p2pnode.cli.demo.NodeProcess); all are killed at teardown."""
    from p2pnode.cli.demo import NodeProcess, start_node

    started: list[NodeProcess] = []

    def spawn(
        name: str, role: str = "consumer", bootstrap: list[str] | None = None, **net: Any
    ) -> NodeProcess:
        node = start_node(name, tmp_path, role, bootstrap or [], **net)
        started.append(node)
        return node

    yield spawn
    for node in started:
        if node.proc.poll() is None:
            node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(10)
