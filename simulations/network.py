"""The links between simulated nodes: latency, loss, bandwidth, ordering.

Model (docs/simulation.md has the numbers and why):
- Each node has one uplink of `uplink_bps` bits/s (None = unlimited). A frame
  of `size` bytes occupies it for `size * 8 / uplink_bps` seconds, after the
  frames queued before it: this is the serialization delay, and it is shared
  by all of a node's connections, as a home or VM uplink is. Downlinks are
  assumed not to be the bottleneck.
- After leaving the uplink the frame travels for the link's one-way latency
  (simulations/latency.py), fixed per link for the whole run.
- libp2p runs over TCP, so a lost packet is not a lost frame: with
  probability `loss` a frame is retransmitted after `max(rto_min_s, 2 * rtt)`
  (repeated while it keeps being lost). `loss_mode="drop"` instead drops the
  frame outright, for experiments with unreliable transports.
- Frames on one directed link never overtake each other (TCP and a yamux
  stream are FIFO): a frame arrives no earlier than the frame sent before it
  on the same link, so a retransmission delays what follows it
  (head-of-line blocking).

Latencies are computed from per-node attributes (region, position, access
latency) on each send instead of being stored per link, which keeps memory
per node small at 10^5 nodes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gossip.errors import UserError
from gossip.wire import uvarint_size
from simulations.engine import Simulator
from simulations.latency import LatencyParams, access_latencies, assign_regions, one_way_matrix
from simulations.topology import TopologyParams, build, positions

# Signal propagation in fibre ~ 200 km/ms; the unit square spans ~ 20 000 km,
# and routes are ~ 2x longer than great circles: 1.0 of distance ~ 200 ms.
_GEO_SECONDS_PER_UNIT = 0.2

_STREAM_OVERHEAD = 12 + 2 + 16  # yamux header, Noise length prefix and MAC
_MSS = 1460
_SEGMENT_HEADERS = 40  # IPv4 + TCP without options

DeliverFn = Callable[[int, int, Any, int], None]
"""deliver(src, dst, payload, size) at arrival time."""


class Receiver:
    """What a frame is handed to on arrival (World's nodes). A base class rather
    than a protocol: compiled, a call through it is a direct call, where a
    protocol's went through a Python attribute lookup once per frame."""

    __slots__ = ()

    def on_rpc(self, src: int, payload: Any) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class NetworkParams:
    topology: TopologyParams = field(default_factory=TopologyParams)
    latency: LatencyParams = field(default_factory=LatencyParams)
    uplink_bps: float | None = 50e6
    loss: float = 0.0
    loss_mode: str = "retransmit"
    rto_min_s: float = 0.2
    transport_overhead: bool = True

    def validate(self, n: int) -> None:
        self.topology.validate(n)
        self.latency.validate()
        if self.uplink_bps is not None and not 1e3 <= self.uplink_bps <= 1e12:
            raise UserError(f"uplink_bps must be in [1e3, 1e12] or None, got {self.uplink_bps}")
        if not 0.0 <= self.loss < 0.5:
            raise UserError(f"loss must be in [0, 0.5), got {self.loss}")
        if self.loss_mode not in ("retransmit", "drop"):
            raise UserError(f"loss_mode must be 'retransmit' or 'drop', got {self.loss_mode!r}")
        if not 0.0 <= self.rto_min_s <= 5.0:
            raise UserError(f"rto_min_s must be in [0, 5] s, got {self.rto_min_s}")


@dataclass(slots=True)
class NetworkCounters:
    frames_sent: int = 0
    bytes_sent: int = 0
    frames_dropped: int = 0
    retransmissions: int = 0
    frames_to_offline: int = 0


class Network:
    """Links between `n` nodes, scheduling frame arrivals on a simulator."""

    def __init__(
        self,
        sim: Simulator,
        n: int,
        params: NetworkParams,
        rng: random.Random,
        loss_rng: random.Random,
        graph_nodes: int | None = None,
    ) -> None:
        """`graph_nodes`: build the topology on the first graph_nodes nodes only and
        leave the rest unconnected (scenarios wire attackers in themselves)."""
        params.validate(n if graph_nodes is None else graph_nodes)
        self.params = params
        self.n = n
        # the simulator itself, not its bound `schedule`: compiled, a call through
        # the typed object is a direct C call, where a stored callable's parsed
        # its arguments as a Python call once per frame
        self._sim = sim
        self._loss_rng = loss_rng
        self.regions = assign_regions(n, rng)
        self.access = access_latencies(n, params.latency, rng)
        g = n if graph_nodes is None else graph_nodes
        self.adj, self.pos = build(params.topology, g, self.regions[:g], rng)
        if g < n:
            self.adj.extend(set() for _ in range(n - g))
            self.pos.extend(positions(self.regions[g:], params.topology.region_spread, rng))
        self._geo = params.topology.kind == "geographic" and params.latency.model == "regions"
        self._fixed = params.latency.fixed_s if params.latency.model == "fixed" else None
        self._one_way = one_way_matrix()
        self._inv_bw = 0.0 if params.uplink_bps is None else 8.0 / params.uplink_bps
        self._loss = params.loss
        self._overhead = params.transport_overhead
        self._arrive_cb = self._arrive  # one bound method, not one per frame
        self._uplink_free = [0.0] * n
        self._hol: dict[tuple[int, int], float] = {}
        self._cuts = 0  # links ever disconnected: until one is, no frame needs the check
        self.online = [True] * n
        self.counters = NetworkCounters()
        self.deliver: DeliverFn | None = None
        self.receivers: list[Receiver] | None = None
        """When set, frames go straight to `receivers[dst].on_rpc(src, payload)`
        instead of through `deliver` (one call less per event; World sets it)."""

    # -- links ---------------------------------------------------------------

    def latency(self, a: int, b: int) -> float:
        """One-way latency of the link a -> b in seconds (symmetric)."""
        if self._fixed is not None:
            return self._fixed
        if self._geo:
            (ax, ay), (bx, by) = self.pos[a], self.pos[b]
            base = math.hypot(ax - bx, ay - by) * _GEO_SECONDS_PER_UNIT
        else:
            base = self._one_way[self.regions[a]][self.regions[b]]
        return base + (self.access[a] + self.access[b])  # grouped: exactly symmetric

    def connect(self, a: int, b: int) -> None:
        self.adj[a].add(b)
        self.adj[b].add(a)

    def disconnect(self, a: int, b: int) -> None:
        self._cuts += 1
        self.adj[a].discard(b)
        self.adj[b].discard(a)
        self._hol.pop((a, b), None)
        self._hol.pop((b, a), None)

    def wire_bytes(self, rpc_size: int) -> int:
        """Bytes on the wire for one RPC of `rpc_size` encoded bytes.

        The RPC's varint length prefix, then (with transport_overhead) a yamux
        header (12 B) and a Noise frame's length and MAC (2 + 16 B), then 40 B
        of TCP/IP headers per 1460-byte segment.
        """
        framed = rpc_size + (1 if rpc_size < 0x80 else uvarint_size(rpc_size))
        if not self._overhead:
            return framed
        framed += _STREAM_OVERHEAD
        return framed + _SEGMENT_HEADERS * -(-framed // _MSS)

    # -- frames --------------------------------------------------------------

    def send(self, now: float, src: int, dst: int, payload: Any, size: int) -> None:
        """Queue `payload` (`size` bytes on the wire) from src to dst at `now`;
        dropped (and counted) when src and dst are not linked."""
        if dst not in self.adj[src]:
            self.counters.frames_dropped += 1
            return
        self.send_to_peer(now, src, dst, payload, size)

    def send_to_peer(self, now: float, src: int, dst: int, payload: Any, size: int) -> None:
        """`send` for a frame a router addressed to one of its peers (SimNode.flush).

        A router's peers are the links World opened, and every link World cuts
        is removed from both routers in the same event, so until some link has
        been cut the link is known to exist and the lookup in the sender's
        adjacency (a cache miss per frame at 10^5 nodes) is skipped, as
        `_arrive` skips its own.
        """
        c = self.counters
        if self._cuts and dst not in self.adj[src]:
            c.frames_dropped += 1
            return
        c.frames_sent += 1
        c.bytes_sent += size
        free = self._uplink_free
        start = free[src]
        if start < now:
            start = now
        done = start + size * self._inv_bw
        free[src] = done
        lat = self._fixed
        if lat is None:
            if self._geo:
                lat = self.latency(src, dst)
            else:  # latency(), inlined: this runs once per frame
                access = self.access
                regions = self.regions
                lat = self._one_way[regions[src]][regions[dst]] + (access[src] + access[dst])
        arrival = done + lat
        if self._loss > 0.0:
            arrival = self._lose(now, src, dst, done, lat, arrival)
            if arrival < 0.0:
                return
        self._sim.schedule(arrival, self._arrive_cb, src, dst, payload, size)

    def _lose(
        self, now: float, src: int, dst: int, done: float, lat: float, arrival: float
    ) -> float:
        """Loss on a frame due at `arrival`: its arrival after retransmissions and
        head-of-line blocking, or -1.0 when `loss_mode="drop"` drops it."""
        c = self.counters
        rnd = self._loss_rng.random
        while rnd() < self._loss:
            if self.params.loss_mode == "drop":
                c.frames_dropped += 1
                return -1.0
            c.retransmissions += 1
            arrival += max(self.params.rto_min_s, 4.0 * lat)
        key = (src, dst)
        prev = self._hol.get(key)
        if prev is not None:
            if prev > arrival:
                arrival = prev
            elif prev <= now:
                del self._hol[key]
        if arrival > done + lat:
            self._hol[key] = arrival
        return arrival

    def _arrive(self, src: int, dst: int, payload: Any, size: int) -> None:
        # a frame leaves only on a link that exists (send), so the link can be
        # gone at arrival only after some disconnect: until then the lookup in
        # the receiver's adjacency (a cache miss at 10^5 nodes) is skipped
        if not self.online[dst] or (self._cuts and src not in self.adj[dst]):
            self.counters.frames_to_offline += 1
            return
        receivers = self.receivers
        if receivers is not None:
            receivers[dst].on_rpc(src, payload)
            return
        assert self.deliver is not None
        self.deliver(src, dst, payload, size)

    # -- analysis ------------------------------------------------------------

    def shortest_delays(self, source: int, relays: set[int] | None = None) -> list[float]:
        """Latency-weighted shortest path from `source` to every node (Dijkstra).

        The lower bound on any propagation time over this graph, ignoring
        serialization and processing: no protocol can beat it. With `relays`,
        only those nodes forward (attackers that withhold are no path).
        """
        import heapq

        dist = [math.inf] * self.n
        dist[source] = 0.0
        heap = [(0.0, source)]
        while heap:
            d, u = heapq.heappop(heap)
            if d > dist[u] or (relays is not None and u != source and u not in relays):
                continue
            for v in self.adj[u]:
                if not self.online[v]:
                    continue
                nd = d + self.latency(u, v)
                if nd < dist[v]:
                    dist[v] = nd
                    heapq.heappush(heap, (nd, v))
        return dist
