"""A network of routers in virtual time, without sockets, for tests and small studies.

Frames drained from one router are delivered to the other side after a fixed
latency, in order, through the real codec (`receive`), unless `encode=False`
(then `drain_rpcs`/`receive_rpc`, as the simulator does). Time only moves when
`run_until` says so, so every test is deterministic for a given seed.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from gossip.events import Delivered, Event
from gossip.params import GossipSubParams
from gossip.rng import RandomSource
from gossip.router import PROTOCOL_V12, GossipRouter
from gossip.wire import RPC


@dataclass
class VirtualNet:
    latency: float = 0.001
    encode: bool = True
    now: float = 0.0
    routers: dict[bytes, GossipRouter] = field(default_factory=dict)
    links: set[tuple[bytes, bytes]] = field(default_factory=set)
    delivered: dict[bytes, list[Delivered]] = field(default_factory=dict)
    events: dict[bytes, list[Event]] = field(default_factory=dict)
    on_event: Callable[[bytes, Event], None] | None = None
    _queue: list[tuple[float, int, bytes, bytes, bytes | RPC]] = field(default_factory=list)
    _seq: int = 0

    def add(self, router: GossipRouter) -> GossipRouter:
        self.routers[router.local_peer] = router
        self.delivered[router.local_peer] = []
        self.events[router.local_peer] = []
        return router

    def new(
        self,
        name: bytes,
        rng: RandomSource,
        params: GossipSubParams | None = None,
        **kw: object,
    ) -> GossipRouter:
        return self.add(GossipRouter(local_peer=name, params=params, rng=rng, **kw))  # type: ignore[arg-type]

    def connect(self, a: bytes, b: bytes, protocol: str = PROTOCOL_V12) -> None:
        """a dials b: outbound at a, inbound at b."""
        self.routers[a].add_peer(b, protocol, True, self.now)
        self.routers[b].add_peer(a, protocol, False, self.now)
        self.links.add((a, b))
        self.links.add((b, a))
        self.flush()

    def disconnect(self, a: bytes, b: bytes) -> None:
        self.routers[a].remove_peer(b, self.now)
        self.routers[b].remove_peer(a, self.now)
        self.links.discard((a, b))
        self.links.discard((b, a))

    def flush(self) -> None:
        """Move every router's output into the in-flight queue and collect events."""
        for name, r in self.routers.items():
            if self.encode:
                out: list[tuple[bytes, bytes | RPC]] = list(r.drain())
            else:
                out = list(r.drain_rpcs())
            for peer, item in out:
                if (name, peer) not in self.links:
                    continue
                self._seq += 1
                heapq.heappush(self._queue, (self.now + self.latency, self._seq, name, peer, item))
            for ev in r.events():
                self.events[name].append(ev)
                if isinstance(ev, Delivered):
                    self.delivered[name].append(ev)
                if self.on_event is not None:
                    self.on_event(name, ev)

    def run_until(self, t: float) -> None:
        while True:
            self.flush()
            next_frame = self._queue[0][0] if self._queue else None
            deadlines = [d for r in self.routers.values() if (d := r.next_deadline()) is not None]
            next_timer = min(deadlines) if deadlines else None
            cands = [x for x in (next_frame, next_timer) if x is not None and x <= t]
            if not cands:
                break
            self.now = max(self.now, min(cands))
            while self._queue and self._queue[0][0] <= self.now:
                _, _, src, dst, item = heapq.heappop(self._queue)
                r = self.routers.get(dst)
                if r is None or (dst, src) not in self.links:
                    continue
                if isinstance(item, RPC):
                    r.receive_rpc(src, item, self.now)
                else:
                    r.receive(src, item, self.now)
            for r in self.routers.values():
                d = r.next_deadline()
                if d is not None and d <= self.now:
                    r.on_timer(self.now)
        self.now = max(self.now, t)
        self.flush()
