"""Discrete-event engine: a calendar of callbacks in virtual time.

Why a bare calendar and not a framework: at 10^4-10^5 nodes the cost per event
is the budget. An event is a tuple `(time, seq, fn, args)`; `seq` is a global
counter, so two events at the same virtual time run in the order they were
scheduled; nothing ever compares the callbacks, and the same seed gives the
same run byte for byte.

The events are not kept in one heap: at 10^5 nodes it held ~5x10^5 tuples,
and each pop walked ~19 levels of it, every level a cache miss (list slot,
tuple, float): a third of a run's time went to `heappop` alone. Instead time
is cut into slots of 1/1024 s. An event for a later slot is appended to that
slot's list (no ordering work); when the clock reaches a slot, its list is
sorted once by time and walked front to back. The sort is stable and a
slot's list is in the order its events were scheduled, so events at the same
time run in that order, as `seq` would order them; and sorting a few
thousand floats (one C comparison each, no tuple compared) cost much less
than the ~12 levels of tuple comparisons each `heappop` of a slot's heap did.
An event scheduled for the slot being run (rare: most delays are longer than
a slot) goes to a small heap ordered by (time, seq), and runs before the
slot's next event only when its time is earlier (at equal times the slot's
event was scheduled first). A small heap of slot numbers says which slot
comes next. Slot numbers are `int(time * 1024)`, exact for a power of two,
and never decrease when time grows, so every event of an earlier slot
precedes every event of a later one, and the order is exactly that of one
heap of (time, seq).

All randomness of a run comes from `Simulator.rng` (a seeded `random.Random`)
or from generators derived from it with `child_rng`, never from the global
`random` module, so a run is reproducible no matter what else the process does.
"""

from __future__ import annotations

import gc
import heapq
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from gossip.errors import UserError

_Event = tuple[float, Callable[..., None], tuple[Any, ...]]
"""A slot's event: (time, callback, args); its place in the slot's list is its seq."""
_LateEvent = tuple[float, int, Callable[..., None], tuple[Any, ...]]
"""An event scheduled into the slot being run: (time, seq, callback, args)."""

_event_time = itemgetter(0)


def _ran() -> None:
    """Stands in a slot's list for an event already taken (see `_run`)."""


_RAN: _Event = (0.0, _ran, ())

SLOTS_PER_SECOND = 1024.0
"""Calendar slots per virtual second (a power of two: `time * 1024` is exact)."""

ProgressCallback = Callable[[float, int], None]
"""Called with (virtual now, events run so far) every `progress_every` events."""


@dataclass(frozen=True)
class EngineParams:
    seed: int = 0
    progress_every: int = 50_000
    collect_during_run: bool = False
    """False: the cyclic collector is off while `run` goes (see `collector_paused`);
    True: it runs, with everything alive at the start frozen and the first
    threshold at `gc_gen0_threshold`, for models that make cyclic garbage."""
    gc_gen0_threshold: int = 100_000

    def validate(self) -> None:
        if not 0 <= self.seed < 2**63:
            raise UserError(f"seed must be in [0, 2**63), got {self.seed}")
        if self.progress_every < 1:
            raise UserError(f"progress_every must be >= 1, got {self.progress_every}")
        if self.gc_gen0_threshold < 0:
            raise UserError(f"gc_gen0_threshold must be >= 0, got {self.gc_gen0_threshold}")


