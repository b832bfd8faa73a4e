"""Scenarios: small modules, one experiment each.

The protocol a scenario follows (`Scenario` below):

- `name`: what the CLI calls it (`sonm-p2p simulate NAME`);
- `Params`: a frozen dataclass with defaults for every field and a
  `validate()` that raises UserError naming the parameter and its bound;
  `--nodes`, `--seed` and `--set key=value` (and sweep grids) fill it;
- `__init__(params)`, then `build(sim)` creates the worlds on a Simulator and
  `run(sim)` runs them and returns a results dict (JSON-ready: numbers,
  strings, lists, dicts; no wall-clock times, so the same seed gives the same
  results.json);
- `plots(results, out_dir)` draws PNGs from the results dict alone.

To add one (market, reputation...): write a module here with a class that
follows this protocol (subclass `base.GossipScenario` to get worlds, scoring
variants and the standard analysis for free) and add it to SCENARIOS.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

from simulations.engine import Simulator
from simulations.scenarios.base import CommonParams
from simulations.scenarios.churn import Churn
from simulations.scenarios.hub_announcement import HubAnnouncement
from simulations.scenarios.market import Market
from simulations.scenarios.order_propagation import OrderPropagation
from simulations.scenarios.spam import Spam
from simulations.scenarios.sybil import SybilEclipse
from simulations.scenarios.trust import Trust


class Scenario(Protocol):
    name: ClassVar[str]
    Params: ClassVar[type[CommonParams]]
    params: CommonParams

    def __init__(self, params: CommonParams) -> None: ...

    def build(self, sim: Simulator) -> None: ...

    def run(self, sim: Simulator) -> dict[str, Any]: ...

    def plots(self, results: Mapping[str, Any], out_dir: Path) -> list[Path]: ...


SCENARIOS: dict[str, type[Scenario]] = {
    cls.name: cls
    for cls in (OrderPropagation, HubAnnouncement, Churn, SybilEclipse, Spam, Market, Trust)
}

__all__ = ["SCENARIOS", "Scenario"]
