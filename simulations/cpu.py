"""Processing time and write coalescing in a simulated node (optional).

Without this model a router handles a frame in zero virtual time and every RPC
leaves the moment the router queues it: right for propagation over a WAN, where
link latency dwarfs the milliseconds a node spends per message, wrong on a LAN
or loopback, where those milliseconds *are* the latency. With `CpuParams` the
simulated node spends virtual time the way the daemon (p2pnode/pubsub.py)
spends CPU:

- one CPU runs everything of a node, first come first served: reading a frame
  costs `read_s` plus `message_s` per message in it, a heartbeat `heartbeat_s`,
  a publish `message_s`; the router sees a frame when its read is done (that is
  when the daemon's `router.receive` returns and deliveries are reported);
- each peer has one writer, as in the driver. A write costs `write_s` plus
  `write_message_s` per message and leaves for the network when it is done; the
  writer is busy until then. `coalescing` is how the writer decides when to
  write:
  - "adaptive" (write at once when the writer is idle; what queues while a
    write is in flight leaves in the next write, up to `max_write_messages`
    messages / `max_write_bytes` bytes per write);
  - "hold" (the fixed hold of the earlier driver: after a write, the next one
    waits until `hold_s` after it ended unless `flush_at` messages are queued;
    after idle the first message is written at once);
- `shared`: all nodes of the world share one CPU, as the loopback benchmarks
  run ten daemons' routers in one process (one thread, one trio loop);
- `wake_s`: when a frame or a hold timer finds the CPU idle, the daemon's
  process is asleep in the kernel, and the work starts only when the OS
  scheduler runs it again: one of these measured wake-up delays, drawn at
  random (empty: at once). On a machine with idle cores they are tens of
  microseconds; on a loaded one they are what the latency is made of;
- `gc_every_s`, `gc_pause_s`: the interpreter's cyclic garbage collector stops
  the daemon's thread now and then, for tens of microseconds (a young
  generation) up to tens of milliseconds (the whole heap). A collection comes
  after so many allocations, so the model ties it to work done: after every
  `gc_every_s` seconds of work the CPU stops for one of the measured pauses,
  drawn at random, inside the work that crossed the mark (0: no collector). A
  pause delays everything queued behind it, which is what the daemon's tail
  latency shows at low rates: one whole-heap pause holds every delivery of the
  message it falls on.

The costs are not guessed: benchmarks/sim_fidelity.py measures them on real
daemons over loopback (CPU seconds against the writes and frames the daemons'
own counters report) and checks the simulated latency against the real one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from gossip.errors import UserError

COALESCING = ("adaptive", "hold")


@dataclass(frozen=True)
class CpuParams:
    read_s: float = 0.3e-3
    message_s: float = 0.05e-3
    write_s: float = 0.35e-3
    write_message_s: float = 0.04e-3
    heartbeat_s: float = 0.2e-3
    coalescing: str = "adaptive"
    max_write_messages: int = 512
    max_write_bytes: int = 60 << 10
    hold_s: float = 0.05
    flush_at: int = 64
    shared: bool = False
    wake_s: tuple[float, ...] = ()
    gc_every_s: float = 0.0
    gc_pause_s: tuple[float, ...] = ()

    def validate(self) -> None:
        for name in ("read_s", "message_s", "write_s", "write_message_s", "heartbeat_s"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise UserError(f"cpu {name} must be in [0, 1] s, got {v}")
        if self.coalescing not in COALESCING:
            raise UserError(
                f"cpu coalescing must be one of {', '.join(COALESCING)}, got {self.coalescing!r}"
            )
        if self.max_write_messages < 1:
            raise UserError(f"cpu max_write_messages must be >= 1, got {self.max_write_messages}")
        if self.max_write_bytes < 1:
            raise UserError(f"cpu max_write_bytes must be >= 1 byte, got {self.max_write_bytes}")
        if not 0.0 <= self.hold_s <= 10.0:
            raise UserError(f"cpu hold_s must be in [0, 10] s, got {self.hold_s}")
        if self.flush_at < 1:
            raise UserError(f"cpu flush_at must be >= 1, got {self.flush_at}")
        if any(not 0.0 <= w <= 1.0 for w in self.wake_s):
            raise UserError("cpu wake_s must hold delays in [0, 1] s")
        if self.gc_every_s != 0.0 and not 1e-4 <= self.gc_every_s <= 3600.0:
            # a collection after less than 0.1 ms of work is not what the collector
            # does (the young generation's threshold is hundreds of allocations),
            # and would draw a pause every few µs
            raise UserError(
                f"cpu gc_every_s must be 0 or in [0.0001, 3600] s, got {self.gc_every_s}"
            )
        if any(not 0.0 <= g <= 10.0 for g in self.gc_pause_s):
            raise UserError("cpu gc_pause_s must hold pauses in [0, 10] s")
        if self.gc_every_s > 0.0 and not self.gc_pause_s:
            raise UserError("cpu gc_every_s needs gc_pause_s: the pauses to draw from")


class Cpu:
    """One processor: the virtual time at which it is next free."""

    __slots__ = (
        "_gc_every",
        "_gc_pause",
        "_rng",
        "_wake",
        "busy_s",
        "free_at",
        "gc_pauses",
        "gc_s",
        "wakes",
        "work_since_gc",
    )

    def __init__(
        self,
        wake_s: tuple[float, ...] = (),
        rng: random.Random | None = None,
        gc_every_s: float = 0.0,
        gc_pause_s: tuple[float, ...] = (),
    ) -> None:
        self.free_at = 0.0
        self.busy_s = 0.0
        self.wakes = 0
        self._wake = wake_s
        self._rng = rng
        if gc_every_s > 0.0 and gc_pause_s and rng is None:
            raise ValueError("the collector model draws its pauses: it needs an rng")
        self._gc_every = gc_every_s if gc_pause_s else 0.0
        self._gc_pause = gc_pause_s
        self.work_since_gc = 0.0
        self.gc_pauses = 0
        self.gc_s = 0.0  # of busy_s: the collector's pauses

    def wake(self, now: float) -> None:
        """Work arrives at `now`: if the CPU is idle, it starts after a wake-up delay."""
        if self._wake and self.free_at <= now:
            assert self._rng is not None
            self.free_at = now + self._rng.choice(self._wake)
            self.wakes += 1

    def run(self, now: float, cost: float) -> float:
        """Queue `cost` seconds of work arriving at `now`; returns when it is done."""
        start = self.free_at if self.free_at > now else now
        done = start + cost
        if self._gc_every > 0.0:
            self.work_since_gc += cost
            while self.work_since_gc >= self._gc_every:
                assert self._rng is not None
                self.work_since_gc -= self._gc_every
                pause = self._rng.choice(self._gc_pause)
                done += pause
                cost += pause
                self.gc_pauses += 1
                self.gc_s += pause
        self.free_at = done
        self.busy_s += cost
        return done
