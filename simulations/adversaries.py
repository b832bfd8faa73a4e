"""Adversarial behaviours: what a misbehaving node does differently.

Each adversary runs the same GossipRouter as everyone (so it speaks the
protocol, keeps a mesh, answers subscriptions) and deviates only through the
Behaviour hooks of simulations/node.py: it filters what its router sends and
adds traffic of its own. This is how the libp2p gossipsub hardening tests
build their attackers, and it keeps the honest side 100 % real code.

- `Withholder`: drops every message it should forward or serve (free rider,
  or a node under an eclipse attacker's control); it still gossips IHAVE, so
  IWANTs sent to it become broken promises.
- `Sybil`: a Withholder that also GRAFTs every honest neighbour at every
  heartbeat, ignoring PRUNE backoff, to fill honest meshes and hold its place
  there (the "eclipse" attack of the hardening tests: 1000 honest against
  4000 sybils connected heavily to the publishers).
- `Spammer`: publishes invalid messages (REJECTed by validators) at a steady
  rate on top of otherwise honest behaviour.
"""

from __future__ import annotations

import random

from gossip.router import PublishError
from gossip.wire import RPC, Control
from simulations.node import Behaviour, SimNode
from simulations.world import INVALID_PREFIX, payload


class Withholder(Behaviour):
    honest = False
    name = "withholder"

    def outgoing(self, node: SimNode, dst: int, rpc: RPC) -> RPC | None:
        if not rpc.publish:
            return rpc
        if not rpc.subscriptions and not rpc.control:
            return None
        return RPC(rpc.subscriptions, [], rpc.control)


class Sybil(Withholder):
    name = "sybil"

    def __init__(self, topic: str, is_sybil: list[bool]) -> None:
        self.topic = topic
        self.is_sybil = is_sybil
        self._graft = RPC(control=Control(graft=[topic]))
        self._size = self._graft.encoded_size()

    def after_timer(self, node: SimNode, now: float) -> None:
        w = node.world
        net = w.net
        wire = net.wire_bytes(self._size)
        src = node.index
        for dst in sorted(net.adj[src]):
            if not self.is_sybil[dst]:
                net.send(now, src, dst, self._graft, wire)


class Spammer(Behaviour):
    honest = False
    name = "spammer"

    def __init__(self, topic: str, per_heartbeat: int, size: int, rng: random.Random) -> None:
        self.topic = topic
        self.per_heartbeat = per_heartbeat
        self.size = size
        self.rng = rng
        self.published = 0
        self.failed = 0

    def after_timer(self, node: SimNode, now: float) -> None:
        for _ in range(self.per_heartbeat):
            data = payload(self.rng, self.size, INVALID_PREFIX)
            try:
                node.router.publish(self.topic, data, now)
                self.published += 1
            except PublishError:
                self.failed += 1
