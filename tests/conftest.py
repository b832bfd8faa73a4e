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


# The suite runs on two processes (`make test`: pytest -n 2 --dist loadgroup). Each
# file stays on one process, so its module fixtures start once. The files that run
# whole daemon networks with containers go to one process, one after another: two of
# them side by side on two cores would leave each a fraction of what its timings
# were written for, while the other process runs the single-process tests.
NETWORK_FILES = frozenset(
    {
        "test_demo.py",
        "test_trust_net.py",
        "test_workers_net.py",
        "test_tasks_net.py",
        "test_deals_net.py",
        "test_ui_browser.py",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        if path.parent.name == "integration" and path.name in NETWORK_FILES:
            group = "networks"
        else:
            group = str(path.relative_to(ROOT))
        item.add_marker(pytest.mark.xdist_group(group))


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
