"""A simulated network: nodes running real routers over the network model.

A World owns the Network (links), one SimNode per node and a Recorder. Several
worlds may share one Simulator (one virtual clock): the sybil scenario runs
"scoring on" and "scoring off" side by side that way, on identical graphs.

Start-up is staggered (each node starts at a uniform random time within
`start_spread_s`), as in a real network, so that heartbeats are not in lock
step. A node connects to its topology neighbours when both are up; the one
starting later dials (outbound on its side), which matters for D_out.

One `random.Random` per world is shared by all of its routers. A generator
holds ~2.5 KB of state, so one per node would cost 250 MB at 10^5 nodes; the
order in which routers draw from the shared one is fixed by the event order,
so runs stay reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from gossip.errors import UserError
from gossip.params import GossipSubParams
from gossip.router import PROTOCOL_V12, GossipRouter, Validator
from gossip.score_params import PeerScoreParams, PeerScoreThresholds
from gossip.validation import ValidationResult
from simulations.cpu import Cpu, CpuParams
from simulations.engine import Simulator, collector_paused
from simulations.network import Network, NetworkParams, Receiver
from simulations.node import HONEST, Behaviour, CpuSimNode, SimNode

INVALID_PREFIX = b"\x00invalid"
"""Payloads starting with this are REJECTed by the simulated validator."""


def sim_validator(topic: str, data: bytes, peer: bytes) -> ValidationResult:
    """Stands in for the application validators (signature, chain checks): the
    outcome is decided by the scenario when it makes the payload."""
    if data.startswith(INVALID_PREFIX):
        return ValidationResult.REJECT
    return ValidationResult.ACCEPT


def peer_id_of(index: int) -> bytes:
    return b"p%d" % index


@dataclass(frozen=True)
class WorldParams:
    nodes: int = 100
    network: NetworkParams = field(default_factory=NetworkParams)
    gossip: GossipSubParams = field(default_factory=GossipSubParams)
    score_params: PeerScoreParams | None = None
    thresholds: PeerScoreThresholds | None = None
    start_spread_s: float = 1.0
    cpu: CpuParams | None = None
    """Processing time and write coalescing (simulations/cpu.py); None: a node
    handles everything in zero virtual time and sends at once."""

    def validate(self) -> None:
        if not 2 <= self.nodes <= 2_000_000:
            raise UserError(f"nodes must be in [2, 2000000], got {self.nodes}")
        if not 0.0 <= self.start_spread_s <= 3600.0:
            raise UserError(f"start_spread_s must be in [0, 3600] s, got {self.start_spread_s}")
        self.network.validate(self.nodes)
        self.gossip.validate()
        if self.score_params is not None:
            self.score_params.validate()
        if self.thresholds is not None:
            self.thresholds.validate()
        if self.cpu is not None:
            self.cpu.validate()


class Recorder:
    """First delivery time of each tracked message at each node (others are ignored)."""

    def __init__(self) -> None:
        self.published: dict[bytes, tuple[int, float]] = {}
        self.first: dict[bytes, dict[int, float]] = {}
        self.graylisted = 0

    def track(self, msg_id: bytes, publisher: int, now: float) -> None:
        self.published[msg_id] = (publisher, now)
        self.first.setdefault(msg_id, {})[publisher] = now

    def delivered(self, node: int, msg_id: bytes, now: float) -> None:
        per = self.first.get(msg_id)
        if per is not None and node not in per:
            per[node] = now


class World:
    def __init__(
        self,
        sim: Simulator,
        params: WorldParams,
        *,
        label: str = "world",
        behaviours: dict[int, Behaviour] | None = None,
        validator: Validator | None = sim_validator,
        extra_edges: list[tuple[int, int]] | None = None,
        graph_nodes: int | None = None,
    ) -> None:
        params.validate()
        # the build makes ~30 long-lived objects per node and no garbage: the
        # collector walking them as they pile up was 27 % of it at 10^5 nodes
        with collector_paused():
            self.sim = sim
            self.params = params
            self.label = label
            self.seed_label = label  # what the world's random streams are derived from
            n = params.nodes
            self.net = Network(
                sim,
                n,
                params.network,
                sim.child_rng(f"{label}/topology"),
                sim.child_rng(f"{label}/loss"),
                graph_nodes=graph_nodes,
            )
            self.net.online = [False] * n
            self.net.deliver = self._deliver
            for a, b in extra_edges or ():
                self.net.connect(a, b)
            self.rng = sim.child_rng(f"{label}/routers")
            self.recorder = Recorder()
            behaviours = behaviours or {}
            self.nodes: list[SimNode] = []
            self.index_of: dict[bytes, int] = {}
            self.peer_ids: list[bytes] = []  # by index: what on_rpc hands the router
            self._cpu_rng = sim.child_rng(f"{label}/cpu")
            self.shared_cpu = (
                self._new_cpu() if params.cpu is not None and params.cpu.shared else None
            )
            for i in range(n):
                pid = peer_id_of(i)
                router = GossipRouter(
                    local_peer=pid,
                    params=params.gossip,
                    rng=self.rng,
                    score_params=params.score_params,
                    thresholds=params.thresholds,
                    validator=validator,
                )
                self.nodes.append(self._node(i, pid, router, behaviours.get(i, HONEST)))
                self.index_of[pid] = i
                self.peer_ids.append(pid)
            # the same list (restart_node replaces entries in place), seen as receivers
            self.net.receivers = cast(list[Receiver], self.nodes)

    def _node(self, i: int, pid: bytes, router: GossipRouter, behaviour: Behaviour) -> SimNode:
        cpu = self.params.cpu
        if cpu is None:
            return SimNode(self, i, pid, router, behaviour)
        return CpuSimNode(self, i, pid, router, behaviour, cpu, self.shared_cpu or self._new_cpu())

    def _new_cpu(self) -> Cpu:
        c = self.params.cpu
        assert c is not None
        return Cpu(c.wake_s, self._cpu_rng, c.gc_every_s, c.gc_pause_s)

    # -- lifecycle ---------------------------------------------------------------

    def start_all(self, topics: list[str], subscribe: Callable[[int], bool] | None = None) -> None:
        """Schedule every node's start within start_spread_s of now."""
        rng = self.sim.child_rng(f"{self.seed_label}/start")
        spread = self.params.start_spread_s
        base = self.sim.now
        # one long-lived event per node and no garbage: at 10^5 nodes the collector
        # otherwise walked the whole world once here (0.6 s)
        with collector_paused():
            for i in range(self.params.nodes):
                topics_i = topics if subscribe is None or subscribe(i) else []
                self.sim.schedule(base + rng.random() * spread, self.start_node, i, topics_i)

    def start_node(self, i: int, topics: list[str]) -> None:
        node = self.nodes[i]
        now = self.sim.now
        node.online = True
        node.started = True
        self.net.online[i] = True
        for t in topics:
            node.router.subscribe(t, now)
        for j in sorted(self.net.adj[i]):
            if self.nodes[j].online:
                self._add_link(i, j, now)
        node.flush()

    def _add_link(self, dialer: int, listener: int, now: float) -> None:
        a, b = self.nodes[dialer], self.nodes[listener]
        a.router.add_peer(b.peer_id, PROTOCOL_V12, True, now)
        b.router.add_peer(a.peer_id, PROTOCOL_V12, False, now)
        b.flush()

    def connect(self, dialer: int, listener: int) -> None:
        """Open a new connection (churn re-dials, PX)."""
        self.net.connect(dialer, listener)
        if self.nodes[dialer].online and self.nodes[listener].online:
            self._add_link(dialer, listener, self.sim.now)
            self.nodes[dialer].flush()

    def disconnect(self, a: int, b: int) -> None:
        if b not in self.net.adj[a]:
            return
        self.net.disconnect(a, b)
        now = self.sim.now
        for x, y in ((a, b), (b, a)):
            node = self.nodes[x]
            if node.online:
                node.router.remove_peer(self.nodes[y].peer_id, now)
                node.flush()

    def stop_node(self, i: int) -> None:
        """The node leaves: its connections close; it keeps its graph position
        only in the sense that `start_node` may bring it back with new links."""
        node = self.nodes[i]
        if not node.online:
            return
        for j in sorted(self.net.adj[i]):
            self.disconnect(i, j)
        node.online = False
        self.net.online[i] = False

    def restart_node(self, i: int, topics: list[str], peers: list[int]) -> None:
        """Rejoin with a fresh router (state is lost, as after a restart)."""
        old = self.nodes[i]
        router = GossipRouter(
            local_peer=old.peer_id,
            params=self.params.gossip,
            rng=self.rng,
            score_params=self.params.score_params,
            thresholds=self.params.thresholds,
            validator=old.router.validator,
        )
        self.nodes[i] = self._node(i, old.peer_id, router, old.behaviour)
        for j in peers:
            if j != i:
                self.net.connect(i, j)
        self.start_node(i, topics)

    # -- traffic -----------------------------------------------------------------

    def _deliver(self, src: int, dst: int, payload: Any, size: int) -> None:
        self.nodes[dst].on_rpc(src, payload)

    def publish(self, i: int, topic: str, data: bytes, track: bool = True) -> bytes:
        """Publish from node i now; raises the router's PublishError if it cannot."""
        node = self.nodes[i]
        now = self.sim.now
        msg_id = node.router.publish(topic, data, now)
        node.on_publish()
        if track:
            self.recorder.track(msg_id, i, now)
        node.flush()
        return msg_id

    # -- measurements ------------------------------------------------------------

    def metric_sum(self, name: str, nodes: list[int] | None = None) -> int:
        idx = range(len(self.nodes)) if nodes is None else nodes
        return sum(int(getattr(self.nodes[i].router.metrics, name)) for i in idx)


def payload(rng: random.Random, size: int, prefix: bytes = b"") -> bytes:
    """A unique payload of `size` bytes (StrictNoSign ids are payload hashes)."""
    body = rng.getrandbits(8 * max(0, size - len(prefix))).to_bytes(
        max(0, size - len(prefix)), "big"
    )
    return prefix + body
