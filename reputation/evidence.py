"""Evidence: what this node saw itself, as plain records the driver hands in.

A worker's evidence is its agreements with hubs (pay per hour, payout period)
and the payments it observed from each hub's wallet (read from chain events by
the driver). A consumer's evidence is how its deals went. Everything else a
node believes about a hub is hearsay (answers to trust polls), and hearsay is
weighed against this.

Paydays are `start + k * payout_period` for k = 1, 2, ...; the amount due at a
payday is the pay rate times the hours worked in the period it closes. A
payday is judged `grace` seconds after it, on cumulative sums, so a late
payment that catches up before then still matches.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from reputation.errors import RemoteTrustError

HOUR = 3600.0
# The payout periods an agreement may state: the same bounds as the hub's
# `workers.payout_period` (p2pnode/config.py imports them), so every period a hub
# may offer is one its workers' evidence can judge.
MIN_PAYOUT_PERIOD_S = 1
MAX_PAYOUT_PERIOD_S = 365 * 24 * 3600
MAX_PENDING_PAYMENTS = 256  # unjudged payments kept per agreement; more are merged


class Verdict(enum.IntEnum):
    """What evidence (or an answer) says of a hub."""

    GOOD = 1  # paid as agreed / deals went well
    BAD = 2  # missed or short payment / a deal failed


class PaydayOutcome(enum.Enum):
    MATCHED = "matched"
    SHORT = "short"
    MISSED = "missed"


@dataclass(frozen=True)
class Agreement:
    """A worker's signed terms with a hub. `end` is set when the worker leaves."""

    worker: bytes
    hub: bytes
    pay_per_hour: int  # token base units per hour worked
    payout_period_s: int
    start: float
    end: float | None = None

    def validate(self) -> None:
        if self.pay_per_hour <= 0:
            raise ValueError(f"pay_per_hour: must be > 0, got {self.pay_per_hour}")
        if not MIN_PAYOUT_PERIOD_S <= self.payout_period_s <= MAX_PAYOUT_PERIOD_S:
            raise ValueError(
                f"payout_period_s: must be in [{MIN_PAYOUT_PERIOD_S}, {MAX_PAYOUT_PERIOD_S}],"
                f" got {self.payout_period_s}"
            )
        if self.end is not None and self.end < self.start:
            raise ValueError("end: must not be before start")


@dataclass(frozen=True)
class Payment:
    """A transfer from a hub's wallet to a worker, as read from a chain event."""

    hub: bytes
    worker: bytes
    amount: int
    at: float


@dataclass(frozen=True)
class DealOutcome:
    """How a deal with a hub went at this consumer."""

    hub: bytes
    deal_id: bytes
    ran: bool
    verified: bool
    closed: bool
    at: float

    @property
    def ok(self) -> bool:
        return self.ran and self.verified and self.closed


@dataclass(frozen=True)
class PaydayResult:
    hub: bytes
    worker: bytes
    payday: float
    expected: int  # due for this period
    paid: int  # paid towards it (cumulative catch-up counts)
    outcome: PaydayOutcome