class Simulator:
    """Virtual clock plus event queue; everything else hangs off it."""

    def __init__(
        self, params: EngineParams | None = None, progress: ProgressCallback | None = None
    ) -> None:
        self.params = params or EngineParams()
        self.params.validate()
        self.rng = random.Random(self.params.seed)
        self.now = 0.0
        self.events_run = 0
        # the slot being run (sorted by time), the index of its next event and
        # its number; events scheduled into it meanwhile (a heap); later slots
        # (lists in the order scheduled) by number, and a heap of their numbers
        # (see the module docstring)
        self._cur: list[_Event] = []
        self._cur_i = 0
        self._cur_slot = -1
        self._late: list[_LateEvent] = []
        self._slots: dict[int, list[_Event]] = {}
        self._slot_keys: list[int] = []
        self._seq = 0
        self._progress = progress
        self._stopped = False
        self._running = False

    def child_rng(self, label: str) -> random.Random:
        """An independent generator for one concern (topology, loss, churn).

        Derived from the run's seed and a label rather than drawn from `rng`, so
        adding a draw in one concern does not shift every other concern's
        numbers, which keeps runs comparable when one part of the model changes.
        """
        return random.Random(f"{self.params.seed}/{label}")

    def schedule(self, at: float, fn: Callable[..., None], *args: Any) -> None:
        """Run `fn(*args)` at virtual time `at` (never in the past)."""
        if at < self.now:
            at = self.now
        k = int(at * SLOTS_PER_SECOND)
        if k <= self._cur_slot:
            self._seq += 1
            heapq.heappush(self._late, (at, self._seq, fn, args))
            return
        slot = self._slots.get(k)
        if slot is None:
            self._slots[k] = [(at, fn, args)]
            heapq.heappush(self._slot_keys, k)
        else:
            slot.append((at, fn, args))

    def call_later(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        self.schedule(self.now + delay, fn, *args)

    def stop(self) -> None:
        """Make `run` return after the current event."""
        self._stopped = True

    @property
    def pending(self) -> int:
        return len(self._cur) - self._cur_i + len(self._late) + sum(map(len, self._slots.values()))

    def run(self, until: float | None = None, max_events: int | None = None) -> None:
        """Run events in (time, seq) order until the queue empties, `until` or `stop()`.

        Events scheduled exactly at `until` still run; the clock is left at
        `until` (or at the last event) so that the caller can schedule after it.

        By default the cyclic garbage collector is off while it runs
        (`collector_paused`): the routers' state built during a run (peers,
        meshes: millions of long-lived objects at 10^5 nodes) made the
        collector walk every new object once per generation, 16 % of the CPU
        of a 3x10^4-node start-up, and a run of honest routers makes no cyclic
        garbage at all (RPCs and messages die by reference counting; a 3000-node
        run with the collector off left 0 objects for it to find). Cycles a
        model does make (a router replaced by a churn restart, if its state
        holds a cycle) wait for the run's end; `collect_during_run` keeps the
        collector on for models where that would hold too much: everything
        alive at the start is then frozen out of its reach (`gc.freeze()`) and
        its first threshold raised to `gc_gen0_threshold` (0 keeps it), which
        spares it the whole-heap walks the default threshold of 700 caused.
        """
        if not self.params.collect_during_run:
            with collector_paused():
                self._run(until, max_events)
            return
        saved = gc.get_threshold()
        if self.params.gc_gen0_threshold:
            gc.set_threshold(self.params.gc_gen0_threshold, saved[1], saved[2])
        gc.freeze()
        try:
            self._run(until, max_events)
        finally:
            gc.unfreeze()
            gc.set_threshold(*saved)

    def _run(self, until: float | None, max_events: int | None) -> None:
        if self._running:
            # the loop keeps its place in the slot in locals: a nested run would
            # take events from under it
            raise UserError("Simulator.run called from inside an event; schedule instead")
        self._running = True
        cur = self._cur
        i = self._cur_i
        late = self._late
        slots = self._slots
        keys = self._slot_keys
        pop = heapq.heappop
        progress = self._progress
        every = self.params.progress_every if progress is not None else 0
        limit = float("inf") if until is None else until
        budget = -1 if max_events is None else max_events
        self._stopped = False
        ran = 0
        try:
            while budget != ran:
                if i < len(cur):
                    ev = cur[i]
                    at = ev[0]
                    if late and late[0][0] < at:
                        at, _, fn, args = late[0]
                        if at > limit:
                            break
                        pop(late)
                    else:
                        if at > limit:
                            break
                        # let the event go now, not with its whole slot: what it
                        # frees is reused while still in the cache
                        cur[i] = _RAN
                        i += 1
                        fn = ev[1]
                        args = ev[2]
                elif late:
                    at, _, fn, args = late[0]
                    if at > limit:
                        break
                    pop(late)
                else:
                    if not keys:
                        break
                    k = pop(keys)
                    cur = slots.pop(k)
                    cur.sort(key=_event_time)  # stable: equal times keep the order scheduled
                    i = 0
                    self._cur = cur
                    self._cur_slot = k  # from now on `schedule` puts events of this slot in _late
                    continue
                self.now = at
                self._cur_i = i  # an event that reads `pending` sees itself run
                fn(*args)
                ran += 1
                if self._stopped:
                    break
                if every and (self.events_run + ran) % every == 0:
                    progress(self.now, self.events_run + ran)  # type: ignore[misc]
        finally:
            self._cur_i = i
            self.events_run += ran
            self._running = False
        stopped = self._stopped or budget == ran
        if until is not None and until > self.now and not stopped:
            self.now = until
        if progress is not None:
            progress(self.now, self.events_run)


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block, then back as it was.

    What the block allocated and kept is moved straight to the oldest
    generation (`gc.freeze()` then `gc.unfreeze()`: two list splices, no
    traversal) instead of being walked by a young collection of millions of
    objects right after. Only when nothing else had frozen objects: unfreezing
    would otherwise hand those back to the collector too. Garbage cycles made
    in the block are found by the next full collection.
    """
    was_enabled = gc.isenabled()
    frozen_before = gc.get_freeze_count()
    gc.disable()
    try:
        yield
    finally:
        if not frozen_before:
            gc.freeze()
            gc.unfreeze()
        if was_enabled:
            gc.enable()
