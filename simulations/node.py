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
from typing import TYPE_CHECKING, ClassVar

from mypy_extensions import mypyc_attr

from gossip.events import Delivered, Event, PeerGraylisted, PeerShouldDisconnect
from gossip.router import GossipRouter
from gossip.wire import RPC
from simulations.cpu import Cpu, CpuParams
from simulations.network import Receiver

if TYPE_CHECKING:
    from simulations.world import World


# Adversaries (simulations/adversaries.py) subclass it in plain Python.
@mypyc_attr(allow_interpreted_subclasses=True)
class Behaviour:
    """Honest behaviour: send what the router says, nothing else."""

    # ClassVar: compiled, a plain class attribute would be a slot of the instance,
    # which a Python subclass's `honest = False` does not override
    honest: ClassVar[bool] = True
    name: ClassVar[str] = "honest"

    def outgoing(self, node: SimNode, dst: int, rpc: RPC) -> RPC | None:
        """The RPC to put on the wire instead of `rpc` (None: send nothing)."""
        return rpc

    def after_timer(self, node: SimNode, now: float) -> None:
        """Hook run after each heartbeat of this node's router."""


HONEST = Behaviour()


class SimNode(Receiver):
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
        self.router.receive_rpc(w.peer_ids[src], rpc, w.sim.now)
        self.flush()

    def _on_timer(self, at: float) -> None:
        if at != self._deadline or not self.online:
            return  # superseded by an earlier deadline, or the node left
        self._deadline = None
        now = self.world.sim.now
        self.router.on_timer(now)
        self.behaviour.after_timer(self, now)
        self.flush(after_timer=True)

    def on_publish(self) -> None:
        """Hook run when the node publishes (the CPU model charges it)."""

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
        out = router.drain_rpcs()  # [] at once when nothing is queued
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
                net.send_to_peer(now, src, dst, rpc, net.wire_bytes(size))
        # _after_flush, inlined: this runs once per event
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

    def _after_flush(self, now: float, after_timer: bool) -> None:
        """Act on the router's events and keep its timer scheduled."""
        w = self.world
        router = self.router
        events = router.events()
        if events:
            self._handle_events(events, now)
        d = router.next_deadline()
        if d is not None and self.online:
            if after_timer and d <= now:
                d = now + 1e-9
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


class _Writer:
    """One peer's writer task, as in the daemon's driver: what is queued for the
    peer, whether a write is in flight, and the hold timer of the "hold" mode."""

    __slots__ = ("busy", "bytes", "last_end", "msgs", "queue", "timer")

    def __init__(self) -> None:
        self.queue: list[tuple[RPC, int, int]] = []  # (rpc, messages, encoded bytes)
        self.msgs = 0
        self.bytes = 0
        self.busy = False
        self.last_end = -1e18
        self.timer = 0  # generation of the pending hold wake-up; 0: none


class CpuSimNode(SimNode):
    """A SimNode that spends virtual time on processing and coalesces writes
    per peer (simulations/cpu.py has the model and why)."""

    __slots__ = ("_timer_gen", "_writers", "cpu", "cpu_params")

    def __init__(
        self,
        world: World,
        index: int,
        peer_id: bytes,
        router: GossipRouter,
        behaviour: Behaviour,
        cpu_params: CpuParams,
        cpu: Cpu,
    ) -> None:
        super().__init__(world, index, peer_id, router, behaviour)
        self.cpu_params = cpu_params
        self.cpu = cpu
        self._writers: dict[int, _Writer] = {}
        self._timer_gen = 0

    # -- inputs ----------------------------------------------------------------

    def on_rpc(self, src: int, rpc: RPC | list[RPC]) -> None:
        """A write of the peer arrives: read it (CPU), then hand it to the router."""
        frame = rpc if isinstance(rpc, list) else [rpc]
        p = self.cpu_params
        msgs = 0
        for r in frame:
            msgs += len(r.publish)
        sim = self.world.sim
        cpu = self.cpu
        cpu.wake(sim.now)
        done = cpu.run(sim.now, p.read_s + p.message_s * msgs)
        sim.schedule(done, self._read_done, src, frame)

    def _read_done(self, src: int, frame: list[RPC]) -> None:
        if not self.online:
            return
        w = self.world
        now = w.sim.now
        peer = w.peer_ids[src]
        for r in frame:
            self.router.receive_rpc(peer, r, now)
        self.flush()

    def _on_timer(self, at: float) -> None:
        if at == self._deadline and self.online:
            self.cpu.run(self.world.sim.now, self.cpu_params.heartbeat_s)
        super()._on_timer(at)

    def on_publish(self) -> None:
        self.cpu.run(self.world.sim.now, self.cpu_params.message_s)

    # -- outputs ---------------------------------------------------------------

    def flush(self, after_timer: bool = False) -> None:
        w = self.world
        now = w.sim.now
        router = self.router
        if router.has_pending():
            index_of = w.index_of
            beh = self.behaviour
            writers = self._writers
            touched: dict[int, _Writer] = {}
            for peer, rpc in router.drain_rpcs():
                dst = index_of[peer]
                if not beh.honest:
                    filtered = beh.outgoing(self, dst, rpc)
                    if filtered is None:
                        continue
                    rpc = filtered
                wr = writers.get(dst)
                if wr is None:
                    wr = writers[dst] = _Writer()
                k = len(rpc.publish)
                size = rpc.encoded_size()
                wr.queue.append((rpc, k, size))
                wr.msgs += k
                wr.bytes += size
                touched[dst] = wr
            for dst, wr in touched.items():
                self._kick(dst, wr, now)
        self._after_flush(now, after_timer)

    def _kick(self, dst: int, wr: _Writer, now: float) -> None:
        """The writer of `dst` has output: write now, or later as the driver would."""
        if wr.busy or not wr.queue:
            return  # a write in flight: what queued leaves in the next one
        p = self.cpu_params
        if p.coalescing == "hold":
            due = wr.last_end + p.hold_s
            if now < due and wr.msgs < p.flush_at:
                if not wr.timer:
                    self._timer_gen += 1
                    wr.timer = self._timer_gen
                    self.world.sim.schedule(due, self._hold_over, dst, wr.timer)
                return
        self._write(dst, wr, now)

    def _hold_over(self, dst: int, gen: int) -> None:
        wr = self._writers.get(dst)
        if wr is None or wr.timer != gen:
            return  # written meanwhile (flush_at reached)
        wr.timer = 0
        if not wr.busy and wr.queue and self.online:
            now = self.world.sim.now
            self.cpu.wake(now)
            self._write(dst, wr, now)

    def _write(self, dst: int, wr: _Writer, now: float) -> None:
        p = self.cpu_params
        q = wr.queue
        msgs = size = 0
        cut = 0
        for _, k, s in q:
            if cut and (msgs + k > p.max_write_messages or size + s > p.max_write_bytes):
                break
            msgs += k
            size += s
            cut += 1
        frame = [r for r, _, _ in q[:cut]]
        del q[:cut]
        wr.msgs -= msgs
        wr.bytes -= size
        wr.busy = True
        wr.timer = 0
        done = self.cpu.run(now, p.write_s + p.write_message_s * msgs)
        self.world.sim.schedule(done, self._write_done, dst, frame, size)

    def _write_done(self, dst: int, frame: list[RPC], size: int) -> None:
        wr = self._writers[dst]
        wr.busy = False
        w = self.world
        now = w.sim.now
        wr.last_end = now
        if not self.online:
            return
        net = w.net
        net.send_to_peer(now, self.index, dst, frame, net.wire_bytes(size))
        self._kick(dst, wr, now)
