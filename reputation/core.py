"""The reputation core one node runs: statuses, evidence, polling, weighting.

Sans-IO, in the shape of the other cores: the driver hands in what happened
(hub announcements and chain checks, agreements, payments read from chain
events, deal outcomes, frames from the trust topic) with the time `now`, calls
`on_timer(now)` at `next_deadline()`, publishes what `drain()` returns on the
trust topic, and reads status changes from `drain_events()`. The daemon
drives it with the real clock and libp2p; the simulator
(simulations/scenarios/trust.py) with a virtual clock, calling the layer
below the wire (`make_question`, `answer_for`, `accept_answer`) so that it
does not spend its time on signatures; everything above that layer is the
decode/verify/rate-limit/dedupe path tested in tests/reputation/.

How hearsay is weighed (docs/reputation.md has the full account):
weight(answerer) = 0 if our own evidence caught it lying; its global trust if
we never tested it; else local_share x local trust + (1 - local_share) x
global trust (both in uniform units: 1.0 = average).
A hub turns CHECKED when positive weight reaches `checked_weight` from at
least `min_positive_answers` answerers with weight and exceeds negative weight
x `outweigh_ratio`; SUSPECTED when negative weight reaches `suspect_weight`
and exceeds positive x ratio. Our own evidence outranks all hearsay: a missed
or short payment makes the hub SUSPECTED for good, and once we have evidence
on a hub, answers about it test the answerers instead of moving the status.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from gossip.eip712 import SigningDomain
from gossip.rng import RandomSource
from reputation import messages
from reputation.agreement import AgreementProof
from reputation.errors import PeerRateLimited, TrustSignatureError, UnsolicitedAnswer
from reputation.evidence import (
    Agreement,
    DealOutcome,
    EvidenceBook,
    PaydayOutcome,
    Payment,
    Verdict,
)
from reputation.messages import KeySigner, TrustAnswer, TrustMessage, TrustQuestion, TrustRow
from reputation.params import PollParams, ReputationParams
from reputation.state import HubRecord, HubStatus, Reason, Transition
from reputation.trust import LocalTrust


class ChainState(enum.Enum):
    """A hub wallet's state as the chain reports it (contracts' HubWallet)."""

    REGISTERED = "registered"
    SUSPECTED = "suspected"
    PUNISHED = "punished"


@dataclass(frozen=True)
class StatusChanged:
    hub: bytes
    transition: Transition


@dataclass
class StoredAnswer:
    hub: bytes
    answerer: bytes
    verdict: Verdict
    payments_seen: int
    avg_reward: int
    period_s: int
    last_seen: float  # the answerer's latest evidence (its claim)
    at: float  # when we stored it
    tested: bool  # already checked against our own evidence
    # a "BAD" that came with a checked proof of a first payday the hub missed: the
    # start of the answerer's agreement (`ReputationCore.check_proof`)
    proof_start: float | None = None


@dataclass
class _Outstanding:
    hub: bytes
    valid_until: float
    answers: int = 0
    untrusted: int = 0  # of them from answerers we give no weight
    bad: int = 0  # of them BAD: each verdict has its own quota

    def room_for(self, a: TrustAnswer, untrusted: bool, p: PollParams) -> bool:
        """Counted in if there is room: `max_answers_per_question` answers of each
        verdict, so that a crowd of old "it paid me" answers from a hub's past
        workers cannot keep out the one fresh "it stopped paying me" (nor a crowd
        of slander out the answers that praise), and of all of them at most
        `max_untrusted_answers_per_question` from answerers we give no weight."""
        bad = a.verdict is Verdict.BAD
        side = self.bad if bad else self.answers - self.bad
        if side >= p.max_answers_per_question or (
            untrusted and self.untrusted >= p.max_untrusted_answers_per_question
        ):
            return False
        self.answers += 1
        self.untrusted += untrusted
        self.bad += bad
        return True


@dataclass
class Tally:
    positive: float = 0.0
    negative: float = 0.0
    positive_answerers: int = 0  # with weight > 0
    votes_good: int = 0  # unweighted, for the plain-majority comparison
    votes_bad: int = 0


_COUNTERS = (
    "questions_sent",
    "questions_asked",
    "questions_received",
    "answers_sent",
    "answers_received",
    "answers_accepted",
    "dropped_duplicate",
    "dropped_rate_limited",
    "dropped_unsolicited",
    "dropped_table_full",
    "dropped_expired",
    "liars_caught",
    "alerts_sent",
    "alerts_accepted",
    "proofs_sent",
    "proofs_received",
    "proofs_rejected",
    "proofs_unowned",
    "proofs_held",
    "rows_sent",
    "rows_received",
    "rows_accepted",
    "rows_stale",
    "rows_dropped_full",
)
MAX_ALERTS_QUEUED = 64  # alerts made below the wire (no signer) until the driver takes them
# A weight "reaches" a threshold within this relative margin. Weights are floats: the
# power iteration hands ten peers of equal trust 0.9999999999999999 units each, and
# ten answers of 0.1 add up to 0.9999999999999999; one average peer's word (1.0 =
# `suspect_weight`) must not fall short of itself by a rounding error. Global trust
# is only iterated to 1e-9 anyway, so nothing finer than this is information.
WEIGHT_RTOL = 1e-9


def reaches(weight: float, threshold: float) -> bool:
    """`weight >= threshold`, up to float rounding (WEIGHT_RTOL)."""
    return weight >= threshold * (1.0 - WEIGHT_RTOL)


class ReputationCore:
    def __init__(
        self,
        params: ReputationParams,
        domain: SigningDomain,
        rng: RandomSource,
        *,
        signer: KeySigner | None = None,
        address: bytes | None = None,
    ) -> None:
        params.validate()
        if signer is None and address is None:
            raise ValueError("a signer (daemon) or an address (simulator) is needed")
        self.params = params
        self.domain = domain
        self.rng = rng
        self.signer = signer
        self.address: bytes = signer.address if signer is not None else address  # type: ignore[assignment]
        st = params.status
        self.evidence = EvidenceBook(grace_s=st.payment_grace_s, tolerance=st.payment_tolerance)
        self.local = LocalTrust(params.trust)
        self._share = params.trust.local_share
        self._wcache: dict[bytes, float] = {}
        self.payees: Mapping[bytes, Mapping[bytes, int]] | None = None
        self.last_paid: Mapping[bytes, Mapping[bytes, float]] | None = None
        self.paid_since: Mapping[bytes, float] | None = None
        self.owners: Mapping[bytes, bytes] = {}
        # our own agreements as their hubs countersigned them: (hub, worker) -> proof
        self.own_proofs: dict[tuple[bytes, bytes], AgreementProof] = {}
        self._local_scale: float | None = None
        self.global_units: Mapping[bytes, float] = {}
        self.records: dict[bytes, HubRecord] = {}
        self.answers: dict[bytes, dict[bytes, StoredAnswer]] = {}
        self._untrusted: dict[bytes, dict[bytes, None]] = {}  # per hub, FIFO
        self.last_polled: dict[bytes, float] = {}
        self.counters: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self._outstanding: OrderedDict[bytes, _Outstanding] = OrderedDict()
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._rate: OrderedDict[bytes, list[float]] = OrderedDict()  # peer -> [start, q, a, r]
        # other nodes' local trust rows, newest per truster (global trust reads them)
        self.rows: dict[bytes, TrustRow] = {}
        self._row_seq = 0
        self._out: list[bytes] = []
        self._alerts: list[TrustAnswer] = []
        self._events: list[StatusChanged] = []
        self._nonce = 0

    # -- what the driver reads ------------------------------------------------------------

    def status(self, hub: bytes) -> HubStatus:
        rec = self.records.get(hub)
        return rec.status if rec is not None else HubStatus.UNKNOWN

    def record(self, hub: bytes) -> HubRecord:
        rec = self.records.get(hub)
        if rec is None:
            rec = self.records[hub] = HubRecord(hub)
        return rec

    def drain(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def drain_events(self) -> list[StatusChanged]:
        out, self._events = self._events, []
        return out

    def next_deadline(self) -> float | None:
        deadlines = [self.evidence.next_deadline()]
        if self._outstanding:
            deadlines.append(next(iter(self._outstanding.values())).valid_until)
        present = [d for d in deadlines if d is not None]
        return min(present) if present else None

    def weight(self, answerer: bytes) -> float:
        """How much an answer from `answerer` counts (uniform-trust units).

        0 if our own evidence caught it lying; global trust alone if we never tested
        it (what others think stands in for what we could not check); otherwise the
        `local_share` mix of our local trust and global trust.

        Weights are cached: an entry is dropped when that answerer is tested again,
        and all of them when global trust is replaced. The local unit (mean local
        trust) is fixed at that point too, so between trust updates a new test of
        one answerer does not silently re-weigh all the others."""
        w = self._wcache.get(answerer)
        if w is not None:
            return w
        local = self.local.lookup(answerer)
        g = self.global_units.get(answerer, 0.0)
        if local is None:
            w = g
        elif local < 0:
            w = 0.0
        else:
            if self._local_scale is None:
                self._local_scale = self.local.scale()
            share = self._share
            w = share * local * self._local_scale + (1.0 - share) * g
        self._wcache[answerer] = w
        return w

    def set_chain_payees(self, payees: Mapping[bytes, Mapping[bytes, int]]) -> None:
        """Who each hub's wallet has paid, and how often (hub -> address -> transfers),
        read by the driver from the wallets' transfer events (kept, not copied). A hub
        not in it has not been read yet: answers about it are tested without it.

        With it, an answer earns local trust only from an answerer the hub really
        paid, and "it pays me" from one it never paid is a lie: an identity with
        no agreement cannot buy trust by guessing right."""
        self.payees = payees

    def set_chain_last_paid(
        self,
        last_paid: Mapping[bytes, Mapping[bytes, float]],
        since: Mapping[bytes, float] | None = None,
    ) -> None:
        """When each hub's wallet last paid each address (hub -> address -> time), read by
        the driver from the wallets' transfer events (kept, not copied); a hub not in it
        has not been read yet. It is what a proof of a missed payday is checked against
        (`check_proof`). `since`: per hub, the time from which its events were read (a
        driver that reads a bounded look-back knows nothing before it); None: from the
        beginning."""
        self.last_paid = last_paid
        self.paid_since = since

    def set_hub_owners(self, owners: Mapping[bytes, bytes]) -> None:
        """Each hub wallet's owner account, as its announcement named it and the chain
        check confirmed (kept, not copied): whose countersignature a proof about that
        wallet must carry."""
        self.owners = owners

    def set_global_trust(self, units: Mapping[bytes, float]) -> None:
        """Global trust in uniform units (GlobalTrust.units()); the driver recomputes it
        and hands in a new mapping each time (it is kept, not copied)."""
        self.global_units = units
        self._wcache.clear()
        self._local_scale = None

    # -- chain and evidence inputs --------------------------------------------------------

    def _move(self, hub: bytes, reason: Reason, now: float, detail: str = "") -> bool:
        rec = self.record(hub)
        if not rec.allows(reason):
            return False
        self._events.append(StatusChanged(hub, rec.move(reason, now, detail)))
        return True

    def hub_announced(self, hub: bytes, chain_ok: bool, now: float, detail: str = "") -> None:
        """A hub announcement arrived and the on-chain check ran (gossip/ and contracts/)."""
        if chain_ok:
            self._move(hub, Reason.ANNOUNCED_CHAIN_OK, now, detail)
        else:
            self._move(hub, Reason.CHAIN_CHECK_FAILED, now, detail)

    def chain_state(self, hub: bytes, state: ChainState, now: float) -> None:
        if state is ChainState.PUNISHED:
            self._move(hub, Reason.CHAIN_PUNISHED, now)
        elif state is ChainState.SUSPECTED:
            self._move(hub, Reason.CHAIN_SUSPECTED, now)
        elif (
            self.status(hub) is HubStatus.SUSPECTED
            and self.record(hub).suspicion is Reason.CHAIN_SUSPECTED
        ):
            self._move(hub, Reason.CHAIN_REHABILITATED, now)

    def add_agreement(self, agreement: Agreement, proof: AgreementProof | None = None) -> None:
        """One of our agreements; `proof`: as its hub countersigned it, sent with our
        "BAD" if the hub misses the first payday (a proof that does not describe these
        terms is not kept)."""
        self.evidence.add_agreement(agreement)
        key = (agreement.hub, agreement.worker)
        if proof is not None and proof.agreement(agreement.worker, agreement.hub) == agreement:
            self.own_proofs[key] = proof
            while len(self.own_proofs) > self.evidence.max_agreements:
                self.own_proofs.pop(next(iter(self.own_proofs)))
        else:
            self.own_proofs.pop(key, None)

    def end_agreement(self, hub: bytes, worker: bytes, now: float) -> None:
        self.evidence.end_agreement(hub, worker, now)

    def payment_observed(self, payment: Payment) -> bool:
        """A transfer from a hub wallet read from chain events; judged at the payday."""
        return self.evidence.add_payment(payment)

    def deal_outcome(self, outcome: DealOutcome, now: float) -> None:
        self.evidence.add_deal_outcome(outcome)
        if outcome.ok:
            self._move(outcome.hub, Reason.DEAL_VERIFIED, now, f"deal 0x{outcome.deal_id.hex()}")
        else:
            self._move(outcome.hub, Reason.DEAL_FAILED, now, f"deal 0x{outcome.deal_id.hex()}")
        self._evidence_changed(outcome.hub)

    def on_timer(self, now: float) -> None:
        results = self.evidence.judge(now)
        for r in results:
            detail = f"payday {r.payday:.0f}: expected {r.expected}, paid {r.paid}"
            if r.outcome is PaydayOutcome.MATCHED:
                self._move(r.hub, Reason.PAYMENT_MATCHED, now, detail)
            elif r.outcome is PaydayOutcome.SHORT:
                self._move(r.hub, Reason.PAYMENT_SHORT, now, detail)
            else:
                self._move(r.hub, Reason.PAYMENT_MISSED, now, detail)
            self._evidence_changed(r.hub)
        failed: dict[bytes, float] = {}
        for r in results:
            if r.outcome is not PaydayOutcome.MATCHED:
                failed[r.hub] = min(r.payday, failed.get(r.hub, r.payday))
        for hub, payday in failed.items():
            # the first failed payday of this stretch: later ones repeat the same news
            if self.evidence.bad_since(hub) == payday:
                self._alert(hub, now)
        while self._outstanding:
            qid, out = next(iter(self._outstanding.items()))
            if out.valid_until > now:
                break
            del self._outstanding[qid]

    def _evidence_changed(self, hub: bytes) -> None:
        """Test the answers about `hub` that our earlier evidence could not decide."""
        if self.evidence.verdict(hub) is None:
            return
        for a in self.answers.get(hub, {}).values():
            if not a.tested:
                self._test(a)

    def _test(self, a: StoredAnswer) -> None:
        """Does `a` agree with our own evidence about its hub? Time matters: a hub that
        paid us until t and then stopped makes "good" true before t and "bad" after.

        - ours BAD since t: BAD agrees; GOOD about evidence from t on is a lie; GOOD
          about older evidence is consistent (the hub did pay then): not a test.
        - ours GOOD, last at t: GOOD agrees; BAD about evidence up to t is a lie (the
          hub paid us after that); BAD about later evidence waits for our next payday.
        """
        own = self.evidence.verdict(a.hub)
        if own is None:
            return
        # a hub missing from the payees is one whose events were not read yet: unknown,
        # not "paid nobody" (the driver adds a hub once it has read its wallet)
        hub_payees = None if self.payees is None else self.payees.get(a.hub)
        paid = None if hub_payees is None else hub_payees.get(a.answerer, 0)
        if own is Verdict.BAD:
            since = self.evidence.bad_since(a.hub) or 0.0
            if a.verdict is Verdict.GOOD and a.last_seen < since:
                a.tested = True
                return
            agreed = a.verdict is Verdict.BAD
        else:
            last_good = self.evidence.last_good_at(a.hub) or 0.0
            if a.verdict is Verdict.BAD and a.last_seen > last_good:
                return  # not decidable yet
            agreed = a.verdict is Verdict.GOOD
        if paid is not None:
            if a.verdict is Verdict.GOOD and paid == 0:
                agreed = False  # "it pays me", and the chain shows it never paid them
            elif agreed and paid == 0:
                a.tested = True
                return  # right, but with nothing at stake: no credit (a guess costs nothing)
        a.tested = True
        was = self.local.contradicted(a.answerer)
        self.local.record(a.answerer, agreed)
        self._wcache.pop(a.answerer, None)
        if self._local_scale == 0.0:
            self._local_scale = None  # the first peer we trust sets the unit
        if not agreed and not was and self.local.contradicted(a.answerer):
            self.counters["liars_caught"] += 1

    # -- polling: our questions, our answers ----------------------------------------------

    def hubs_to_poll(self, now: float) -> list[bytes]:
        """Up to questions_per_round hubs: those we work for first (they calibrate who
        tells the truth), then the ones we heard about longest ago. FAKE hubs and hubs
        never announced are not asked about."""
        limit = self.params.poll.questions_per_round
        own = [
            lg.agreement.hub
            for lg in self.evidence.ledgers.values()
            if lg.agreement.end is None and lg.agreement.hub in self.records
        ]
        chosen: dict[bytes, None] = dict.fromkeys(own[:limit])
        rest = [
            h
            for h, rec in self.records.items()
            if h not in chosen and rec.status not in (HubStatus.UNKNOWN, HubStatus.FAKE)
        ]
        # undecided hubs first (UNVERIFIED, or suspected on hearsay), then the stalest
        rest.sort(
            key=lambda h: (
                self.records[h].status is not HubStatus.UNVERIFIED,
                self.last_polled.get(h, -1.0),
            )
        )
        for h in rest[: limit - len(chosen)]:
            chosen[h] = None
        return list(chosen)

    def make_question(self, hub: bytes, now: float) -> tuple[TrustQuestion, bytes]:
        """Our question about `hub` and its id; registered as outstanding."""
        self._nonce += 1
        start = int(now)
        q = TrustQuestion(
            self.address, hub, self._nonce, start, start + self.params.poll.question_ttl_s
        )
        if self.signer is not None:
            q = messages.sign(q, self.domain, self.signer)  # type: ignore[assignment]
        qid = q.question_id(self.domain)
        if len(self._outstanding) >= self.params.poll.max_outstanding:
            self._outstanding.popitem(last=False)
        self._outstanding[qid] = _Outstanding(hub, float(q.valid_until))
        self.last_polled[hub] = now
        self.counters["questions_sent"] += 1
        return q, qid

    def poll(self, now: float) -> list[tuple[TrustQuestion, bytes]]:
        """One poll round: questions made, signed and queued for `drain()`."""
        out = [self.make_question(h, now) for h in self.hubs_to_poll(now)]
        if self.signer is not None:
            self._out.extend(messages.encode(q) for q, _ in out)
        return out

    def ask(self, hub: bytes, now: float) -> tuple[TrustQuestion, bytes]:
        """One question about `hub`, out of turn (queued for `drain()` like a poll's):
        what a worker asks before it joins a hub, so that a warning about it (a
        worker it stiffed, with the proof) reaches us before we join, not with the
        next poll round that happens to pick it."""
        q, qid = self.make_question(hub, now)
        if self.signer is not None:
            self._out.append(messages.encode(q))
        self.counters["questions_asked"] += 1
        return q, qid

    # -- alerts: a missed payday told to the hub's other workers at once -------------------

    def _alert(self, hub: bytes, now: float) -> None:
        """Our BAD answer about `hub`, unasked (question ALERT_QUESTION): its other
        workers keep working unpaid until their own paydays or until they next ask
        about it; this tells them now."""
        a = self.answer_for(hub, messages.ALERT_QUESTION, now)
        if a is None or a.verdict is not Verdict.BAD:
            return
        self.counters["alerts_sent"] += 1
        if self.signer is not None:
            self._out.append(messages.encode(a))
            return
        if len(self._alerts) >= MAX_ALERTS_QUEUED:
            del self._alerts[0]
        self._alerts.append(a)

    def drain_alerts(self) -> list[TrustAnswer]:
        """Alerts made below the wire (no signer: the simulator carries them)."""
        out, self._alerts = self._alerts, []
        return out

    def works_for(self, hub: bytes) -> bool:
        return any(
            lg.agreement.hub == hub and lg.agreement.end is None
            for lg in self.evidence.ledgers.values()
        )

    def accept_alert(self, a: TrustAnswer, now: float, proof: Agreement | None = None) -> bool:
        """An alert (an unasked BAD answer) is kept only about a hub we work for and
        only from an answerer we give weight, or with a proof that checks
        (`check_proof`): then it is an answer like any other, read by `warning` and
        the tally. Anything else is dropped without blame (an alert is published to
        everyone; most nodes do not work for that hub). Untrusted peers cannot push
        anything this way without a hub's agreement and its missed payday, and a
        trusted liar reaches only what its answers to our own questions about that
        hub reach anyway."""
        if (
            a.question != messages.ALERT_QUESTION
            or a.verdict is not Verdict.BAD
            or a.answerer == self.address
            or not self.works_for(a.hub)
        ):
            return False
        if self.weight(a.answerer) <= 0 and not self.check_proof(a, proof, now):
            return False
        self.counters["alerts_accepted"] += 1
        self.accept_answer(a, now, proof=proof)
        return True

    # -- proofs: a missed first payday anyone can check on chain ----------------------------

    def proof_for(self, hub: bytes) -> Agreement | None:
        """Our agreement with `hub` whose first payday passed with nothing paid by it,
        if any: sent with our "BAD" about it, so that peers who give us no weight
        (we are new; nobody tested us) can check the claim on chain themselves."""
        best: Agreement | None = None
        for lg in self.evidence.ledgers.values():
            ag = lg.agreement
            if ag.hub != hub or lg.judged < 1 or lg.total_paid > 0 or lg.due_by_payday(1) <= 0:
                continue
            if best is None or ag.start > best.start:
                best = ag
        return best

    def check_proof(self, a: TrustAnswer, proof: Agreement | None, now: float) -> bool:
        """Does `proof` show what the "BAD" answer `a` claims, with no trust needed? It
        must be the answerer's agreement with that hub (on the wire it carries the
        hub's countersignature, checked before this), its first payday and the
        payment grace must have passed, and the hub's wallet, as read from the chain
        (`set_chain_last_paid`), must have paid the answerer nothing since the
        agreement began. A hub whose wallet was not read yet proves nothing."""
        if (
            proof is None
            or a.verdict is not Verdict.BAD
            or proof.worker != a.answerer
            or proof.hub != a.hub
            or self.last_paid is None
        ):
            return False
        paid = self.last_paid.get(a.hub)
        if paid is None:
            return False
        if self.paid_since is not None and proof.start < self.paid_since.get(a.hub, float("inf")):
            return False  # payments before our look-back are unknown to us
        first = proof.start + proof.payout_period_s + self.params.status.payment_grace_s
        last = paid.get(a.answerer)
        return first <= now and (last is None or last < proof.start)

    def wire_proof(self, a: TrustAnswer) -> Agreement | None:
        """The agreement an answer's proof shows, if its countersignature is the
        owner's we know for that wallet (`set_hub_owners`); None otherwise. The
        countersignature itself was checked on arrival (`_check_countersignature`)."""
        p = a.proof
        if p is None:
            return None
        if self.owners.get(a.hub) != p.owner:
            self.counters["proofs_unowned"] += 1
            return None
        return p.agreement(a.answerer, a.hub)

    def _check_countersignature(self, msg: TrustMessage) -> None:
        """TrustSignatureError (the sender's fault) for a proof its hub owner did not sign:
        such a frame is neither stored nor forwarded."""
        if isinstance(msg, TrustAnswer) and msg.proof is not None:
            self.counters["proofs_received"] += 1
            if not msg.proof.countersigned(self.domain, msg.answerer, msg.hub):
                self.counters["proofs_rejected"] += 1
                raise TrustSignatureError(
                    "answer: its proof is not countersigned by the hub owner it names"
                )

    def proven_answers(self, hub: bytes) -> int:
        """How many answers about `hub` carry a proof that still holds."""
        return sum(1 for a in self.answers.get(hub, {}).values() if self._proven(a))

    def _proven(self, a: StoredAnswer) -> bool:
        """A stored proof still holds: the hub has paid the answerer nothing since."""
        if a.proof_start is None or self.last_paid is None:
            return False
        last = self.last_paid.get(a.hub, {}).get(a.answerer)
        return last is None or last < a.proof_start

    def answer_for(self, hub: bytes, question_id: bytes, now: float) -> TrustAnswer | None:
        """Our truthful answer about `hub`, or None where we have no evidence."""
        ev = self.evidence.summary(hub)
        if ev is None:
            return None
        start = int(now)
        a = TrustAnswer(
            self.address,
            hub,
            question_id,
            ev.verdict,
            min(ev.payments_seen, messages.UINT32_MAX),
            ev.avg_reward,
            min(ev.period_s, messages.MAX_PERIOD_S),
            int(ev.last_at),
            start,
            start + self.params.poll.question_ttl_s,
        )
        if self.signer is not None:
            a = messages.sign(a, self.domain, self.signer)  # type: ignore[assignment]
            if ev.verdict is Verdict.BAD:
                a = self._with_proof(a)
        return a

    def _with_proof(self, a: TrustAnswer) -> TrustAnswer:
        """`a` with the countersigned agreement that proves a missed first payday, if we
        hold one (`proof_for`): peers who give us no weight can check it themselves."""
        ag = self.proof_for(a.hub)
        if ag is None:
            return a
        p = self.own_proofs.get((a.hub, ag.worker))
        if p is None or float(p.at) != ag.start:
            return a
        self.counters["proofs_sent"] += 1
        return dataclasses.replace(a, proof=p)

    # -- local trust rows: what global trust is computed from ---------------------------

    def make_row(self, now: float, claims: int = messages.MAX_ROW_ENTRIES) -> TrustRow | None:
        """Our local trust row (the peers our evidence found most honest, weights
        relative to the largest) and our own verdicts on hubs (the freshest first),
        signed; None when we have neither, or no key. Receivers weigh the row by how
        far our verdicts match their own (EigenTrust++), and a peer we trust passes
        that trust on to whom we trust."""
        if self.signer is None:
            return None
        row = sorted(self.local.row().items(), key=lambda kv: (-kv[1], kv[0]))
        row = row[: messages.MAX_ROW_ENTRIES]
        ev = self.evidence
        hubs = sorted(
            ((h, v) for h in ev.hubs_with_evidence() if (v := ev.verdict(h)) is not None),
            key=lambda hv: (-(s.last_at if (s := ev.summary(hv[0])) else 0.0), hv[0]),
        )[:claims]
        if not row and not hubs:
            return None
        top = row[0][1] if row else 1.0
        weights = tuple(max(1, min(messages.UINT16_MAX, round(v / top * 65535))) for _, v in row)
        start = int(now)
        self._row_seq = max(self._row_seq + 1, start)
        r = TrustRow(
            self.address,
            self._row_seq,
            tuple(p for p, _ in row),
            weights,
            tuple(h for h, _ in hubs),
            tuple(v for _, v in hubs),
            start,
            start + self.params.poll.question_ttl_s,
        )
        signed: TrustRow = messages.sign(r, self.domain, self.signer)  # type: ignore[assignment]
        return signed

    def publish_row(self, now: float) -> TrustRow | None:
        """Queue our row for `drain()` (the driver calls it every row interval)."""
        row = self.make_row(now)
        if row is not None:
            self._out.append(messages.encode(row))
            self.counters["rows_sent"] += 1
        return row

    def accept_row(self, row: TrustRow) -> bool:
        """Keep `row` (checked: `admit` or `receive`) as its truster's newest. A full
        table keeps the rows of the peers we trust most: a flood of rows from
        identities nobody trusts replaces none (their rows would carry no trust in
        the iteration anyway)."""
        self.counters["rows_received"] += 1
        if row.truster == self.address:
            return False
        old = self.rows.get(row.truster)
        if old is not None:
            if old.seq >= row.seq:
                self.counters["rows_stale"] += 1
                return False
        elif len(self.rows) >= self.params.poll.max_rows:
            units = self.global_units
            low = min(self.rows, key=lambda t: (units.get(t, 0.0), self.rows[t].seq))
            if units.get(row.truster, 0.0) <= units.get(low, 0.0):
                self.counters["rows_dropped_full"] += 1
                return False
            del self.rows[low]
        self.rows[row.truster] = row
        self.counters["rows_accepted"] += 1
        return True

    def own_claims(self) -> dict[bytes, Verdict]:
        """Our verdict on each hub we hold evidence about: the reference a row's
        claims are compared with (credibility)."""
        ev = self.evidence
        return {h: v for h in ev.hubs_with_evidence() if (v := ev.verdict(h)) is not None}

    # -- the wire ------------------------------------------------------------------------

    def receive(self, peer: bytes, frame: bytes, now: float) -> None:
        """One frame from the trust topic. RemoteTrustError (the peer's fault) for bad
        input: the driver counts it and penalises the peer; nothing was stored."""
        msg = messages.decode(frame)
        skew = self.params.poll.max_clock_skew_s
        if not msg.valid_from - skew <= now <= msg.valid_until:
            self.counters["dropped_expired"] += 1
            return
        if isinstance(msg, TrustRow):
            key = msg.digest(self.domain)
            if key in self._seen:
                self.counters["dropped_duplicate"] += 1
                return
            messages.verify(msg, self.domain)
            self._charge(peer, now, question=False, row=True)
            self._mark_seen(key)
            self.accept_row(msg)
            return
        if isinstance(msg, TrustQuestion):
            self.counters["questions_received"] += 1
            key = msg.digest(self.domain)
            if key in self._seen:
                self.counters["dropped_duplicate"] += 1
                return
            messages.verify(msg, self.domain)
            self._charge(peer, now, question=True)
            self._mark_seen(key)
            if msg.asker == self.address:
                return
            ans = self.answer_for(msg.hub, key, now)
            if ans is not None and self.signer is not None:
                self._out.append(messages.encode(ans))
                self.counters["answers_sent"] += 1
            return
        self.counters["answers_received"] += 1
        key = messages.seen_key(msg, self.domain)
        if key in self._seen:
            self.counters["dropped_duplicate"] += 1
            return
        if msg.question == messages.ALERT_QUESTION:
            messages.verify(msg, self.domain)
            self._check_countersignature(msg)
            self._charge(peer, now, question=False)
            self._mark_seen(key)
            if not self.accept_alert(msg, now, self.wire_proof(msg)):
                self.counters["dropped_unsolicited"] += 1
            return
        out = self._outstanding.get(msg.question)
        if out is None or out.hub != msg.hub:
            self.counters["dropped_unsolicited"] += 1
            raise UnsolicitedAnswer(f"answer to unknown question 0x{msg.question.hex()[:16]}")
        messages.verify(msg, self.domain)
        self._check_countersignature(msg)
        self._charge(peer, now, question=False)
        self._mark_seen(key)
        self._take_answer(out, msg, now)

    def _take_answer(self, out: _Outstanding, msg: TrustAnswer, now: float) -> None:
        """An answer to one of our questions, checked: stored if its question has room."""
        proof = self.wire_proof(msg)
        untrusted = self.weight(msg.answerer) <= 0 and (
            proof is None or not self.check_proof(msg, proof, now)
        )
        if not out.room_for(msg, untrusted, self.params.poll):
            self.counters["dropped_table_full"] += 1
            return
        self.accept_answer(msg, now, proof=proof)

    # -- the wire, split for a gossip topic -----------------------------------------------

    def admit(self, frame: bytes, now: float) -> TrustMessage | None:
        """The checks a relay makes before it forwards a frame on the trust topic.

        Size and shape, validity window, dedupe, signature, then the signer's rate
        limit (a gossip relay forwards everyone's questions, so the limit is per
        asker or answerer, not per forwarding peer). Returns the message to forward
        and later `deliver`, or None to drop it without blame (expired, seen);
        raises RemoteTrustError for a frame no honest node sends or a signer over
        its rate. Answers to other nodes' questions pass: they must reach the asker.
        """
        msg = messages.decode(frame)
        skew = self.params.poll.max_clock_skew_s
        if not msg.valid_from - skew <= now <= msg.valid_until:
            self.counters["dropped_expired"] += 1
            return None
        key = messages.seen_key(msg, self.domain)
        if key in self._seen:
            self.counters["dropped_duplicate"] += 1
            return None
        messages.verify(msg, self.domain)
        self._check_countersignature(msg)
        self._charge(
            msg.signer,
            now,
            question=isinstance(msg, TrustQuestion),
            row=isinstance(msg, TrustRow),
        )
        self._mark_seen(key)
        return msg

    def deliver(self, msg: TrustMessage, now: float) -> None:
        """A message `admit` let through: answer a question, store an answer to ours.

        An answer to a question of another node is counted and dropped here (it was
        forwarded for its asker)."""
        if isinstance(msg, TrustRow):
            self.accept_row(msg)
            return
        if isinstance(msg, TrustQuestion):
            self.counters["questions_received"] += 1
            if msg.asker == self.address:
                return
            ans = self.answer_for(msg.hub, msg.question_id(self.domain), now)
            if ans is not None and self.signer is not None:
                self._out.append(messages.encode(ans))
                self.counters["answers_sent"] += 1
            return
        self.counters["answers_received"] += 1
        if msg.question == messages.ALERT_QUESTION:
            if not self.accept_alert(msg, now, self.wire_proof(msg)):
                self.counters["dropped_unsolicited"] += 1
            return
        out = self._outstanding.get(msg.question)
        if out is None or out.hub != msg.hub:
            self.counters["dropped_unsolicited"] += 1
            return
        self._take_answer(out, msg, now)

    def _mark_seen(self, key: bytes) -> None:
        self._seen[key] = None
        if len(self._seen) > self.params.poll.max_seen:
            self._seen.popitem(last=False)

    def _charge(self, peer: bytes, now: float, *, question: bool, row: bool = False) -> None:
        p = self.params.poll
        slot = self._rate.get(peer)
        if slot is None or now - slot[0] >= p.window_s:
            if slot is None and len(self._rate) >= p.max_tracked_peers:
                self._rate.popitem(last=False)
            slot = self._rate[peer] = [now, 0.0, 0.0, 0.0]
            self._rate.move_to_end(peer)
        if row:
            i, limit, what = 3, p.rows_per_window, "rows"
        elif question:
            i, limit, what = 1, p.questions_per_window, "questions"
        else:
            i, limit, what = 2, p.answers_per_window, "answers"
        if slot[i] >= limit:
            self.counters["dropped_rate_limited"] += 1
            raise PeerRateLimited(f"peer sent more than {limit} {what} in {p.window_s:.0f} s")
        slot[i] += 1

    # -- answers: store, test, tally ------------------------------------------------------

    def accept_answer(
        self,
        a: TrustAnswer,
        now: float,
        *,
        evaluate: bool = True,
        proof: Agreement | None = None,
    ) -> None:
        """A verified answer (signature checked by `receive`, or trusted by the simulator).

        `evaluate=False` defers the status decision to one `reevaluate(hub, now)` after
        a batch (the simulator delivers a question's answers together). `proof`: the
        answerer's agreement with the hub, for a "BAD" about a missed first payday
        (`check_proof`); a proven answer is kept with the ones that count, so
        answers nobody trusts cannot push it out."""
        if a.answerer == self.address:
            return
        p = self.params.poll
        table = self.answers.get(a.hub)
        if table is None:
            if len(self.answers) >= p.max_hubs:
                self.counters["dropped_table_full"] += 1
                return
            table = self.answers[a.hub] = {}
            self._untrusted[a.hub] = {}
        untrusted = self._untrusted[a.hub]
        if table.pop(a.answerer, None) is not None:
            untrusted.pop(a.answerer, None)
        w = self.weight(a.answerer)
        proven = proof is not None and self.check_proof(a, proof, now)
        if proven:
            self.counters["proofs_held"] += 1
        if w <= 0 and not proven:
            # peers we give no weight share a small first-in-first-out corner: however
            # many there are, they cannot push out the answers that count
            if p.max_untrusted_answers_per_hub == 0:
                self.counters["dropped_table_full"] += 1
                return
            if len(untrusted) >= p.max_untrusted_answers_per_hub:
                oldest = next(iter(untrusted))
                del untrusted[oldest]
                del table[oldest]
            untrusted[a.answerer] = None
        elif len(table) - len(untrusted) >= p.max_answers_per_hub and not self._make_room(
            table, untrusted, w
        ):
            self.counters["dropped_table_full"] += 1
            return
        stored = StoredAnswer(
            a.hub,
            a.answerer,
            a.verdict,
            a.payments_seen,
            a.avg_reward,
            a.period_s,
            float(a.last_seen),
            now,
            False,
            proof.start if proven and proof is not None else None,
        )
        table[a.answerer] = stored  # (re-)inserted last: dict order is age order
        self.counters["answers_accepted"] += 1
        self._test(stored)
        if evaluate:
            self.reevaluate(a.hub, now)

    def _make_room(
        self, table: dict[bytes, StoredAnswer], untrusted: dict[bytes, None], incoming: float
    ) -> bool:
        """Evict the oldest of the lowest-weight trusted answers, if it weighs less than
        the new one (ties go to the newer answer)."""
        victim, low = None, None
        for who in table:  # oldest first
            if who in untrusted:
                continue
            w = self.weight(who)
            if low is None or w < low:
                victim, low = who, w
        if victim is None or low is None or low > incoming:
            return False
        del table[victim]
        return True

    def tally(self, hub: bytes, now: float) -> Tally:
        """Weighted and unweighted votes over the answers that still count.

        An answer counts while it is younger than answer_ttl and its evidence younger
        than evidence_ttl. A positive answer does not count when negative answers about
        *newer* evidence weigh at least `suspect_weight`: "it paid me last month" does
        not answer "it stopped paying this week" from peers we trust; a liar with a
        sliver of weight cannot void everyone's positives that way.
        """
        t = Tally()
        st = self.params.status
        oldest_answer = now - st.answer_ttl_s
        oldest_evidence = now - st.evidence_ttl_s
        weight = self.weight
        positives: list[tuple[float, float]] = []
        negatives: list[tuple[float, float]] = []
        for a in self.answers.get(hub, {}).values():
            if a.at < oldest_answer or a.last_seen < oldest_evidence:
                continue
            w = weight(a.answerer)
            if a.verdict is Verdict.GOOD:
                t.votes_good += 1
                positives.append((a.last_seen, w))
            else:
                t.votes_bad += 1
                t.negative += w
                if w > 0:
                    negatives.append((a.last_seen, w))
        if not reaches(t.negative, st.suspect_weight):
            negatives = []
        negatives.sort(reverse=True)  # newest first
        for seen, w in positives:
            newer = 0.0
            for n_seen, n_w in negatives:
                if n_seen <= seen:
                    break
                newer += n_w
            if reaches(newer, st.suspect_weight):
                continue
            t.positive += w
            t.positive_answerers += w > 0
        return t

    def warning(self, hub: bytes, now: float) -> float:
        """Weight of trusted "BAD" answers about `hub` whose evidence is newer than our
        own last good payday there (all of them while we have none): 0 when no peer
        we trust says the hub failed it since it last paid us.

        A worker's joining and staying policy reads it: a status needs
        `suspect_weight` to turn, but one trusted peer stiffed since the hub last
        paid us is already reason not to start (or keep) working there, hours
        before our own payday would tell us. Positive answers do not cancel it: a
        liar can always claim the freshest "it pays me", and the cost of heeding a
        false warning is only the choice of another hub. Untrusted answerers
        (weight 0: liars caught, sybils) add nothing, so they cannot keep workers
        away from a good hub."""
        table = self.answers.get(hub)
        if not table:
            return 0.0
        st = self.params.status
        oldest_answer = now - st.answer_ttl_s
        oldest_evidence = max(now - st.evidence_ttl_s, self.evidence.last_good_at(hub) or -1.0)
        total = 0.0
        proof_weight = st.proof_weight
        for a in table.values():
            if a.verdict is Verdict.BAD and a.at >= oldest_answer and a.last_seen > oldest_evidence:
                w = self.weight(a.answerer)
                if a.proof_start is not None and w < proof_weight and self._proven(a):
                    w = proof_weight
                total += w
        return total

    def reevaluate(self, hub: bytes, now: float) -> None:
        """Move the hub's status if the weighted answers now say so (hearsay rules)."""
        rec = self.records.get(hub)
        if rec is None or rec.status in (HubStatus.UNKNOWN, HubStatus.FAKE):
            return
        if self.evidence.verdict(hub) is Verdict.BAD:
            return  # our own evidence already decided; hearsay cannot lift it
        st = self.params.status
        t = self.tally(hub, now)
        if reaches(t.negative, st.suspect_weight) and t.negative > t.positive * st.outweigh_ratio:
            if rec.status is not HubStatus.SUSPECTED:
                self._move(hub, Reason.NEGATIVE_ANSWERS, now, _detail(t))
            return
        if (
            reaches(t.positive, st.checked_weight)
            and t.positive_answerers >= st.min_positive_answers
            and t.positive > t.negative * st.outweigh_ratio
        ):
            if rec.status is HubStatus.SUSPECTED and self.evidence.verdict(hub) is Verdict.GOOD:
                self._move(hub, Reason.PAYMENT_MATCHED, now, "own evidence, hearsay lifted")
            elif rec.status in (HubStatus.UNVERIFIED, HubStatus.SUSPECTED):
                self._move(hub, Reason.POSITIVE_ANSWERS, now, _detail(t))

    def reevaluate_all(self, now: float) -> None:
        """Re-tally the undecided hubs (UNVERIFIED, or SUSPECTED on hearsay) after trust
        changed (the driver calls it after `set_global_trust`): weights moved even where
        no answer came. Decided hubs move again when their next answers come."""
        for hub, rec in self.records.items():
            undecided = rec.status is HubStatus.UNVERIFIED or (
                rec.suspicion is Reason.NEGATIVE_ANSWERS
            )
            if undecided and hub in self.answers:
                self.reevaluate(hub, now)

    def majority(self, hub: bytes, now: float) -> Verdict | None:
        """What a plain majority of the answers says (no weights): the comparison baseline.
        The same answers as `tally` counts, without computing weights."""
        st = self.params.status
        oldest_answer = now - st.answer_ttl_s
        oldest_evidence = now - st.evidence_ttl_s
        good = bad = 0
        for a in self.answers.get(hub, {}).values():
            if a.at < oldest_answer or a.last_seen < oldest_evidence:
                continue
            if a.verdict is Verdict.GOOD:
                good += 1
            else:
                bad += 1
        if good > bad:
            return Verdict.GOOD
        if bad > good:
            return Verdict.BAD
        return None


def _detail(t: Tally) -> str:
    return f"weight +{t.positive:.2f} / -{t.negative:.2f} ({t.votes_good} yes, {t.votes_bad} no)"