@dataclass
class AgreementLedger:
    """One agreement, the payments seen under it, and which paydays were judged."""

    agreement: Agreement
    grace_s: float
    tolerance: float
    judged: int = 0  # paydays judged so far
    settled_paid: int = 0  # payments up to the last judged payday's check
    pending: list[tuple[float, int]] = field(default_factory=list)  # (at, amount), unjudged
    payments_seen: int = 0
    total_paid: int = 0

    def end_at(self, end: float) -> None:
        a = self.agreement
        self.agreement = Agreement(a.worker, a.hub, a.pay_per_hour, a.payout_period_s, a.start, end)

    def payday(self, k: int) -> float:
        return self.agreement.start + k * self.agreement.payout_period_s

    def due_by_payday(self, k: int) -> int:
        """Cumulative amount due at payday k: rate x hours worked up to it."""
        a = self.agreement
        until = self.payday(k) if a.end is None else min(self.payday(k), a.end)
        seconds = max(0.0, until - a.start)
        return int(a.pay_per_hour * seconds / HOUR)

    def last_payday(self) -> int | None:
        """The index of the last payday owed anything (None: open-ended)."""
        a = self.agreement
        if a.end is None:
            return None
        worked = a.end - a.start
        k = int(-(-worked // a.payout_period_s))  # ceil: a partial period is paid too
        return max(k, 1) if worked > 0 else 0

    def next_check(self) -> float | None:
        last = self.last_payday()
        if last is not None and self.judged >= last:
            return None
        return self.payday(self.judged + 1) + self.grace_s

    def add_payment(self, p: Payment) -> None:
        if p.amount <= 0:
            raise RemoteTrustError(f"payment amount must be > 0, got {p.amount}")
        self.payments_seen += 1
        self.total_paid += p.amount
        self.pending.append((p.at, p.amount))
        if len(self.pending) > MAX_PENDING_PAYMENTS:
            # merge the two oldest into the later time: never earlier than it really came
            (_, a1), (t2, a2) = self.pending[0], self.pending[1]
            self.pending[:2] = [(t2, a1 + a2)]

    def judge(self, now: float) -> Iterator[PaydayResult]:
        """Judge every payday whose grace has passed by `now`."""
        while True:
            check = self.next_check()
            if check is None or check > now:
                return
            k = self.judged + 1
            came = sum(amount for at, amount in self.pending if at <= check)
            self.pending = [(at, amount) for at, amount in self.pending if at > check]
            before = self.settled_paid
            self.settled_paid += came
            due = self.due_by_payday(k)
            expected = due - self.due_by_payday(k - 1)
            self.judged = k
            if expected <= 0:
                continue
            if self.settled_paid >= due * (1.0 - self.tolerance):
                outcome = PaydayOutcome.MATCHED
            elif self.settled_paid > before:
                outcome = PaydayOutcome.SHORT
            else:
                outcome = PaydayOutcome.MISSED
            yield PaydayResult(
                self.agreement.hub, self.agreement.worker, self.payday(k), expected, came, outcome
            )

    def unpaid_hours(self, now: float) -> float:
        """Hours worked so far that no payment covers (at the agreed rate)."""
        a = self.agreement
        until = now if a.end is None else min(now, a.end)
        worked = max(0.0, until - a.start) / HOUR
        return max(0.0, worked - self.total_paid / a.pay_per_hour)


@dataclass(frozen=True)
class HubEvidence:
    """What this node can truthfully answer about a hub."""

    verdict: Verdict
    payments_seen: int
    avg_reward: int  # mean payment amount
    period_s: int  # payout period of the agreement(s)
    last_at: float  # when the latest evidence came
    bad_since: float | None  # when the first bad evidence came (None: never)


@dataclass
class _HubFacts:
    good: int = 0
    bad: int = 0
    payments: int = 0
    paid: int = 0
    period_s: int = 0
    last_at: float = 0.0
    last_good_at: float | None = None
    bad_since: float | None = None

    def note(self, good: bool, at: float) -> None:
        self.last_at = max(self.last_at, at)
        if good:
            self.good += 1
            self.last_good_at = at if self.last_good_at is None else max(self.last_good_at, at)
        else:
            self.bad += 1
            if self.bad_since is None:
                self.bad_since = at


class EvidenceBook:
    """This node's own evidence about hubs: its agreements, payments and deals."""

    def __init__(self, *, grace_s: float, tolerance: float, max_agreements: int = 4096) -> None:
        self.grace_s = grace_s
        self.tolerance = tolerance
        self.max_agreements = max_agreements
        self.ledgers: dict[tuple[bytes, bytes], AgreementLedger] = {}
        self._facts: dict[bytes, _HubFacts] = {}

    def add_agreement(self, agreement: Agreement) -> None:
        agreement.validate()
        key = (agreement.hub, agreement.worker)
        old = self.ledgers.get(key)
        if old is not None and old.next_check() is not None:
            raise ValueError("the previous agreement with this hub still has paydays to judge")
        if old is None and len(self.ledgers) >= self.max_agreements:
            raise ValueError(f"max_agreements ({self.max_agreements}) reached")
        self.ledgers[key] = AgreementLedger(agreement, self.grace_s, self.tolerance)
        self._facts.setdefault(agreement.hub, _HubFacts()).period_s = agreement.payout_period_s

    def end_agreement(self, hub: bytes, worker: bytes, at: float) -> None:
        ledger = self.ledgers.get((hub, worker))
        if ledger is not None and ledger.agreement.end is None:
            ledger.end_at(at)

    def add_payment(self, p: Payment) -> bool:
        """Record a payment; False when it is under no agreement of ours (ignored)."""
        ledger = self.ledgers.get((p.hub, p.worker))
        if ledger is None:
            return False
        ledger.add_payment(p)
        facts = self._facts[p.hub]
        facts.payments += 1
        facts.paid += p.amount
        return True

    def add_deal_outcome(self, d: DealOutcome) -> None:
        self._facts.setdefault(d.hub, _HubFacts()).note(d.ok, d.at)

    def next_deadline(self) -> float | None:
        checks = [c for c in (lg.next_check() for lg in self.ledgers.values()) if c is not None]
        return min(checks) if checks else None

    def judge(self, now: float) -> list[PaydayResult]:
        out: list[PaydayResult] = []
        for ledger in self.ledgers.values():
            for r in ledger.judge(now):
                self._facts[r.hub].note(r.outcome is PaydayOutcome.MATCHED, r.payday)
                out.append(r)
        return out

    def verdict(self, hub: bytes) -> Verdict | None:
        """BAD once anything went wrong (sticky), GOOD once something went right, else None."""
        facts = self._facts.get(hub)
        if facts is None:
            return None
        if facts.bad:
            return Verdict.BAD
        if facts.good:
            return Verdict.GOOD
        return None

    def summary(self, hub: bytes) -> HubEvidence | None:
        v = self.verdict(hub)
        if v is None:
            return None
        f = self._facts[hub]
        avg = f.paid // f.payments if f.payments else 0
        return HubEvidence(v, f.payments, avg, f.period_s, f.last_at, f.bad_since)

    def facts_table(self) -> dict[bytes, dict[str, float | int | None]]:
        """Per hub, the tallies behind its verdict: what a store keeps besides the ledgers."""
        return {h: dataclasses.asdict(f) for h, f in self._facts.items()}

    def load(
        self,
        ledgers: list[AgreementLedger],
        facts: Mapping[bytes, Mapping[str, float | int | None]],
    ) -> None:
        """Replace the book with stored ledgers and tallies (a restart)."""
        self.ledgers = {(lg.agreement.hub, lg.agreement.worker): lg for lg in ledgers}
        self._facts = {h: _HubFacts(**dict(f)) for h, f in facts.items()}  # type: ignore[arg-type]

    def last_good_at(self, hub: bytes) -> float | None:
        facts = self._facts.get(hub)
        return facts.last_good_at if facts is not None else None

    def bad_since(self, hub: bytes) -> float | None:
        facts = self._facts.get(hub)
        return facts.bad_since if facts is not None else None

    def hubs_with_evidence(self) -> list[bytes]:
        return [h for h in self._facts if self.verdict(h) is not None]

    def unpaid_hours(self, now: float, hub: bytes | None = None) -> float:
        return sum(
            lg.unpaid_hours(now) for (h, _), lg in self.ledgers.items() if hub is None or h == hub
        )
