"""Hub status per node: every allowed transition, in one table, with its reason.

Why one table (as h11's _state.py does for HTTP): the rules about who may move
a hub where are the security of the scheme, so they are read in one place and
nothing else mutates a status. A transition is named by its reason; the reason
fixes the target status, and the table lists the statuses it may start from.

    unknown ──announced, chain ok──▶ unverified ──positive answers──▶ checked
                                        │  ╲                              │
                                        │   ╲──payment matched──▶ safe ◀──┘
                                        ▼                           │
        missed / short payment, chain Suspected, negative answers ▶ suspected
        chain Punished, failed chain check (from anywhere) ───────▶ fake

Suspicion that came from hearsay alone (NEGATIVE_ANSWERS) can be lifted by
positive answers or our own good evidence; suspicion from our own evidence or
the chain cannot be lifted by hearsay (only by the chain's rehabilitation).
`fake` is final.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from reputation.errors import LocalTransitionError

MAX_HISTORY = 64  # transitions kept per hub; liars flipping a status cannot grow it


class HubStatus(enum.IntEnum):
    UNKNOWN = 0
    UNVERIFIED = 1  # announced and the chain check passed: "not confirmed"
    CHECKED = 2  # enough trust-weighted positive answers
    SAFE = 3  # a payment (or a deal) of ours matched the agreement
    SUSPECTED = 4
    FAKE = 5

    @property
    def good(self) -> bool:
        return self in (HubStatus.CHECKED, HubStatus.SAFE)

    @property
    def bad(self) -> bool:
        return self in (HubStatus.SUSPECTED, HubStatus.FAKE)


class Reason(enum.Enum):
    ANNOUNCED_CHAIN_OK = "announced, on-chain check passed"
    POSITIVE_ANSWERS = "trust-weighted positive answers"
    PAYMENT_MATCHED = "a payment matched the agreement"
    DEAL_VERIFIED = "a deal ran and its results verified"
    PAYMENT_MISSED = "a payment due was not made"
    PAYMENT_SHORT = "a payment was short of the agreement"
    DEAL_FAILED = "a deal failed at this consumer"
    CHAIN_SUSPECTED = "on-chain status Suspected"
    NEGATIVE_ANSWERS = "negative answers outweigh positive"
    CHAIN_REHABILITATED = "on-chain status back to Registered"
    CHAIN_PUNISHED = "on-chain status Punished"
    CHAIN_CHECK_FAILED = "on-chain check failed"


S = HubStatus
_LIVE = frozenset({S.UNVERIFIED, S.CHECKED, S.SAFE})
_NOT_FAKE = frozenset(set(S) - {S.FAKE})

# reason -> (target status, statuses it may start from)
TRANSITIONS: dict[Reason, tuple[HubStatus, frozenset[HubStatus]]] = {
    Reason.ANNOUNCED_CHAIN_OK: (S.UNVERIFIED, frozenset({S.UNKNOWN})),
    Reason.POSITIVE_ANSWERS: (S.CHECKED, frozenset({S.UNVERIFIED, S.SUSPECTED})),
    Reason.PAYMENT_MATCHED: (S.SAFE, frozenset({S.UNVERIFIED, S.CHECKED, S.SUSPECTED})),
    Reason.DEAL_VERIFIED: (S.SAFE, frozenset({S.UNVERIFIED, S.CHECKED, S.SUSPECTED})),
    Reason.PAYMENT_MISSED: (S.SUSPECTED, _LIVE | {S.SUSPECTED}),
    Reason.PAYMENT_SHORT: (S.SUSPECTED, _LIVE | {S.SUSPECTED}),
    Reason.DEAL_FAILED: (S.SUSPECTED, _LIVE | {S.SUSPECTED}),
    Reason.CHAIN_SUSPECTED: (S.SUSPECTED, _LIVE | {S.SUSPECTED}),
    Reason.NEGATIVE_ANSWERS: (S.SUSPECTED, _LIVE),
    Reason.CHAIN_REHABILITATED: (S.UNVERIFIED, frozenset({S.SUSPECTED})),
    Reason.CHAIN_PUNISHED: (S.FAKE, _NOT_FAKE),
    Reason.CHAIN_CHECK_FAILED: (S.FAKE, _NOT_FAKE),
}
# Leaving SUSPECTED by these needs the suspicion to have been hearsay only.
LIFTS_HEARSAY_ONLY = frozenset(
    {Reason.POSITIVE_ANSWERS, Reason.PAYMENT_MATCHED, Reason.DEAL_VERIFIED}
)


@dataclass(frozen=True)
class Transition:
    at: float
    source: HubStatus
    target: HubStatus
    reason: Reason
    detail: str = ""


@dataclass
class HubRecord:
    """One hub as this node sees it: its status and why it got there."""

    hub: bytes
    status: HubStatus = HubStatus.UNKNOWN
    history: deque[Transition] = field(default_factory=lambda: deque(maxlen=MAX_HISTORY))
    suspicion: Reason | None = None  # why it is SUSPECTED (None otherwise)

    @property
    def reason(self) -> Reason | None:
        return self.history[-1].reason if self.history else None

    def allows(self, reason: Reason) -> bool:
        target, sources = TRANSITIONS[reason]
        if self.status not in sources:
            return False
        if self.status is HubStatus.SUSPECTED:
            if reason in LIFTS_HEARSAY_ONLY and self.suspicion is not Reason.NEGATIVE_ANSWERS:
                return False
            if target is HubStatus.SUSPECTED:
                # already suspected: only a stronger (non-hearsay) reason replaces hearsay
                return self.suspicion is Reason.NEGATIVE_ANSWERS
        return True

    def move(self, reason: Reason, at: float, detail: str = "") -> Transition:
        """Apply the transition `reason` names; LocalTransitionError if the table forbids it."""
        if not self.allows(reason):
            raise LocalTransitionError(
                f"hub {self.hub.hex()}: {reason.name} not allowed from {self.status.name}"
                + (f" (suspected for {self.suspicion.name})" if self.suspicion else "")
            )
        target = TRANSITIONS[reason][0]
        t = Transition(at, self.status, target, reason, detail)
        self.status = target
        self.suspicion = reason if target is HubStatus.SUSPECTED else None
        self.history.append(t)
        return t
