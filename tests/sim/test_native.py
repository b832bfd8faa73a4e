"""The compiled modules: used when they match the sources, never when they do not, and
computing exactly what the Python sources compute."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gossip import _native

ROOT = Path(__file__).resolve().parents[2]
REQUIRE = os.environ.get("SONM_REQUIRE_NATIVE", "") not in ("", "0")


def _copy_sources(tmp: Path) -> None:
    for m in _native.COMPILED:
        dst = _native.source_of(m, tmp)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(_native.source_of(m), dst)


def _write_manifest(build: Path, root: Path, abi: str | None = None) -> None:
    build.mkdir(parents=True, exist_ok=True)
    manifest = {"abi": abi or _native.abi_tag(), "modules": _native.source_hashes(root)}
    (build / _native.MANIFEST).write_text(json.dumps(manifest))


def test_a_build_of_exactly_these_sources_matches(tmp_path: Path) -> None:
    _copy_sources(tmp_path)
    _write_manifest(tmp_path / "build", tmp_path)
    assert _native.check(tmp_path / "build", tmp_path) == (True, "")


def test_an_edited_source_voids_the_build_and_is_named(tmp_path: Path) -> None:
    _copy_sources(tmp_path)
    _write_manifest(tmp_path / "build", tmp_path)
    src = _native.source_of("gossip.mesh", tmp_path)
    src.write_text(src.read_text() + "\n# edited\n")
    ok, why = _native.check(tmp_path / "build", tmp_path)
    assert not ok
    assert why == "sources changed since the build: gossip.mesh"


def test_a_build_for_another_interpreter_is_not_used(tmp_path: Path) -> None:
    _copy_sources(tmp_path)
    _write_manifest(tmp_path / "build", tmp_path, abi="cpython-310-linux")
    ok, why = _native.check(tmp_path / "build", tmp_path)
    assert not ok and "cpython-310-linux" in why


def test_no_build_or_a_broken_manifest(tmp_path: Path) -> None:
    assert _native.check(tmp_path / "none", tmp_path) == (False, "")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / _native.MANIFEST).write_text("{not json")
    ok, why = _native.check(tmp_path / "b", tmp_path)
    assert not ok and "unreadable" in why
    (tmp_path / "b" / _native.MANIFEST).write_text("[1, 2]")
    assert _native.check(tmp_path / "b", tmp_path) == (
        False,
        f"{tmp_path / 'b' / _native.MANIFEST} is not an object",
    )


# What the compiled and the Python modules must agree on: a propagation world's
# every first delivery, router metric and mesh (the scale benchmark's digest),
# and an attack scenario with Python subclasses of a compiled class (adversaries)
# and scoring on.
_SCRIPT = """
import json, sys
from benchmarks.sim_scale import digest
from gossip import _native
from gossip.topics import ORDERS_TOPIC
from simulations import runner
from simulations.engine import EngineParams, Simulator
from simulations.world import World, WorldParams, payload

sim = Simulator(EngineParams(seed=3))
world = World(sim, WorldParams(nodes=400))
world.start_all([ORDERS_TOPIC])
sim.run(until=3.0)
world.publish(0, ORDERS_TOPIC, payload(sim.rng, 300))
sim.run(until=5.0)
attack = runner.run(
    "sybil_eclipse",
    {"nodes": 60, "sybil_ratio": 2, "messages": 3, "warmup_s": 3, "scoring": "on"},
).results
json.dump(
    {"world": digest(world), "attack": attack, "compiled": _native.compiled_in_use()},
    sys.stdout,
    sort_keys=True,
    default=repr,
)
"""


def _run(pure: bool) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop(_native.PURE_ENV, None)
    if pure:
        env[_native.PURE_ENV] = "1"
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.mark.slow
def test_compiled_and_python_compute_the_same() -> None:
    if not _native.check()[0]:
        if REQUIRE:
            pytest.fail("SONM_REQUIRE_NATIVE=1 but build/native/ does not match the sources")
        pytest.skip("no build of the compiled modules (make install builds it)")
    compiled, pure = _run(pure=False), _run(pure=True)
    assert pure["compiled"] == []
    # everything the script imported of the group came compiled
    assert compiled["compiled"] and "gossip.router" in compiled["compiled"]  # type: ignore[operator]
    assert "simulations.node" in compiled["compiled"]  # type: ignore[operator]
    assert compiled["world"] == pure["world"]
    assert compiled["attack"] == pure["attack"]


def test_ci_runs_the_compiled_modules() -> None:
    """CI proves what `make install` gives: the build exists and matches."""
    if not REQUIRE:
        pytest.skip("only where SONM_REQUIRE_NATIVE=1 (CI)")
    ok, why = _native.check()
    assert ok, why or "no build/native/manifest.json"
