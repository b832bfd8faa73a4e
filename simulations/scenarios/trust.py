"""Trust: workers pick hubs by polling each other, while some hubs cheat and some workers lie.

Every honest worker runs the node's own `reputation.core.ReputationCore`:
agreements, payments judged at paydays, statuses through the one transition
table, questions, answers weighted by local and EigenTrust global trust. The
simulator plays the network and the chain: it pays (or does not) at each
payday, carries each question to a sample of the workers who can answer, and
recomputes global trust (reputation.eigentrust.GlobalTrust) every round from
every node's local trust row. It calls the core below the wire
(`make_question`/`answer_for`/`accept_answer`): signatures and the decoder
are exercised in tests/reputation/, and would only cost time here.

The world (defaults): `nodes` = 1000 workers arriving over `arrival_days`,
each taking `term_days_min..max` agreements and re-choosing a hub at the end
of each; `hubs` = 50, `bad_hubs` of them malicious, alternately stopping
payment at a random time in `turn_days_min..max` or paying `short_pay` of
what is due from the start. `liars` (a fraction of the workers) collude: they
answer every question, praising bad hubs and slandering good ones, and trust
each other in their EigenTrust rows. `sybils` fresh identities do the same
with no agreements at all. `pretrusted` honest workers are the pre-trusted
peers (the seeds' operators).

What a question reaches (the core's answer caps): up to `answers_per_question`
answers of each verdict from evidence holders and peers the asker already
trusts, arriving in random order, plus up to `untrusted_per_question` from
peers it gives no weight (`PollParams.max_untrusted_answers_per_question`).
A worker whose payday a hub misses alerts that hub's other workers at once
(`ReputationCore.accept_alert`: kept by those who give it weight). A worker
whose first payday under an agreement passed with nothing paid sends that
agreement with its "BAD" (alert or answer; `proof_for`), and every receiver
checks it against the hub wallet's transfers (`check_proof`): a warning with no
trust needed, which the new workers first stiffed by a hub could not give
before, since nobody had tested them yet.

Two variants run side by side on the same events (hub behaviour, arrivals,
terms, each worker's random choices): `on` (trust polling) and `off` (each
worker knows only its own evidence). The `on` run also scores a plain
majority vote (no weights) over the very answers it received.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from gossip.eip712 import SigningDomain
from gossip.errors import UserError
from reputation.core import ReputationCore
from reputation.eigentrust import GlobalTrust
from reputation.evidence import Agreement, Payment, Verdict
from reputation.messages import TrustAnswer
from reputation.params import (
    EigenTrustParams,
    PollParams,
    ReputationParams,
    StatusParams,
)
from reputation.state import HubRecord, HubStatus
from reputation.trust import similarity
from simulations.engine import Simulator
from simulations.scenarios.base import CommonParams

HOUR = 3600.0
DAY = 24 * HOUR
RATE = 1_000_000  # token base units per hour, every hub
SYBIL_BASE = 10**6
HUB_BASE = 2 * 10**6
CONVERGED_WITHIN = 0.01  # "converged": right fraction within 1 point of its final value


def _addr(n: int) -> bytes:
    return n.to_bytes(20, "big")


@dataclass(frozen=True)
class TrustSimParams(CommonParams):
    nodes: int = 1000  # workers, honest and lying
    hubs: int = 50
    bad_hubs: float = 0.1
    liars: float = 0.0  # fraction of workers colluding to lie
    sybils: int = 0  # fresh lying identities with no evidence
    days: float = 20.0
    arrival_days: float = 7.0
    term_days_min: float = 2.0
    term_days_max: float = 4.0
    payout_period_h: float = 24.0
    round_h: float = 6.0
    trust_h: float = 2.0  # global trust recomputed (the daemon: every 30 s)
    questions_per_round: int = 4
    answers_per_question: int = 16
    untrusted_per_question: int = 8
    pretrusted: int = 10
    liar_hubs: int = 3  # hubs that paid each colluding liar (its real jobs)
    short_pay: float = 0.5
    turn_days_min: float = 1.0
    turn_days_max: float = 3.0
    polling: str = "both"
    join_tries: int = 4  # hubs a polling worker asks about before joining one

    def validate(self) -> None:
        # not CommonParams.validate: no gossip network here, so its topology,
        # latency and mesh parameters are not used and not checked
        checks: list[tuple[str, float, float, float]] = [
            ("nodes", self.nodes, 2, 2_000_000),
            ("seed", self.seed, 0, 2**63 - 1),
            ("hubs", self.hubs, 2, 100_000),
            ("bad_hubs", self.bad_hubs, 0.0, 0.9),
            ("liars", self.liars, 0.0, 0.9),
            ("sybils", self.sybils, 0, 1_000_000),
            ("days", self.days, 1.0, 3650.0),
            ("arrival_days", self.arrival_days, 0.0, self.days),
            ("term_days_min", self.term_days_min, 0.1, 365.0),
            ("term_days_max", self.term_days_max, self.term_days_min, 365.0),
            ("payout_period_h", self.payout_period_h, 1.0, 24.0 * 365),
            ("round_h", self.round_h, 0.1, 24.0 * 30),
            ("trust_h", self.trust_h, 0.1, self.round_h),
            ("questions_per_round", self.questions_per_round, 1, 1000),
            ("answers_per_question", self.answers_per_question, 1, 10_000),
            ("untrusted_per_question", self.untrusted_per_question, 0, 10_000),
            ("pretrusted", self.pretrusted, 1, self.nodes),
            ("liar_hubs", self.liar_hubs, 0, self.hubs),
            ("short_pay", self.short_pay, 0.0, 0.97),
            ("turn_days_min", self.turn_days_min, 0.0, self.days),
            ("turn_days_max", self.turn_days_max, self.turn_days_min, self.days),
            ("join_tries", self.join_tries, 1, 1000),
        ]
        for name, value, lo, hi in checks:
            if not lo <= value <= hi:
                raise UserError(f"{name} must be in [{lo}, {hi}], got {value}")
        if self.polling not in ("on", "off", "both"):
            raise UserError(f"polling must be 'on', 'off' or 'both', got {self.polling!r}")
        honest = self.nodes - round(self.nodes * self.liars)
        if honest < self.pretrusted:
            raise UserError(f"pretrusted must be at most the honest workers ({honest})")

    def reputation(self) -> ReputationParams:
        period = self.payout_period_h * HOUR
        return ReputationParams(
            status=StatusParams(answer_ttl_s=7 * DAY, evidence_ttl_s=max(14 * DAY, 4 * period)),
            poll=PollParams(
                questions_per_round=self.questions_per_round,
                max_answers_per_question=self.answers_per_question + self.untrusted_per_question,
                max_untrusted_answers_per_question=self.untrusted_per_question,
            ),
        )


class _Deal:
    """One agreement as the simulated chain sees it: hours worked and paid."""

    __slots__ = ("due_before", "end", "hub", "paid", "start", "worker")

    def __init__(self, worker: int, hub: int, start: float) -> None:
        self.worker = worker
        self.hub = hub
        self.start = start
        self.end: float | None = None
        self.paid = 0
        self.due_before = 0  # cumulative amount due at the previous payday

    def unpaid_hours(self, now: float) -> float:
        until = now if self.end is None else min(self.end, now)
        return max(0.0, (until - self.start) / HOUR - self.paid / RATE)


class TrustWorld:
    """One variant (polling on or off) over the shared events."""

    def __init__(self, sim: Simulator, p: TrustSimParams, polling: bool) -> None:
        self.sim = sim
        self.p = p
        self.polling = polling
        self.domain = SigningDomain(chain_id=1)
        self.period = p.payout_period_h * HOUR
        setup = random.Random(f"{p.seed}/trust/setup")  # same in every variant
        n_bad = round(p.hubs * p.bad_hubs)
        bad = set(setup.sample(range(p.hubs), n_bad))
        self.bad = [h in bad for h in range(p.hubs)]
        self.stops: dict[int, float] = {}  # stop-paying hub -> when it stops
        self.short: set[int] = set()
        for k, h in enumerate(sorted(bad)):
            if k % 2 == 0:
                self.stops[h] = setup.uniform(p.turn_days_min, p.turn_days_max) * DAY
            else:
                self.short.add(h)
        n_liars = round(p.nodes * p.liars)
        liars = set(setup.sample(range(p.nodes), n_liars))
        self.honest = [w for w in range(p.nodes) if w not in liars]
        self.liars = sorted(liars)
        self.sybils = [SYBIL_BASE + j for j in range(p.sybils)]
        self.adversaries = self.liars + self.sybils
        self.adversary_set = {_addr(a) for a in self.adversaries}
        self.pretrusted = setup.sample(self.honest, p.pretrusted)
        # the chain's record of who each hub paid: honest workers as they are paid;
        # colluding liars are workers too, each paid by `liar_hubs` hubs before the run
        self.payees: dict[bytes, dict[bytes, int]] = {}
        # and when each hub last paid each address (what a proof is checked against)
        self.last_paid: dict[bytes, dict[bytes, float]] = {
            _addr(HUB_BASE + h): {} for h in range(p.hubs)
        }
        for a in self.liars:
            for h in setup.sample(range(p.hubs), min(p.liar_hubs, p.hubs)):
                self.payees.setdefault(_addr(HUB_BASE + h), {})[_addr(a)] = 3
                self.last_paid[_addr(HUB_BASE + h)][_addr(a)] = -DAY
        self.arrival = {w: setup.uniform(0.0, p.arrival_days * DAY) for w in self.honest}
        self.hub_addr = [_addr(HUB_BASE + h) for h in range(p.hubs)]
        self.hub_index = {a: h for h, a in enumerate(self.hub_addr)}
        rp = p.reputation()
        self.cores: dict[int, ReputationCore] = {}
        self.rng: dict[int, random.Random] = {}
        for w in self.honest:
            self.cores[w] = ReputationCore(
                rp, self.domain, random.Random(f"{p.seed}/trust/core/{w}"), address=_addr(w)
            )
            self.cores[w].set_chain_payees(self.payees)
            self.cores[w].set_chain_last_paid(self.last_paid)
            self.rng[w] = random.Random(f"{p.seed}/trust/worker/{w}")
        self.sample_trusted = random.Random(f"{p.seed}/trust/sample/trusted")
        self.sample_untrusted = random.Random(f"{p.seed}/trust/sample/untrusted")
        self.arrived: list[int] = []
        self.current: dict[int, _Deal | None] = {}
        self.deals: list[_Deal] = []
        self.left: dict[int, dict[int, float]] = {w: {} for w in self.honest}
        self.holders: list[list[int]] = [[] for _ in range(p.hubs)]
        self.holder_set: list[set[int]] = [set() for _ in range(p.hubs)]
        self.global_trust = GlobalTrust(EigenTrustParams())
        self.units: dict[bytes, float] = {}
        self.adv_trusted: list[int] = []
        self.lies: dict[tuple[int, int], TrustAnswer] = {}
        self.answers: dict[tuple[int, int], TrustAnswer | None] = {}
        self.proofs: dict[tuple[int, int], Agreement | None] = {}
        self.lie_round = -1.0
        self.rounds: list[dict[str, float]] = []
        self.iterations: list[int] = []

    # -- events ------------------------------------------------------------------------

    def start(self) -> None:
        for w in self.honest:
            self.sim.schedule(self.arrival[w], self._arrive, w)
        if self.polling:
            self.sim.schedule(self.p.round_h * HOUR, self._round)
            if self.p.trust_h < self.p.round_h:
                self.sim.schedule(self.p.trust_h * HOUR, self._trust_tick)
        else:
            self.sim.schedule(self.p.round_h * HOUR, self._snapshot_round)

    def _arrive(self, w: int) -> None:
        now = self.sim.now
        core = self.cores[w]
        for a in self.hub_addr:
            core.hub_announced(a, True, now)
        self.arrived.append(w)
        self.current[w] = None
        self._choose(w, now)

    def _acceptable(self, w: int, h: int, now: float) -> bool:
        left = self.left[w].get(h)
        if left is not None and now - left < self.period + 2 * HOUR:
            return False  # its last payday under the old agreement is still to come
        ledger = self.cores[w].evidence.ledgers.get((self.hub_addr[h], _addr(w)))
        if ledger is not None and ledger.next_check() is not None:
            return False  # still owed a payday under the old agreement
        return not self._unsafe(w, h, now)

    def _unsafe(self, w: int, h: int, now: float) -> bool:
        """Bad by what the worker knows: its status, and with polling also a trusted
        peer's warning (stiffed since the hub last paid this worker)."""
        core = self.cores[w]
        a = self.hub_addr[h]
        return core.status(a).bad or (self.polling and core.warning(a, now) > 0)

    def _pick(self, w: int, now: float, keep: int | None = None) -> int | None:
        """Which hub to work for. Without polling: any hub not known bad by the worker's
        own evidence. With polling: the worker asks about a hub before joining it and
        joins only one that no trusted peer reports stiffing it since the hub last paid
        this worker (`ReputationCore.warning`); it prefers CHECKED/SAFE hubs
        and, while none is known, asks about up to `join_tries` unverified ones,
        joining the first that turns CHECKED, else the first that drew no warning."""
        core = self.cores[w]
        rng = self.rng[w]
        ok = [h for h in range(self.p.hubs) if h == keep or self._acceptable(w, h, now)]
        if not self.polling:
            return ok[rng.randrange(len(ok))] if ok else None
        fallback: int | None = None
        for _ in range(self.p.join_tries):
            good = [h for h in ok if core.status(self.hub_addr[h]).good]
            pool = good or [h for h in ok if core.status(self.hub_addr[h]) is HubStatus.UNVERIFIED]
            if not pool:
                break
            h = pool[rng.randrange(len(pool))]
            a = self.hub_addr[h]
            if h != keep and core.last_polled.get(a, -1e18) < now - HOUR:
                _, qid = core.make_question(a, now)
                self._deliver(w, h, qid, now)
            if not core.status(a).bad and core.warning(a, now) <= 0:
                if core.status(a).good:
                    return h
                if fallback is None:
                    fallback = h
            ok.remove(h)
        return fallback

    def _choose(self, w: int, now: float) -> None:
        h = self._pick(w, now)
        if h is not None:
            self._join(w, h, now)

    def _join(self, w: int, h: int, now: float) -> None:
        deal = _Deal(w, h, now)
        self.current[w] = deal
        self.deals.append(deal)
        agreement = Agreement(_addr(w), self.hub_addr[h], RATE, int(self.period), now)
        self.cores[w].add_agreement(agreement)
        self.sim.schedule(now + self.period, self._payday, deal, 1)
        self._schedule_term(deal, now)

    def _schedule_term(self, deal: _Deal, now: float) -> None:
        term = self.rng[deal.worker].uniform(self.p.term_days_min, self.p.term_days_max) * DAY
        self.sim.schedule(now + term, self._term_end, deal)

    def _leave(self, w: int, now: float) -> None:
        deal = self.current[w]
        if deal is None:
            return
        deal.end = now
        self.cores[w].end_agreement(self.hub_addr[deal.hub], _addr(w), now)
        self.left[w][deal.hub] = now
        self.current[w] = None

    def _term_end(self, deal: _Deal) -> None:
        """The term is over: stay (a renewed term) or move to the hub the policy prefers."""
        w = deal.worker
        if self.current.get(w) is not deal:
            return
        now = self.sim.now
        bad = self._unsafe(w, deal.hub, now)
        h = self._pick(w, now, keep=None if bad else deal.hub)
        if h == deal.hub:
            self._schedule_term(deal, now)
            return
        self._leave(w, now)
        if h is not None:
            self._join(w, h, now)

    def _payday(self, deal: _Deal, k: int) -> None:
        now = self.sim.now
        period_start = deal.start + (k - 1) * self.period
        if deal.end is not None and period_start >= deal.end:
            return
        until = now if deal.end is None else min(now, deal.end)
        due = int(RATE * (until - deal.start) / HOUR)
        owed = due - deal.due_before
        deal.due_before = due
        h = deal.hub
        amount = owed
        if h in self.short:
            amount = int(owed * self.p.short_pay)
        elif h in self.stops and now >= self.stops[h]:
            amount = 0
        w = deal.worker
        if amount > 0:
            payees = self.payees.setdefault(self.hub_addr[h], {})
            payees[_addr(w)] = payees.get(_addr(w), 0) + 1
            self.last_paid[self.hub_addr[h]][_addr(w)] = now
            deal.paid += amount
            self.cores[w].payment_observed(Payment(self.hub_addr[h], _addr(w), amount, now))
        grace = self.cores[w].params.status.payment_grace_s
        self.sim.schedule(now + grace, self._judge, w, h)
        if deal.end is None or now < deal.end:
            self.sim.schedule(now + self.period, self._payday, deal, k + 1)

    def _judge(self, w: int, h: int) -> None:
        now = self.sim.now
        core = self.cores[w]
        core.on_timer(now)
        core.drain_events()
        self.answers.pop((w, h), None)
        self.proofs.pop((w, h), None)
        if w not in self.holder_set[h] and core.evidence.verdict(self.hub_addr[h]) is not None:
            self.holder_set[h].add(w)
            self.holders[h].append(w)
        alerts = core.drain_alerts()
        deal = self.current.get(w)
        if deal is not None and core.status(self.hub_addr[deal.hub]).bad:
            self._leave(w, now)
            self._choose(w, now)
        if self.polling:
            for alert in alerts:
                self._carry_alert(w, alert, now)

    def _carry_alert(self, w: int, alert: TrustAnswer, now: float) -> None:
        """A worker's missed payday, published at once: the hub's other workers keep
        it if they give `w` weight (`accept_alert`) and leave on the warning.
        Colluding liars' false alerts are not carried: a liar a worker trusts already
        reaches it every round through the answers about its own hub."""
        h = self.hub_index[alert.hub]
        proof = self.cores[w].proof_for(alert.hub)
        for v, deal in list(self.current.items()):
            if v == w or deal is None or deal.hub != h:
                continue
            if self.cores[v].accept_alert(alert, now, proof) and self._unsafe(v, h, now):
                self._leave(v, now)
                self._choose(v, now)

    # -- polling -----------------------------------------------------------------------

    def _lie(self, a: int, h: int, qid: bytes, now: float) -> TrustAnswer:
        if now != self.lie_round:
            self.lies.clear()
            self.lie_round = now
        ans = self.lies.get((a, h))
        if ans is None:
            verdict = Verdict.GOOD if self.bad[h] else Verdict.BAD
            ans = TrustAnswer(
                _addr(a),
                self.hub_addr[h],
                qid,
                verdict,
                3,
                int(RATE * self.p.payout_period_h),
                int(self.period),
                int(now),
                int(now),
                int(now) + 600,
            )
            self.lies[(a, h)] = ans
        return ans

    def _deliver(self, w: int, h: int, qid: bytes, now: float) -> None:
        """Carry one question to its answerers and their answers back."""
        core = self.cores[w]
        p = self.p
        trusted_adv = [a for a in self.adv_trusted if core.weight(_addr(a)) > 0]
        # the core keeps answers_per_question answers of each verdict (`room_for`):
        # which ones of a verdict arrive first is the sample
        hub = self.hub_addr[h]
        good: list[int] = []
        bad: list[int] = []
        for c in self.holders[h]:
            if c != w:
                (bad if self.cores[c].evidence.verdict(hub) is Verdict.BAD else good).append(c)
        (good if self.bad[h] else bad).extend(trusted_adv)  # what the liars claim
        chosen: list[int] = []
        for pool in (good, bad):
            k = min(p.answers_per_question, len(pool))
            chosen.extend(self.sample_trusted.sample(pool, k) if k < len(pool) else pool)
        for c in chosen:
            if c in self.cores:
                # cached until the answerer's evidence changes: below the wire the
                # question id an answer names is not read, so one object serves all
                ans = self.answers.get((c, h))
                if ans is None:
                    ans = self.cores[c].answer_for(self.hub_addr[h], qid, now)
                    self.answers[(c, h)] = ans
                    self.proofs[(c, h)] = self.cores[c].proof_for(hub)
                if ans is not None:
                    core.accept_answer(ans, now, evaluate=False, proof=self.proofs.get((c, h)))
            else:
                core.accept_answer(self._lie(c, h, qid, now), now, evaluate=False)
        n_adv = len(self.adversaries)
        k = min(p.untrusted_per_question, n_adv)
        if k:
            skip = set(trusted_adv)
            for i in self.sample_untrusted.sample(range(n_adv), k):
                a = self.adversaries[i]
                if a not in skip:
                    core.accept_answer(self._lie(a, h, qid, now), now, evaluate=False)
        core.reevaluate(self.hub_addr[h], now)

    def _round(self) -> None:
        now = self.sim.now
        for w in self.arrived:
            core = self.cores[w]
            local_adv = [
                int.from_bytes(q, "big")
                for q in core.local.trusted_peers()
                if q in self.adversary_set
            ]
            saved = self.adv_trusted
            self.adv_trusted = saved + [a for a in local_adv if a not in saved]
            for q, qid in core.poll(now):
                self._deliver(w, self.hub_index[q.hub], qid, now)
            self.adv_trusted = saved
            core.drain_events()
        self._update_global_trust()
        for w in self.arrived:
            deal = self.current[w]
            if deal is None:
                self._choose(w, now)
            elif self._unsafe(w, deal.hub, now):
                self._leave(w, now)
                self._choose(w, now)
        self._snapshot(now)
        self.sim.call_later(self.p.round_h * HOUR, self._round)

    def _trust_tick(self) -> None:
        """Global trust between poll rounds (the daemon recomputes it every
        `reputation.trust_interval`): a peer's warning counts as soon as the peer has
        weight, not only at the next round; a worker leaves on it then."""
        now = self.sim.now
        if now % (self.p.round_h * HOUR) != 0:  # a round does its own update
            self._update_global_trust()
            for w in self.arrived:
                deal = self.current[w]
                if deal is not None and self._unsafe(w, deal.hub, now):
                    self._leave(w, now)
                    self._choose(w, now)
        self.sim.call_later(self.p.trust_h * HOUR, self._trust_tick)

    def _snapshot_round(self) -> None:
        now = self.sim.now
        for w in self.arrived:
            if self.current[w] is None:
                self._choose(w, now)
        self._snapshot(now)
        self.sim.call_later(self.p.round_h * HOUR, self._snapshot_round)

    def _claims(self, peer: int) -> dict[bytes, Verdict]:
        if peer in self.cores:
            ev = self.cores[peer].evidence
            return {h: v for h in ev.hubs_with_evidence() if (v := ev.verdict(h)) is not None}
        return {
            a: (Verdict.GOOD if self.bad[h] else Verdict.BAD) for h, a in enumerate(self.hub_addr)
        }

    def _update_global_trust(self) -> None:
        rows: dict[bytes, Mapping[bytes, float]] = {}
        for w in self.arrived:
            rows[_addr(w)] = self.cores[w].local.row()
        liar_row = {_addr(a): 1.0 for a in self.liars}
        for a in self.liars:
            rows[_addr(a)] = liar_row
        sybil_row = {_addr(a): 1.0 for a in self.adversaries}
        for a in self.sybils:
            rows[_addr(a)] = sybil_row
        reference: dict[bytes, Verdict] = {}
        for w in self.pretrusted:
            for hub, v in self._claims(w).items():
                if reference.get(hub) is not Verdict.BAD:
                    reference[hub] = v
        lie_claims = self._claims(-1)
        cred: dict[bytes, float] = {}
        for w in self.arrived:
            cred[_addr(w)] = similarity(reference, self._claims(w), unknown=0.5)
        lie_cred = similarity(reference, lie_claims, unknown=0.5)
        for a in self.adversaries:
            cred[_addr(a)] = lie_cred
        pre = {_addr(w): 1.0 for w in self.pretrusted}
        peers = [_addr(w) for w in self.honest] + [_addr(a) for a in self.adversaries]
        self.global_trust.update(rows, pre, cred, peers=peers)
        self.iterations.append(self.global_trust.last_iterations)
        self.units = self.global_trust.units()
        now = self.sim.now
        for w in self.arrived:
            self.cores[w].set_global_trust(self.units)
            self.cores[w].reevaluate_all(now)
            self.cores[w].drain_events()
        self.adv_trusted = [a for a in self.adversaries if self.units.get(_addr(a), 0.0) > 0]

    # -- measuring ---------------------------------------------------------------------

    def _snapshot(self, now: float) -> None:
        right = fp = undecided = 0
        good_st = (HubStatus.CHECKED, HubStatus.SAFE)
        bad_st = (HubStatus.SUSPECTED, HubStatus.FAKE)
        bad_hubs = [a for h, a in enumerate(self.hub_addr) if self.bad[h]]
        good_hubs = [a for h, a in enumerate(self.hub_addr) if not self.bad[h]]
        unknown = HubRecord(b"")
        for w in self.arrived:
            records = self.cores[w].records
            for a in bad_hubs:
                st = records.get(a, unknown).status
                right += st in bad_st
                undecided += st not in bad_st and st not in good_st
            for a in good_hubs:
                st = records.get(a, unknown).status
                right += st in good_st
                fp += st in bad_st
                undecided += st not in bad_st and st not in good_st
        pairs = len(self.arrived) * len(self.hub_addr)
        good_pairs = len(self.arrived) * len(good_hubs)
        row = {
            "t_days": now / DAY,
            "right": right / pairs if pairs else 0.0,
            "false_positive": fp / good_pairs if good_pairs else 0.0,
            "undecided": undecided / pairs if pairs else 0.0,
            "unpaid_hours": self.unpaid_hours(now),
        }
        if self.polling:
            # the plain majority over the same answers, round by round (for the plots)
            row["majority_right"] = self._majority(now)["right"]
        self.rounds.append(row)

    def unpaid_hours(self, now: float) -> float:
        return sum(d.unpaid_hours(now) for d in self.deals if self.bad[d.hub])

    def results(self) -> dict[str, Any]:
        now = self.sim.now
        out: dict[str, Any] = {
            "honest_workers": len(self.honest),
            "arrived": len(self.arrived),
            "unpaid_hours_bad_hubs": self.unpaid_hours(now),
            "hours_worked": sum(
                ((d.end if d.end is not None else now) - d.start) / HOUR for d in self.deals
            ),
            "joins_of_bad_hubs": sum(1 for d in self.deals if self.bad[d.hub]),
            "joins": len(self.deals),
            "over_time": [
                [r["t_days"], r["right"], r["false_positive"], r["unpaid_hours"]]
                for r in self.rounds
            ],
        }
        last = self.rounds[-1] if self.rounds else {"right": 0.0, "false_positive": 0.0}
        out["right"] = last["right"]
        out["false_positive"] = last["false_positive"]
        out["undecided"] = last.get("undecided", 1.0)
        out["rounds_to_converge"] = self._converged_round()
        if not self.polling:
            return out
        out["majority"] = self._majority(now)
        out["majority_over_time"] = [[r["t_days"], r["majority_right"]] for r in self.rounds]
        out["liars_caught"] = sum(c.counters["liars_caught"] for c in self.cores.values())
        out["answers_accepted"] = sum(c.counters["answers_accepted"] for c in self.cores.values())
        out["questions_sent"] = sum(c.counters["questions_sent"] for c in self.cores.values())
        out["eigentrust_iterations"] = {
            "first": self.iterations[0] if self.iterations else 0,
            "mean_after_first": (
                sum(self.iterations[1:]) / (len(self.iterations) - 1)
                if len(self.iterations) > 1
                else 0.0
            ),
        }
        adv = [_addr(a) for a in self.adversaries]
        out["adversary_weight_max"] = max(
            (self.cores[w].weight(a) for w in self.arrived for a in adv[:2000]), default=0.0
        )
        gt = self.global_trust
        out["adversary_global_trust"] = float(
            sum(v for q, v in zip(gt.peers, gt.vector, strict=True) if q in self.adversary_set)
        )
        out["final_statuses"] = [
            [int(self.cores[w].status(a)) for a in self.hub_addr] for w in self.arrived
        ]
        out["arrived_ids"] = list(self.arrived)
        return out

    def _converged_round(self) -> int:
        if not self.rounds:
            return 0
        final = self.rounds[-1]["right"]
        k = len(self.rounds)
        while k > 0 and abs(self.rounds[k - 1]["right"] - final) <= CONVERGED_WITHIN:
            k -= 1
        return k + 1

    def _majority(self, now: float) -> dict[str, float]:
        right = fp = pairs = good_pairs = 0
        for w in self.arrived:
            core = self.cores[w]
            for h, a in enumerate(self.hub_addr):
                v = core.evidence.verdict(a) or core.majority(a, now)
                pairs += 1
                if self.bad[h]:
                    right += v is Verdict.BAD
                else:
                    good_pairs += 1
                    right += v is Verdict.GOOD
                    fp += v is Verdict.BAD
        return {
            "right": right / pairs if pairs else 0.0,
            "false_positive": fp / good_pairs if good_pairs else 0.0,
        }


