"""Propagation of application messages published by honest nodes.

The shared core of the order and hub-announcement scenarios: after the mesh
has formed, `messages` payloads are published `interval_s` apart, each by a
publisher chosen by `publishers()`; results say how fast and how completely
they reached every other honest node, with how many duplicates, next to the
shortest-path lower bound on the same graph. `withholders` nodes (picked at
random) forward nothing, to see how much free riding the mesh absorbs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar

from gossip.errors import UserError
from simulations.adversaries import Withholder
from simulations.engine import Simulator
from simulations.node import Behaviour
from simulations.scenarios.base import CommonParams, GossipScenario
from simulations.world import World, payload


@dataclass(frozen=True)
class PropagationParams(CommonParams):
    withholders: int = 0

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.withholders < self.nodes:
            raise UserError(f"withholders must be in [0, nodes), got {self.withholders}")


class PropagationScenario(GossipScenario):
    Params: ClassVar[type[CommonParams]] = PropagationParams

    def behaviours(self) -> dict[int, Behaviour]:
        """`withholders` random nodes that forward nothing (free riders)."""
        k = getattr(self.params, "withholders", 0)
        if not k:
            return {}
        rng = random.Random(f"{self.params.seed}/withholders")
        beh = Withholder()
        return {i: beh for i in rng.sample(range(self.params.nodes), k)}

    def publishers(self, sim: Simulator, world: World) -> list[int]:
        """Who publishes message k (one entry per message)."""
        rng = sim.child_rng("publishers")
        honest = self.honest(world)
        return [honest[int(rng.random() * len(honest))] for _ in range(self.params.messages)]

    def traffic(self, sim: Simulator) -> None:
        p = self.params
        rng = sim.child_rng("payloads")
        first = next(iter(self.worlds.values()))
        pubs = self.publishers(sim, first)
        datas = [payload(rng, p.payload_bytes) for _ in pubs]
        for k, (pub, data) in enumerate(zip(pubs, datas, strict=True)):
            at = sim.now + k * p.interval_s
            for v, world in self.worlds.items():
                sim.schedule(at, self.publish, world, v, pub, data)
