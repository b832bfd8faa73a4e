"""The README's first command, `make demo`, run as the README gives it: the whole
story from a fresh chain to a paid hub, each step's on-chain fact printed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from contracts.anvil import find_anvil
from p2pnode.localnet import engine_problem
from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TX = r"\(tx 0x[0-9a-f]{64}"


def test_make_demo_runs_the_story_to_a_paid_hub() -> None:
    if find_anvil() is None:
        if os.environ.get("SONM_REQUIRE_ANVIL") == "1":
            pytest.fail("SONM_REQUIRE_ANVIL=1 but anvil is not installed")
        pytest.skip("anvil not installed (run scripts/setup-tools)")
    make = shutil.which("make")
    if make is None:
        pytest.fail("make is not installed; the README's first command needs it")
    # `make demo` as written; `-o .venv/.installed` only because this test runs inside
    # that installation already (make would otherwise reinstall it when a checkout is
    # newer than its stamp), and the demo's own bound kept under the test's
    proc = subprocess.run(
        [make, "-s", "-o", ".venv/.installed", "demo", "DEMO_ARGS=--timeout 240"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert re.search(r"hub wallet 0x[0-9a-fA-F]{40} created through the factory " + TX, out)
    assert re.search(r"registered and whitelisted " + TX, out)
    assert "is ASK 0x" in out and "consumer signed and published BID 0x" in out
    assert re.search(r"deal 1 proposed by the consumer " + TX, out), out[-4000:]
    assert re.search(r"deal 1 accepted by the hub " + TX, out)
    closed = re.search(r"deal 1 closed by the consumer " + TX + r".*hub paid ([0-9.]+) SNM", out)
    assert closed and float(closed.group(1)) > 0, out[-4000:]
    gain = re.search(r"2000\.000000 SNM -> [0-9.]+ SNM \(\+(\d+) wei\)", out)
    assert gain and int(gain.group(1)) > 0
    if engine_problem() is None:
        assert "consumer reads the task's stdout: step 3" in out
        assert "answer.txt = 42; receipt (exit 0)" in out and "verified" in out
    elif os.environ.get("SONM_REQUIRE_ENGINE") == "1":
        pytest.fail(f"{engine_problem()}; SONM_REQUIRE_ENGINE=1")
    else:
        assert "no container engine:" in out
    assert "stopped 3 daemons and the chain" in out or "stopped 5 daemons and the chain" in out
