"""Churn: nodes leave and come back while messages flow.

Each online node leaves after an exponentially distributed session (mean
`1 / leave_rate_per_s`), stays away for an exponential downtime (mean
`mean_downtime_s`), and comes back with a fresh router (a restart: all
gossip state lost) and `degree` new connections to random online nodes, as a
node re-dialling its bootstrap seeds would. Churn starts once the warm-up is
over. A message counts against a node only if that node was online for the
whole window [publish, publish + drain_s]: a node that is away cannot be
reached, and that is not a protocol failure.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

from gossip.errors import UserError
from simulations.engine import Simulator
from simulations.scenarios.base import CommonParams
from simulations.scenarios.propagation import PropagationScenario
from simulations.world import World


@dataclass(frozen=True)
class ChurnParams(CommonParams):
    nodes: int = 500
    messages: int = 30
    interval_s: float = 1.0
    leave_rate_per_s: float = 0.01
    mean_downtime_s: float = 10.0

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.leave_rate_per_s <= 1.0:
            raise UserError(f"leave_rate_per_s must be in [0, 1], got {self.leave_rate_per_s}")
        if not 0.1 <= self.mean_downtime_s <= 86_400:
            raise UserError(f"mean_downtime_s must be in [0.1, 86400], got {self.mean_downtime_s}")


class Churn(PropagationScenario):
    name: ClassVar[str] = "churn"
    Params: ClassVar[type[CommonParams]] = ChurnParams
    topic: ClassVar[str] = "/sonm/orders/1"

    def __init__(self, params: CommonParams) -> None:
        super().__init__(params)
        self.changes: dict[str, list[list[float]]] = {}
        self.leaves: dict[str, int] = {}

    @property
    def cp(self) -> ChurnParams:
        assert isinstance(self.params, ChurnParams)
        return self.params

    def traffic(self, sim: Simulator) -> None:
        super().traffic(sim)
        rate = self.cp.leave_rate_per_s
        for v, world in self.worlds.items():
            self.changes[v] = [[] for _ in world.nodes]
            self.leaves[v] = 0
            if rate <= 0:
                continue
            rng = sim.child_rng("churn")  # same draws in every variant
            for i in range(len(world.nodes)):
                sim.schedule(sim.now + rng.expovariate(rate), self._leave, v, world, i, rng)

    def _leave(self, v: str, world: World, i: int, rng: random.Random) -> None:
        if self.end_time() - self.cp.drain_s <= world.sim.now:  # churn stops with traffic
            return
        world.stop_node(i)
        self.changes[v][i].append(world.sim.now)
        self.leaves[v] += 1
        world.sim.call_later(
            rng.expovariate(1.0 / self.cp.mean_downtime_s), self._join, v, world, i, rng
        )

    def _join(self, v: str, world: World, i: int, rng: random.Random) -> None:
        online = [j for j, up in enumerate(world.net.online) if up and j != i]
        k = min(self.cp.degree, len(online))
        peers = rng.sample(online, k) if k else []
        world.restart_node(i, [self.topic], sorted(peers))
        self.changes[v][i].append(world.sim.now)
        world.sim.call_later(
            rng.expovariate(self.cp.leave_rate_per_s), self._leave, v, world, i, rng
        )

    def publish(self, world: World, variant: str, node: int, data: bytes) -> None:
        """A publisher that is away hands its message to the next online node."""
        n = len(world.nodes)
        online = world.net.online
        for k in range(n):
            cand = (node + k) % n
            if online[cand] and world.nodes[cand].behaviour.honest:
                super().publish(world, variant, cand, data)
                return
        self.publish_errors[variant] += 1

    def targets(self, world: World, publisher: int, t0: float) -> list[int]:
        changes = self.changes.get(world.label, [])
        end = t0 + self.cp.drain_s
        out: list[int] = []
        for i in self.honest(world):
            if i == publisher:
                continue
            ch = changes[i] if changes else []
            # online at t0: an even number of changes before t0 (it starts online)
            before = sum(1 for t in ch if t <= t0)
            if before % 2 == 0 and not any(t0 < t <= end for t in ch):
                out.append(i)
        return out

    def extra_results(self, variant: str, world: World) -> dict[str, Any]:
        return {"leaves": self.leaves.get(variant, 0)}