class Trust:
    name: ClassVar[str] = "trust"
    Params: ClassVar[type[CommonParams]] = TrustSimParams

    def __init__(self, params: CommonParams) -> None:
        params.validate()
        self.params = params
        self.worlds: dict[str, TrustWorld] = {}

    @property
    def sp(self) -> TrustSimParams:
        assert isinstance(self.params, TrustSimParams)
        return self.params

    def end_time(self) -> float:
        return self.sp.days * DAY

    def build(self, sim: Simulator) -> None:
        variants = ["on", "off"] if self.sp.polling == "both" else [self.sp.polling]
        for v in variants:
            self.worlds[v] = TrustWorld(sim, self.sp, polling=v == "on")

    def run(self, sim: Simulator) -> dict[str, Any]:
        for world in self.worlds.values():
            world.start()
        sim.run(until=self.end_time())
        p = self.sp
        out: dict[str, Any] = {
            "polling": {v: w.results() for v, w in self.worlds.items()},
            "hubs": p.hubs,
            "bad_hubs": sum(next(iter(self.worlds.values())).bad),
            "liars": len(next(iter(self.worlds.values())).liars),
            "sybils": p.sybils,
            "rounds": int(p.days * 24 / p.round_h),
            "events": sim.events_run,
        }
        on, off = out["polling"].get("on"), out["polling"].get("off")
        if on is not None and off is not None:
            out["unpaid_hours_off_over_on"] = off["unpaid_hours_bad_hubs"] / max(
                on["unpaid_hours_bad_hubs"], 1e-9
            )
        return out

    def plots(self, results: Mapping[str, Any], out_dir: Path) -> list[Path]:
        from simulations import plots

        out_dir.mkdir(parents=True, exist_ok=True)
        runs = {f"liars {results['liars']}, sybils {results['sybils']}": series(results)}
        return [
            plots.trust_convergence(runs, out_dir / "trust_convergence.png", "trust: convergence"),
            plots.unpaid_hours(runs, out_dir / "unpaid_hours.png", "trust: unpaid hours"),
        ]


def series(results: Mapping[str, Any]) -> dict[str, list[list[float]]]:
    """The per-round series the plots draw, from a trust results dict.

    right: [days, fraction of (honest worker, hub) pairs right] under trust
    polling, a plain majority over the same answers, and no polling;
    unpaid: [days, unpaid hours at bad hubs] with and without polling.
    """
    out: dict[str, list[list[float]]] = {}
    on, off = results["polling"].get("on"), results["polling"].get("off")
    if on is not None:
        out["polling"] = [[r[0], r[1]] for r in on["over_time"]]
        out["majority"] = [list(r) for r in on.get("majority_over_time", [])]
        out["unpaid_polling"] = [[r[0], r[3]] for r in on["over_time"]]
    if off is not None:
        out["no_polling"] = [[r[0], r[1]] for r in off["over_time"]]
        out["unpaid_no_polling"] = [[r[0], r[3]] for r in off["over_time"]]
    return out


__all__ = ["Trust", "TrustSimParams", "TrustWorld", "series"]
