"""Hub announcements: a few hubs, each announcing itself once.

Announcements are rarer and larger than orders (multiaddrs, name,
description: ~900 bytes), and come from a fixed set of hub nodes rather than
from anyone; `messages` is the number of hubs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gossip.topics import HUBS_TOPIC
from simulations.engine import Simulator
from simulations.scenarios.base import CommonParams
from simulations.scenarios.propagation import PropagationParams, PropagationScenario
from simulations.world import World


@dataclass(frozen=True)
class HubParams(PropagationParams):
    payload_bytes: int = 900
    messages: int = 10
    interval_s: float = 0.5


class HubAnnouncement(PropagationScenario):
    name: ClassVar[str] = "hub_announcement"
    Params: ClassVar[type[CommonParams]] = HubParams
    topic: ClassVar[str] = HUBS_TOPIC

    def publishers(self, sim: Simulator, world: World) -> list[int]:
        honest = self.honest(world)
        k = min(self.params.messages, len(honest))
        hubs = sim.child_rng("hubs").sample(honest, k)
        return [hubs[i % k] for i in range(self.params.messages)]
