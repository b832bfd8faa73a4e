"""The connection keeper's decisions, without the network or the clock.

`p2pnode.discovery` owns the sockets, the timers and the peer table; every choice
it makes — whom to ask for peer records, whom to dial, when a peer that failed may
be tried again, which connections go when there are too many — is made here, from
the time the driver passes in (`now`, seconds on a monotonic clock) and an injected
random source. So the policy is tested in virtual time, deterministically, and the
driver holds only I/O (tests/test_sans_io.py keeps this module free of trio, time
and random).

Re-dial backoff: a peer that fails to answer waits redial_interval · 2^(failures-1),
capped at redial_max_interval, with ±25 % jitter so that nodes which lost the same
peer do not come back in step. A dead peer then costs a dial every few minutes at
most, and a flapping one cannot make the node spin.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from gossip.rng import RandomSource
from p2pnode.errors import UserError

if TYPE_CHECKING:
    from p2pnode.config import NetworkSection

# 2^20 · redial_interval is past any cap; bounding the exponent keeps the float finite
MAX_BACKOFF_EXPONENT = 20
JITTER = 0.25  # each backoff is stretched by a factor drawn in [1 - JITTER, 1 + JITTER)


@dataclass(frozen=True)
class DiscoveryParams:
    """What the keeper aims for and how patiently it retries.

    The first five come from the `network.*` config keys of the same names
    (`from_network`); the rest are the keeper's fixed pace, named here so tests can
    vary them."""

    min_connections: int = 8
    max_connections: int = 32
    redial_interval: float = 2.0
    redial_max_interval: float = 60.0
    px_interval: float = 30.0
    # a small network may never reach the target: each peer is asked for records at
    # most once per px_min_gap, or the seeds would be asked in a tight loop
    px_min_gap: float = 1.0
    px_fanout_short: int = 3  # peers asked per round while below min_connections
    max_concurrent_dials: int = 8

    @classmethod
    def from_network(cls, net: NetworkSection) -> DiscoveryParams:
        return cls(
            min_connections=net.min_connections,
            max_connections=net.max_connections,
            redial_interval=net.redial_interval,
            redial_max_interval=net.redial_max_interval,
            px_interval=net.px_interval,
        )

    def validate(self) -> DiscoveryParams:
        """Check every bound; raise UserError naming the first one broken."""

        def need(ok: bool, name: str, bound: str) -> None:
            if not ok:
                raise UserError(f"DiscoveryParams.{name}={getattr(self, name)!r}: must be {bound}")

        need(self.min_connections >= 0, "min_connections", ">= 0")
        need(self.max_connections >= 1, "max_connections", ">= 1")
        need(
            self.max_connections >= self.min_connections,
            "max_connections",
            f">= min_connections ({self.min_connections})",
        )
        need(self.redial_interval > 0, "redial_interval", "> 0")
        need(
            self.redial_max_interval >= self.redial_interval,
            "redial_max_interval",
            f">= redial_interval ({self.redial_interval})",
        )
        need(self.px_interval > 0, "px_interval", "> 0")
        need(self.px_min_gap >= 0, "px_min_gap", ">= 0")
        need(self.px_fanout_short >= 1, "px_fanout_short", ">= 1")
        need(self.max_concurrent_dials >= 1, "max_concurrent_dials", ">= 1")
        return self


class Candidate(Protocol):
    """A peer-table row as the policy sees it (p2pnode.storage.PeerRow fits)."""

    @property
    def peer_id(self) -> str: ...

    @property
    def addrs(self) -> tuple[str, ...]: ...

    @property
    def failures(self) -> int: ...


@dataclass
class Backoff:
    failures: int = 0
    next_try: float = 0.0


@dataclass
class Round:
    """What one keeper round decided; the driver carries it out."""

    ask: list[str] = field(default_factory=list)  # peers to ask for records, in order
    dial: list[Candidate] = field(default_factory=list)  # best candidate first
    drop: list[str] = field(default_factory=list)  # connections to close, newest first


def backoff_delay(params: DiscoveryParams, failures: int) -> float:
    """The wait after `failures` consecutive failed dials, before jitter."""
    exponent = min(max(failures - 1, 0), MAX_BACKOFF_EXPONENT)
    return float(min(params.redial_interval * 2**exponent, params.redial_max_interval))


class DiscoveryPolicy:
    """The keeper's state: backoffs, dials in flight, connection ages, px pacing."""

    def __init__(self, params: DiscoveryParams, rng: RandomSource, me: str) -> None:
        self.params = params.validate()
        self.rng = rng
        self.me = me
        self.seeds: set[str] = set()
        self.backoff: dict[str, Backoff] = {}
        self.dialing: set[str] = set()
        self.connected_at: dict[str, float] = {}
        self.last_asked: dict[str, float] = {}
        self.last_px: float | None = None

    # -- events from the driver ------------------------------------------------

    def connected(self, pid: str, now: float) -> None:
        """A connection to `pid` opened (either direction): it is reachable."""
        self.connected_at.setdefault(pid, now)
        self.backoff.pop(pid, None)

    def disconnected(self, pid: str, *, still_connected: bool) -> None:
        """A connection closed; the peer's age is kept while another one stays open."""
        if not still_connected:
            self.connected_at.pop(pid, None)

    def record_refreshed(self, pid: str) -> None:
        """A newer signed record arrived: its addresses deserve a try now."""
        self.backoff.pop(pid, None)

    def dial_succeeded(self, pid: str, now: float) -> None:
        """Clears the backoff; the new neighbour counts as asked, since the driver
        asks it for records straight away."""
        self.dialing.discard(pid)
        self.backoff.pop(pid, None)
        self.last_asked[pid] = now

    def dial_failed(self, pid: str, now: float, stored_failures: int = 0) -> float:
        """Puts `pid` in backoff and returns the time before it may be dialled again.

        `stored_failures` is the peer table's count, which survives restarts."""
        self.dialing.discard(pid)
        b = self.backoff.setdefault(pid, Backoff())
        b.failures = max(b.failures + 1, stored_failures)
        delay = backoff_delay(self.params, b.failures) * (
            1 - JITTER + 2 * JITTER * self.rng.random()
        )
        b.next_try = now + delay
        return delay

    def dial_abandoned(self, pid: str) -> None:
        """The row could not be dialled at all (the driver forgets it)."""
        self.dialing.discard(pid)
        self.backoff.pop(pid, None)

    def dial_ended(self, pid: str) -> None:
        """The dial task is gone, however it ended (cancellation included)."""
        self.dialing.discard(pid)

    def may_dial(self, pid: str, now: float) -> bool:
        b = self.backoff.get(pid)
        return b is None or b.next_try <= now

    # -- one round -------------------------------------------------------------

    def plan(
        self,
        now: float,
        connected: Collection[str],
        candidates: Callable[[], Iterable[Candidate]],
    ) -> Round:
        """Decide one round from the connections open now.

        `candidates` is called only when the node is short of connections, so the
        driver reads its peer table only then. The decisions are recorded at once
        (px pacing, dials in flight, backoff of dropped peers)."""
        p = self.params
        out = Round()
        want_more = len(connected) < p.min_connections
        eligible = sorted(
            pid
            for pid in connected
            if pid not in self.last_asked or now - self.last_asked[pid] >= p.px_min_gap
        )
        px_due = self.last_px is None or now - self.last_px >= p.px_interval
        if eligible and (want_more or px_due):
            self.last_px = now
            k = min(len(eligible), p.px_fanout_short if want_more else 1)
            out.ask = self.rng.sample(eligible, k=k)
            for pid in out.ask:
                self.last_asked[pid] = now
        for pid in [q for q in self.last_asked if q not in connected]:
            del self.last_asked[pid]
        if want_more:
            out.dial = self._choose_dials(now, connected, candidates())
            self.dialing.update(c.peer_id for c in out.dial)
        elif len(connected) > p.max_connections:
            out.drop = self._choose_drops(now, connected)
        return out

    def _choose_dials(
        self, now: float, connected: Collection[str], rows: Iterable[Candidate]
    ) -> list[Candidate]:
        budget = min(
            self.params.min_connections - len(connected),
            self.params.max_concurrent_dials - len(self.dialing),
        )
        if budget <= 0:
            return []
        pool = sorted(
            (
                r
                for r in rows
                if r.peer_id != self.me
                and r.peer_id not in connected
                and r.peer_id not in self.dialing
                and self.may_dial(r.peer_id, now)
            ),
            key=lambda r: r.peer_id,
        )
        # shuffled from a fixed order, so a seeded source picks the same peers every
        # run; then seeds last once we know others (they carry everyone's first
        # connection), fewest failures first
        self.rng.shuffle(pool)
        have_any = len(connected) > 0
        pool.sort(key=lambda r: (have_any and r.peer_id in self.seeds, r.failures))
        return pool[:budget]

    def _choose_drops(self, now: float, connected: Collection[str]) -> list[str]:
        extra = len(connected) - self.params.max_connections
        # newest first: long-lived connections are the stable part of the overlay
        victims = sorted(connected, key=lambda pid: (-self.connected_at.get(pid, 0.0), pid))
        victims = victims[:extra]
        for pid in victims:
            # a dropped peer would dial us back or be dialled again at once otherwise
            self.backoff[pid] = Backoff(0, now + self.params.redial_max_interval)
        return victims
