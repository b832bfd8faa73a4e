"""Which (signer, nonce) pairs have been spent: a sans-IO replay guard with bounded memory.

A signed message stays valid until its `valid_until`; within that time the same
signature could be replayed, or the same nonce reused with other content. The guard
remembers every accepted number per key until the message it came from expires
(after that the validity check refuses it anyway), so memory is bounded by what is
live in the network, and capped on top of that.

Per key (a signer, namespaced by message kind) it keeps a *floor* — every number at
or below it counts as spent — and the set of spent numbers above it. Two modes:

- monotonic (hub announcements, peer records: the newest sequence wins): accepting n
  raises the floor to n; nothing else is stored;
- unique (orders, cancellations: many live at once): n joins the set; past
  `max_per_key` numbers the smallest is folded into the floor.

Folding keeps the guard safe (it can only refuse more), at the price of refusing an
honest author's late, out-of-order nonce; honest authors count upward. When the
global `max_entries` cap is hit, the earliest-expiring entry is folded into its
key's floor; if that entry *is* a floor, the key's whole set is folded into it; only
a key that is a bare floor already is forgotten outright (counted in
`forgotten_keys`: the cap is then too small for the traffic, and that signer's
still-valid messages could be replayed once).

Persistence: `drain_records()` returns what changed since the last call, for the
daemon to write (SQLite: upsert by (key, number, is_floor); delete rows whose
`expires` passed); `load()` restores them after a restart.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import NamedTuple


@dataclass(frozen=True)
class ReplayParams:
    max_entries: int = 500_000
    max_per_key: int = 4096

    def validate(self) -> None:
        if type(self.max_entries) is not int or self.max_entries < 1:
            raise ValueError(f"max_entries: must be >= 1, got {self.max_entries!r}")
        if type(self.max_per_key) is not int or not 1 <= self.max_per_key <= self.max_entries:
            raise ValueError(
                f"max_per_key: must be in [1, max_entries={self.max_entries}], "
                f"got {self.max_per_key!r}"
            )


class ReplayRecord(NamedTuple):
    """One row to persist: `number` is spent until `expires` (unix seconds).

    A named tuple: one is made for every accepted message, and a frozen dataclass
    (whose __init__ stays interpreted even in the compiled module) cost ~2 µs of
    the loop's time per message, a named tuple ~0.3."""

    key: bytes
    number: int
    expires: float
    is_floor: bool  # True: every number <= `number` is spent


@dataclass
class _KeyState:
    floor: int = -1
    floor_expires: float = float("-inf")
    live: dict[int, float] = field(default_factory=dict)


@dataclass
class ReplayCounters:
    recorded: int = 0
    replays_seen: int = 0
    folded: int = 0  # numbers folded into a floor to stay under a cap
    forgotten_keys: int = 0  # keys dropped whole under the global cap (protection lost)


