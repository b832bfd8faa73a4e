"""Spam: a few nodes publish invalid messages at a high rate.

`spammers` nodes (picked at random) publish `spam_per_s` invalid payloads per
second each (REJECTed by every honest validator; simulations/adversaries.py:
Spammer) while honest publishers send a valid stream. Validation already
stops spam at the first hop; scoring (P4, invalid deliveries) then graylists
the spammers, so honest nodes stop even validating what they send. Results:
honest delivery of valid messages, and how many invalid copies honest nodes
had to validate, with scoring on and off (`scoring="both"`, the default).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

from gossip.errors import UserError
from simulations.adversaries import Spammer
from simulations.node import Behaviour
from simulations.scenarios.base import CommonParams
from simulations.scenarios.propagation import PropagationScenario
from simulations.world import World


@dataclass(frozen=True)
class SpamParams(CommonParams):
    nodes: int = 500
    spammers: int = 10
    spam_per_s: int = 20
    scoring: str = "both"
    messages: int = 30
    interval_s: float = 1.0
    warmup_s: float = 5.0

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.spammers < self.nodes:
            raise UserError(f"spammers must be in [0, nodes), got {self.spammers}")
        if not 0 <= self.spam_per_s <= 10_000:
            raise UserError(f"spam_per_s must be in [0, 10000], got {self.spam_per_s}")


class Spam(PropagationScenario):
    name: ClassVar[str] = "spam"
    Params: ClassVar[type[CommonParams]] = SpamParams
    topic: ClassVar[str] = "/sonm/orders/1"

    @property
    def sp(self) -> SpamParams:
        assert isinstance(self.params, SpamParams)
        return self.params

    def spammer_ids(self) -> list[int]:
        rng = random.Random(f"{self.sp.seed}/spammers")
        return sorted(rng.sample(range(self.sp.nodes), self.sp.spammers))

    def behaviours(self) -> dict[int, Behaviour]:
        per_hb = round(self.sp.spam_per_s * self.sp.gossip().heartbeat_interval)
        out = super().behaviours()
        for i in self.spammer_ids():
            # each world gets fresh spammers with the same seed: same spam in both
            out[i] = Spammer(
                self.topic, per_hb, self.sp.payload_bytes, random.Random(f"{self.sp.seed}/spam/{i}")
            )
        return out

    def extra_results(self, variant: str, world: World) -> dict[str, Any]:
        honest = self.honest(world)
        spam_sent = 0
        for i in self.spammer_ids():
            beh = world.nodes[i].behaviour
            assert isinstance(beh, Spammer)
            spam_sent += beh.published
        rejected = world.metric_sum("msgs_rejected", honest)
        return {
            "spammers": self.sp.spammers,
            "spam_published": spam_sent,
            "invalid_validated_by_honest": rejected,
            "invalid_validated_per_spam_message": rejected / spam_sent if spam_sent else 0.0,
            "graylisted_rpcs": world.metric_sum("graylisted_rpcs", honest),
        }
