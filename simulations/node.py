"""One simulated node: the real `GossipRouter`, driven in virtual time.

The adapter does exactly what the daemon's driver does, with the network model
in place of libp2p streams: it hands the router each RPC at its arrival time
(`receive_rpc`, skipping the codec but not the router), calls `on_timer` at
`next_deadline()`, ships `drain_rpcs()` output through the network (the wire
size is the RPC's exact encoded size plus the length prefix and transport
overhead, see Network.wire_bytes) and acts on the router's events
(deliveries are recorded; PeerShouldDisconnect closes the connection).

A `Behaviour` is the only place a node may deviate from the protocol:
honest nodes use the default one, which changes nothing; adversaries
(simulations/adversaries.py) filter what the router sends or add traffic of
their own. The router itself is never patched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from gossip.events import Delivered, Event, PeerGraylisted, PeerShouldDisconnect
from gossip.router import GossipRouter
from gossip.wire import RPC

if TYPE_CHECKING:
    from simulations.world import World


class Behaviour:
    """Honest behaviour: send what the router says, nothing else."""

    honest = True
    name = "honest"

    def outgoing(self, node: SimNode, dst: int, rpc: RPC) -> RPC | None:
        """The RPC to put on the wire instead of `rpc` (None: send nothing)."""
        return rpc

    def after_timer(self, node: SimNode, now: float) -> None:
        """Hook run after each heartbeat of this node's router."""


HONEST = Behaviour()


class SimNode:
    __slots__ = (
        "_deadline",
        "behaviour",
        "index",
        "online",
        "peer_id",
        "router",
        "started",
        "world",
    )

    def __init__(
        self, world: World, index: int, peer_id: bytes, router: GossipRouter, behaviour: Behaviour
    ) -> None:
        self.world = world
        self.index = index
        self.peer_id = peer_id
        self.router = router
        self.behaviour = behaviour
        self.online = False
        self.started = False
        self._deadline: float | None = None

    # -- inputs ----------------------------------------------------------------

    def on_rpc(self, src: int, rpc: RPC) -> None:
        """Network delivery: the RPC from node `src` arrives now."""
        w = self.world
        self.router.receive_rpc(w.nodes[src].peer_id, rpc, w.sim.now)
        self.flush()

    def _on_timer(self, at: float) -> None:
        if at != self._deadline or not self.online:
            return  # superseded by an earlier deadline, or the node left
        self._deadline = None
        now = self.world.sim.now
        self.router.on_timer(now)
        self.behaviour.after_timer(self, now)
        self.flush(after_timer=True)

    def call(self, fn: Callable[[GossipRouter, float], object]) -> object:
        """Run `fn(router, now)` (publish, subscribe...) and ship what it produced."""
        result = fn(self.router, self.world.sim.now)
        self.flush()
        return result

    # -- outputs ---------------------------------------------------------------

    def flush(self, after_timer: bool = False) -> None:
        w = self.world
        now = w.sim.now
        router = self.router
        out = router.drain_rpcs() if router.has_pending() else None
        if out:
            index_of = w.index_of
            net = w.net
            beh = self.behaviour
            src = self.index
            honest = beh.honest
            for peer, rpc in out:
                dst = index_of[peer]
                if not honest:
                    filtered = beh.outgoing(self, dst, rpc)
                    if filtered is None:
                        continue
                    rpc = filtered
                size = rpc.encoded_size()
                net.send(now, src, dst, rpc, net.wire_bytes(size))
        events = router.events()
        if events:
            self._handle_events(events, now)
        d = router.next_deadline()
        if d is not None and self.online:
            if after_timer and d <= now:
                d = now + 1e-9  # a deadline that does not move would spin forever
            cur = self._deadline
            if cur is None or d < cur:
                self._deadline = d
                w.sim.schedule(d, self._on_timer, d)

    def _handle_events(self, events: list[Event], now: float) -> None:
        w = self.world
        for ev in events:
            if isinstance(ev, Delivered):
                w.recorder.delivered(self.index, ev.msg_id, now)
            elif isinstance(ev, PeerShouldDisconnect):
                other = w.index_of.get(ev.peer)
                if other is not None:
                    w.sim.schedule(now, w.disconnect, self.index, other)
            elif isinstance(ev, PeerGraylisted):
                w.recorder.graylisted += 1