class ReplayGuard:
    def __init__(self, params: ReplayParams | None = None) -> None:
        self.params = params or ReplayParams()
        self.params.validate()
        self._keys: dict[bytes, _KeyState] = {}
        # (expires, key, number); number == -1 marks the key's floor. Lazily invalidated.
        self._heap: list[tuple[float, bytes, int]] = []
        self._cost = 0  # one per key (its floor slot) + one per live number
        self._pending: list[ReplayRecord] = []
        self.counters = ReplayCounters()

    def __len__(self) -> int:
        return self._cost

    def seen(self, key: bytes, number: int) -> bool:
        """Is `number` already spent for `key`? Read-only: call before the costly checks."""
        state = self._keys.get(key)
        hit = state is not None and (number <= state.floor or number in state.live)
        if hit:
            self.counters.replays_seen += 1
        return hit

    def spent(self, key: bytes, number: int) -> bool:
        """`seen` without counting: a read that writes nothing, so another thread may
        use it as a hint while the owner writes (each dict read is atomic); the
        owner's own `seen` is what decides."""
        state = self._keys.get(key)
        return state is not None and (number <= state.floor or number in state.live)

    def record(
        self, key: bytes, number: int, expires: float, *, monotonic: bool, now: float
    ) -> None:
        """Mark `number` spent for `key` until `expires`; call once the message is accepted."""
        self.expire(now)
        self._apply(key, number, expires, monotonic)
        self._pending.append(ReplayRecord(key, number, expires, monotonic))
        self.counters.recorded += 1
        self._enforce_cap()

    def expire(self, now: float) -> None:
        """Forget what expired at or before `now`."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            expires, key, number = heapq.heappop(heap)
            state = self._keys.get(key)
            if state is None:
                continue
            if number == -1:
                if state.floor >= 0 and state.floor_expires == expires:
                    state.floor = -1
                    state.floor_expires = float("-inf")
            elif state.live.get(number) == expires:
                del state.live[number]
                self._cost -= 1
            if state.floor < 0 and not state.live:
                del self._keys[key]
                self._cost -= 1
        if len(heap) > 4 * self.params.max_entries + 64:
            self._rebuild_heap()

    def drain_records(self) -> list[ReplayRecord]:
        """What was recorded since the last call, for the daemon to persist."""
        out, self._pending = self._pending, []
        return out

    def requeue(self, records: list[ReplayRecord]) -> None:
        """Give back drained records whose write failed, ahead of newer ones."""
        self._pending[:0] = records

    def load(self, records: list[ReplayRecord], now: float) -> None:
        """Restore persisted records (after a restart); expired ones are skipped."""
        for r in records:
            if r.expires > now:
                self._apply(r.key, r.number, r.expires, r.is_floor)
        self._enforce_cap()

    # --- internals -------------------------------------------------------------------

    def _state(self, key: bytes) -> _KeyState:
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _KeyState()
            self._cost += 1
        return state

    def _raise_floor(self, key: bytes, state: _KeyState, number: int, expires: float) -> None:
        if number > state.floor:
            state.floor = number
        # numbers the floor now covers are folded in: it must last as long as they would
        below = [n for n in state.live if n <= state.floor]
        for n in below:
            expires = max(expires, state.live.pop(n))
        self._cost -= len(below)
        if expires > state.floor_expires:
            state.floor_expires = expires
            heapq.heappush(self._heap, (expires, key, -1))

    def _apply(self, key: bytes, number: int, expires: float, floor: bool) -> None:
        state = self._state(key)
        if floor:
            self._raise_floor(key, state, number, expires)
            return
        if number <= state.floor:
            return
        old = state.live.get(number)
        if old is None:
            self._cost += 1
        if old is None or expires > old:
            state.live[number] = expires
            heapq.heappush(self._heap, (expires, key, number))
        if len(state.live) > self.params.max_per_key:
            smallest = min(state.live)
            self.counters.folded += 1
            self._raise_floor(key, state, smallest, state.live[smallest])

    def _enforce_cap(self) -> None:
        heap = self._heap
        while self._cost > self.params.max_entries and heap:
            expires, key, number = heapq.heappop(heap)
            state = self._keys.get(key)
            if state is None:
                continue
            if number == -1:
                if state.floor < 0 or state.floor_expires != expires:
                    continue  # stale
                if state.live:  # shrink the key to its floor alone: stricter, still safe
                    self.counters.folded += len(state.live)
                    newest = max(state.live)
                    self._raise_floor(key, state, newest, max(state.live.values()))
                    continue
                self._cost -= 1
                del self._keys[key]
                self.counters.forgotten_keys += 1
            elif state.live.get(number) == expires:
                self.counters.folded += 1
                self._raise_floor(key, state, number, expires)

    def _rebuild_heap(self) -> None:
        heap: list[tuple[float, bytes, int]] = []
        for key, state in self._keys.items():
            if state.floor >= 0:
                heap.append((state.floor_expires, key, -1))
            heap.extend((exp, key, n) for n, exp in state.live.items())
        heapq.heapify(heap)
        self._heap = heap
