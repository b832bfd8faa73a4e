"""A tiny sweep on a real Dask LocalCluster (2 worker processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from p2pnode.errors import UserError
from simulations import sweep

SWEEP = """
scenario = "order_propagation"
repeats = 1
[base]
nodes = 40
degree = 6
drain_s = 2.0
[grid]
mesh_d = [4, 6]
"""


@pytest.mark.slow
def test_small_sweep_on_a_local_cluster(tmp_path: Path) -> None:
    f = tmp_path / "grid.toml"
    f.write_text(SWEEP)
    spec = sweep.load(f)
    assert [r["mesh_d"] for r in spec.runs()] == [4, 6]
    done: list[int] = []
    path = sweep.run_sweep(spec, tmp_path / "out", workers=2, on_done=lambda d, t: done.append(d))
    summary = json.loads(path.read_text())
    assert done == [1, 2]
    assert [r["params"]["mesh_d"] for r in summary["runs"]] == [4, 6]
    for r in summary["runs"]:
        assert r["figures"]["on"]["delivery_ratio"] == 1.0
    # larger mesh, more duplicates: the sweep sees the parameter take effect
    d4, d6 = (r["figures"]["on"]["duplicates_mean"] for r in summary["runs"])
    assert d4 < d6
    per_run = json.loads((tmp_path / "out" / "runs" / "0001" / "results.json").read_text())
    assert per_run["params"]["mesh_d"] == 6
    assert (tmp_path / "out" / "timings.json").exists()


def test_sweep_files_are_checked_before_anything_runs(tmp_path: Path) -> None:
    cases = {
        "a.toml": ("scenario = 'nope'\n", "unknown scenario"),
        "b.toml": ("[grid]\nnodes=[1]\n", "scenario"),
        "c.toml": ("scenario='churn'\n[grid]\nnodes=[]\n", "grid.nodes must be a non-empty list"),
        "d.toml": ("scenario='churn'\n[grid]\nnodez=[3]\n", "unknown parameter"),
        "e.json": ("{not json", "not valid json"),
        "f.toml": ("scenario='churn'\nextra=1\n", "unknown keys"),
    }
    for name, (text, match) in cases.items():
        f = tmp_path / name
        f.write_text(text)
        with pytest.raises(UserError, match=match):
            sweep.load(f)
    with pytest.raises(UserError, match="cannot read"):
        sweep.load(tmp_path / "missing.toml")


@pytest.mark.slow
def test_sweep_on_an_existing_scheduler_gives_the_local_results(tmp_path: Path) -> None:
    from distributed import LocalCluster

    f = tmp_path / "grid.json"
    f.write_text(
        json.dumps(
            {"scenario": "churn", "base": {"nodes": 30, "degree": 4, "messages": 2}, "repeats": 2}
        )
    )
    spec = sweep.load(f)
    assert [r["seed"] for r in spec.runs()] == [0, 1]
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        path = sweep.run_sweep(spec, tmp_path / "remote", scheduler=cluster.scheduler_address)
    rows = json.loads(path.read_text())["runs"]
    assert [r["params"]["seed"] for r in rows] == [0, 1]
    assert all(r["figures"]["on"]["delivery_ratio"] == 1.0 for r in rows)
