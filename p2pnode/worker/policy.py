"""Which hub a worker joins, and when it leaves one: the whole decision, pure.

The worker agent gathers what it knows (the hubs heard on the hubs topic, their
status as this node sees it, their offers) and asks `decide` what to do next;
nothing here does I/O or reads a clock, so every rule is tested as a table.

The default order follows the whitepaper's miner: a hub other miners vouch for or
that already paid us (checked, safe) first, then one merely announced with its
wallet checked on chain (unverified), and within a class the best pay per hour.
A hub with a warning (`ReputationCore.warning`: a peer we trust, or one whose
missed first payday checks out on chain, was not paid there since the hub last
paid us) is not joined, and the joined one is left when a warning comes: a status
needs more weight to turn, and heeding a false warning costs only the choice of
hub.
Before a hub is joined the network is asked about it (`Ask`), and the worker
joins only once the answers have had time to come: a worker the hub stiffed warns
in its answer, and the hub it just left is open, the very moment a worker that has
not asked lately would take the place.
Pinned hubs (`worker.hubs_pin`) are the only candidates when any are named;
forbidden ones (`worker.hubs_forbid`) never are. A hub that turns suspected or
fake is left, but only once the tasks it handed us have ended: a consumer's
running task is not cut short by a dispute between worker and hub.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reputation.state import HubStatus

WARNED = "warned: a worker was not paid there since it last paid us"
ASKS_SPENT = "questions out of turn spent for now (AskBudget)"

_CLASS = {
    HubStatus.SAFE: 0,
    HubStatus.CHECKED: 0,
    HubStatus.UNVERIFIED: 1,
}


@dataclass(frozen=True)
class PolicyParams:
    pinned: frozenset[bytes] = frozenset()  # hub wallets; non-empty: only these
    forbidden: frozenset[bytes] = frozenset()
    min_pay_per_hour: int = 0

    def validate(self) -> None:
        both = self.pinned & self.forbidden
        if both:
            raise ValueError(f"pinned and forbidden both hold 0x{sorted(both)[0].hex()}")
        if self.min_pay_per_hour < 0:
            raise ValueError(f"min_pay_per_hour = {self.min_pay_per_hour}: allowed >= 0")


@dataclass(frozen=True)
class Candidate:
    """A hub as the worker knows it: from its announcement, status and offer."""

    wallet: bytes
    status: HubStatus
    pay_per_hour: int | None  # None: no offer heard yet
    open: bool = True  # the hub's offer says it takes workers
    warned: bool = False  # trusted or proven news: it failed a worker since it last paid us
    asked: bool = True  # the network was asked about it in this look, and its answers are in


@dataclass(frozen=True)
class Stay:
    why: str


@dataclass(frozen=True)
class Join:
    wallet: bytes
    why: str


@dataclass(frozen=True)
class Ask:
    """Ask the network about the hub to be joined; decide again once answers are in."""

    wallet: bytes
    why: str


@dataclass(frozen=True)
class Leave:
    wallet: bytes
    why: str


@dataclass(frozen=True)
class WaitToLeave:
    """The hub is to be left, once the tasks still running on this worker end."""

    wallet: bytes
    why: str


Action = Stay | Ask | Join | Leave | WaitToLeave


@dataclass
class AskBudget:
    """How many questions out of turn (`Ask`) a worker may still send: a token
    bucket. The trust topic's peers take at most `questions_per_window` (120 an
    hour) from one asker, poll rounds (48 an hour at the defaults) included, and
    drop the rest unanswered; a join that keeps failing would otherwise ask before
    every look (360 an hour at a 10 s `check_interval`)."""

    per_hour: float = 60.0
    burst: float = 6.0
    tokens: float = 6.0
    updated: float | None = None

    def take(self, now: float) -> bool:
        """One question's token, if there is one left at `now`."""
        if self.updated is not None:
            elapsed = max(0.0, now - self.updated)  # a clock set back refills nothing
            self.tokens = min(self.burst, self.tokens + elapsed * self.per_hour / 3600.0)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def refund(self) -> None:
        """Give back a token taken for a question that could not be sent."""
        self.tokens = min(self.burst, self.tokens + 1.0)


def excluded(c: Candidate, params: PolicyParams) -> str | None:
    """Why this hub may not be joined; None when it may."""
    if c.wallet in params.forbidden:
        return "forbidden by worker.hubs_forbid"
    if params.pinned and c.wallet not in params.pinned:
        return "not in worker.hubs_pin"
    if c.status not in _CLASS and not (c.status is HubStatus.UNKNOWN and c.wallet in params.pinned):
        # a pinned hub is the operator's own word: joined even where nothing can check it
        return f"status {c.status.name.lower()}"
    if c.warned:
        return WARNED
    if c.pay_per_hour is None:
        return "no offer heard"
    if not c.open:
        return "takes no workers now"
    if c.pay_per_hour < params.min_pay_per_hour:
        return f"pays {c.pay_per_hour} per hour, below worker.min_pay_per_hour"
    return None


def rank(candidates: Iterable[Candidate], params: PolicyParams) -> list[Candidate]:
    """The joinable hubs, best first: status class, then pay, then wallet (a stable
    order, so two equal hubs are not flipped between)."""
    ok = [c for c in candidates if excluded(c, params) is None]
    return sorted(ok, key=lambda c: (_CLASS.get(c.status, 2), -(c.pay_per_hour or 0), c.wallet))


def should_leave(
    status: HubStatus, wallet: bytes, params: PolicyParams, warned: bool = False
) -> str | None:
    """Why the joined hub must be left; None to stay."""
    if status.bad:
        return f"hub turned {status.name.lower()}"
    if warned:
        return WARNED
    if wallet in params.forbidden:
        return "forbidden by worker.hubs_forbid"
    if params.pinned and wallet not in params.pinned:
        return "not in worker.hubs_pin"
    return None


def decide(
    joined: bytes | None,
    joined_status: HubStatus,
    running_tasks: int,
    candidates: Iterable[Candidate],
    params: PolicyParams,
    joined_warned: bool = False,
) -> Action:
    """The next step for a worker joined to `joined` (None: to no hub)."""
    if joined is not None:
        why = should_leave(joined_status, joined, params, joined_warned)
        if why is None:
            return Stay("joined hub is in good standing")
        if running_tasks > 0:
            return WaitToLeave(joined, f"{why}; {running_tasks} task(s) still running")
        return Leave(joined, why)
    best = rank(candidates, params)
    if not best:
        return Stay("no hub to join")
    top = best[0]
    terms = f"status {top.status.name.lower()}, pays {top.pay_per_hour} per hour"
    if not top.asked:
        return Ask(top.wallet, f"before joining it ({terms})")
    return Join(top.wallet, terms)
