"""Parameter sweeps: a grid of scenario runs on a Dask cluster.

A sweep file (TOML or JSON) names one scenario, the base parameters, the grid
(every combination of the listed values is one point) and how many seeds per
point:

    scenario = "order_propagation"
    repeats = 2            # seeds seed, seed+1 for every point
    [base]
    nodes = 300
    [grid]
    degree = [10, 20]
    mesh_d = [4, 6, 8]

Each run is one Dask task (a separate worker process by default, since runs
are CPU-bound Python); the client collects every run's results and writes
summary.json (one row per run: its parameters and headline figures, in grid
order, so the same file and seeds give the same bytes) and each run's
results.json under runs/. Wall-clock times go to timings.json, apart. The
protocol cores walk peers in event order, never in hash order, so a run gives
the same bytes in any worker process, local or remote.
"""

from __future__ import annotations

import itertools
import json
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gossip.errors import UserError
from simulations import results as results_io

MAX_RUNS = 10_000


@dataclass(frozen=True)
class SweepSpec:
    scenario: str
    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    repeats: int = 1

    def validate(self) -> None:
        from simulations.runner import scenario_class

        scenario_class(self.scenario)
        if not 1 <= self.repeats <= 1000:
            raise UserError(f"sweep repeats must be in [1, 1000], got {self.repeats}")
        for k, vals in self.grid.items():
            if not isinstance(vals, list) or not vals:
                raise UserError(f"sweep grid.{k} must be a non-empty list, got {vals!r}")
        if len(self.points()) * self.repeats > MAX_RUNS:
            raise UserError(f"sweep has more than {MAX_RUNS} runs; split it")
        for overrides in self.runs():  # every point must make valid parameters
            from simulations.runner import prepare

            prepare(self.scenario, overrides)

    def points(self) -> list[dict[str, Any]]:
        keys = sorted(self.grid)
        combos = itertools.product(*(self.grid[k] for k in keys))
        return [dict(zip(keys, c, strict=True)) for c in combos]

    def runs(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        seed0 = int(self.base.get("seed", 0))
        for point in self.points():
            for r in range(self.repeats):
                ov = dict(self.base)
                ov.update(point)
                ov["seed"] = int(point.get("seed", seed0)) + r
                out.append(ov)
        return out


def load(path: Path) -> SweepSpec:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read sweep file {path}: {exc.strerror}") from exc
    try:
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(
            f"sweep file {path} is not valid {path.suffix[1:] or 'TOML'}: {exc}"
        ) from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("scenario"), str):
        raise UserError(f"sweep file {path}: a top-level `scenario` name is required")
    unknown = set(raw) - {"scenario", "base", "grid", "repeats"}
    if unknown:
        raise UserError(f"sweep file {path}: unknown keys {sorted(unknown)}")
    base, grid = raw.get("base", {}), raw.get("grid", {})
    if not isinstance(base, dict) or not isinstance(grid, dict):
        raise UserError(f"sweep file {path}: `base` and `grid` must be tables")
    spec = SweepSpec(raw["scenario"], dict(base), dict(grid), int(raw.get("repeats", 1)))
    spec.validate()
    return spec


def run_one(scenario: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """One sweep task (runs in a Dask worker): the full results plus wall time."""
    from simulations.runner import run

    outcome = run(scenario, overrides)
    return {
        "results": outcome.results,
        "wall_s": outcome.wall_s,
        "events": outcome.events,
    }


def headline(results: Mapping[str, Any]) -> dict[str, Any]:
    """The figures a sweep table shows for one run, per scoring variant."""
    out: dict[str, Any] = {}
    for v, r in results.get("variants", {}).items():
        out[v] = {
            "delivery_ratio": r.get("delivery_ratio"),
            "latency_p50_s": r.get("latency_s", {}).get("p50"),
            "latency_p99_s": r.get("latency_s", {}).get("p99"),
            "p99_over_bound": r.get("lower_bound", {}).get("p99_ratio"),
            "duplicates_mean": r.get("duplicates_per_delivered", {}).get("mean"),
        }
    return out


def run_sweep(
    spec: SweepSpec,
    out_dir: Path,
    *,
    scheduler: str | None = None,
    workers: int = 2,
    on_done: Callable[[int, int], None] | None = None,
) -> Path:
    """Run every point on Dask; write summary.json, timings.json and runs/NNNN/."""
    from distributed import Client, LocalCluster, as_completed

    runs = spec.runs()
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
        )
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futures = [
            client.submit(run_one, spec.scenario, ov, key=f"sim-{i:05d}", pure=False)
            for i, ov in enumerate(runs)
        ]
        index = {f.key: i for i, f in enumerate(futures)}
        done: dict[int, dict[str, Any]] = {}
        for fut in as_completed(futures):
            done[index[fut.key]] = fut.result()
            if on_done is not None:
                on_done(len(done), len(runs))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    timings = []
    for i in range(len(runs)):
        res = done[i]["results"]
        results_io.write(res, out_dir / "runs" / f"{i:04d}")
        rows.append({"run": i, "params": runs[i], "figures": headline(res)})
        timings.append(
            {
                "run": i,
                "wall_s": done[i]["wall_s"],
                "events": done[i]["events"],
            }
        )
    summary = {"scenario": spec.scenario, "grid": spec.grid, "base": spec.base, "runs": rows}
    path = out_dir / "summary.json"
    path.write_text(results_io.dumps(summary), encoding="utf-8")
    (out_dir / "timings.json").write_text(results_io.dumps({"runs": timings}), encoding="utf-8")
    return path
