"""The README's first command: the demo network forms and gossips signed orders."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.integration
def test_demo_forms_a_network_and_every_node_gets_every_order() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "p2pnode.cli.main", "demo", "--nodes", "3", "--timeout", "60"],
        capture_output=True,
        text=True,
        timeout=150,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "every node sees every other node" in out
    assert "node1 signed and published an ASK" in out
    assert "node2 signed and published a BID" in out
    assert "every node holds every order" in out
    assert "stopped 4 daemons" in out
