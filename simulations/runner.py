"""Run one scenario by name: parameters in, results dict (and files) out.

Used by the CLI, the sweep workers and the tests alike, so the three see the
same runs. Wall-clock figures are returned beside the results, never inside
them: results.json must depend on the seed and parameters only.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gossip.errors import UserError
from simulations import results as results_io
from simulations.engine import EngineParams, ProgressCallback, Simulator
from simulations.scenarios import SCENARIOS, Scenario
from simulations.scenarios.base import coerce


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    results: dict[str, Any]
    wall_s: float
    events: int
    scenario: Scenario


def scenario_class(name: str) -> type[Scenario]:
    cls = SCENARIOS.get(name)
    if cls is None:
        raise UserError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}")
    return cls


def prepare(name: str, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """The scenario object with validated parameters, before anything runs."""
    cls = scenario_class(name)
    return cls(coerce(cls.Params, overrides or {}))


def end_time(scenario: Scenario) -> float | None:
    """Virtual time the run ends at, when the scenario says (for progress bars)."""
    fn = getattr(scenario, "end_time", None)
    return float(fn()) if callable(fn) else None


def run(
    name: str,
    overrides: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
) -> RunOutcome:
    return run_scenario(prepare(name, overrides), progress)


def run_scenario(scenario: Scenario, progress: ProgressCallback | None = None) -> RunOutcome:
    params = scenario.params
    name = scenario.name
    sim = Simulator(EngineParams(seed=params.seed), progress)
    t0 = time.perf_counter()
    scenario.build(sim)
    res = scenario.run(sim)
    wall = time.perf_counter() - t0
    res["scenario"] = name
    res["params"] = dataclasses.asdict(params)
    return RunOutcome(res, wall, sim.events_run, scenario)


def write_outputs(outcome: RunOutcome, out_dir: Path) -> list[Path]:
    """results.json and the scenario's plots in out_dir."""
    paths = [results_io.write(outcome.results, out_dir)]
    paths.extend(outcome.scenario.plots(outcome.results, out_dir))
    return paths
