"""Sybil / eclipse attack on the publishers (libp2p gossipsub hardening).

`nodes` honest nodes form the usual topology among themselves; `sybil_ratio`
times as many sybils join after them (so every sybil connection is inbound
at the honest end: attackers cannot make honest nodes dial them). Each sybil
connects to every publisher (the eclipse attempt: publishers end up with
thousands of sybil connections and a handful of honest ones) and to
`sybil_degree` random honest nodes, then GRAFTs everyone at every heartbeat
and forwards nothing (simulations/adversaries.py: Sybil).

The publishers send a steady stream (one message every `interval_s`,
round-robin), as the hardening tests do, so that scores have traffic to build
on; results give honest delivery per message over time, with scoring on and
off side by side (`scoring="both"`, the default). Scoring uses the project's
derivation (gossip/score_params.py) for the attacked topic, with P3 (mesh
message deliveries) switched on (`p3=true`, as the hardening tests do: the
topic has steady traffic) and a 2 s delivery window (`p3_window_s`), which
is what lets honest nodes tell withholding sybils from honest mesh peers.
docs/simulation.md discusses P3 with the project's default 50 ms window and
with sparse honest graphs, where it also prunes honest peers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from gossip.errors import UserError
from gossip.score_params import TopicProfile
from simulations.adversaries import Sybil
from simulations.engine import Simulator
from simulations.node import Behaviour
from simulations.scenarios.base import CommonParams, GossipScenario
from simulations.world import World, payload


@dataclass(frozen=True)
class SybilParams(CommonParams):
    nodes: int = 1000
    sybil_ratio: float = 4.0
    sybil_degree: int = 3
    publishers: int = 5
    degree: int = 10
    scoring: str = "both"
    warmup_s: float = 10.0
    messages: int = 60
    interval_s: float = 1.0
    drain_s: float = 5.0
    p3: bool = True
    p3_activation_s: float = 10.0
    p3_window_s: float = 2.0

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.sybil_ratio <= 100.0:
            raise UserError(f"sybil_ratio must be in [0, 100], got {self.sybil_ratio}")
        if not 0 <= self.sybil_degree <= self.nodes:
            raise UserError(f"sybil_degree must be in [0, nodes], got {self.sybil_degree}")
        if not 1 <= self.publishers <= self.nodes:
            raise UserError(f"publishers must be in [1, nodes], got {self.publishers}")
        if not 1.0 <= self.p3_activation_s <= 3600.0:
            raise UserError(f"p3_activation_s must be in [1, 3600], got {self.p3_activation_s}")
        if not 0.0 <= self.p3_window_s <= 60.0:
            raise UserError(f"p3_window_s must be in [0, 60], got {self.p3_window_s}")


class SybilEclipse(GossipScenario):
    name: ClassVar[str] = "sybil_eclipse"
    Params: ClassVar[type[CommonParams]] = SybilParams
    topic: ClassVar[str] = "/sonm/orders/1"

    @property
    def sp(self) -> SybilParams:
        assert isinstance(self.params, SybilParams)
        return self.params

    @property
    def n_sybils(self) -> int:
        return round(self.sp.nodes * self.sp.sybil_ratio)

    def total_nodes(self) -> int:
        return self.sp.nodes + self.n_sybils

    def publisher_ids(self) -> list[int]:
        # honest nodes are 0..nodes-1 and placed at random: the first few will do
        return list(range(self.sp.publishers))

    def behaviours(self) -> dict[int, Behaviour]:
        h = self.sp.nodes
        is_sybil = [i >= h for i in range(self.total_nodes())]
        beh = Sybil(self.topic, is_sybil)
        return {i: beh for i in range(h, self.total_nodes())}

    def extra_edges(self, sim: Simulator) -> list[tuple[int, int]]:
        rng = sim.child_rng("sybil-edges")
        h = self.sp.nodes
        pubs = self.publisher_ids()
        edges: list[tuple[int, int]] = []
        for s in range(h, self.total_nodes()):
            for p in pubs:
                edges.append((s, p))
            for t in rng.sample(range(h), min(self.sp.sybil_degree, h)):
                edges.append((s, t))
        return edges

    def topic_profile(self) -> TopicProfile:
        return TopicProfile(
            weight=1.0,
            expected_rate=1.0 / self.sp.interval_s,
            mesh_deliveries=self.sp.p3,
            mesh_activation=self.sp.p3_activation_s,
            mesh_window=self.sp.p3_window_s,
        )

    def _world(self, sim: Simulator, world: World) -> None:
        rng = sim.child_rng("start")
        h = self.sp.nodes
        for i in range(self.total_nodes()):
            at = rng.random() + (1.0 if i >= h else 0.0)
            sim.schedule(at, world.start_node, i, [self.topic])

    def start(self, sim: Simulator) -> None:
        for world in self.worlds.values():
            self._world(sim, world)

    def graph_nodes(self) -> int | None:
        return self.sp.nodes

    def traffic(self, sim: Simulator) -> None:
        p = self.sp
        rng = sim.child_rng("payloads")
        pubs = self.publisher_ids()
        for k in range(p.messages):
            data = payload(rng, p.payload_bytes)
            at = sim.now + k * p.interval_s
            for v, world in self.worlds.items():
                sim.schedule(at, self.publish, world, v, pubs[k % len(pubs)], data)

    def extra_results(self, variant: str, world: World) -> dict[str, Any]:
        pubs = self.publisher_ids()
        honest_mesh = 0
        total_mesh = 0
        h = self.sp.nodes
        for i in range(h):
            mesh = world.nodes[i].router.mesh_peers(self.topic)
            total_mesh += len(mesh)
            honest_mesh += sum(1 for x in mesh if world.index_of[x] < h)
        pub_conn = [len(world.net.adj[p]) for p in pubs]
        return {
            "sybils": self.n_sybils,
            "publisher_connections": pub_conn,
            "honest_share_of_honest_meshes": honest_mesh / total_mesh if total_mesh else 0.0,
        }
