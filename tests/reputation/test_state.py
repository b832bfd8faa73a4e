"""Every status transition, driven through the core in virtual time, with its reason."""

from __future__ import annotations

import pytest

from reputation.core import ChainState, ReputationCore
from reputation.errors import LocalTransitionError
from reputation.evidence import DealOutcome, Verdict
from reputation.state import TRANSITIONS, HubRecord, HubStatus, Reason
from tests.reputation.helpers import (
    DAY,
    HOUR,
    HUB,
    RATE,
    addr,
    answer,
    pay,
    sim_node,
    work_for,
)

S = HubStatus


def announced(now: float = 0.0) -> ReputationCore:
    core = sim_node(addr(1))
    core.hub_announced(HUB, True, now)
    return core


def trusted(core: ReputationCore, *peers: bytes) -> None:
    core.set_global_trust(dict.fromkeys(peers, 1.0))


def last(core: ReputationCore) -> tuple[float, HubStatus, HubStatus, Reason]:
    t = core.record(HUB).history[-1]
    return (t.at, t.source, t.target, t.reason)


def test_unknown_to_unverified_when_announced_and_chain_check_passes() -> None:
    core = sim_node(addr(1))
    assert core.status(HUB) is S.UNKNOWN
    core.hub_announced(HUB, True, 5.0)
    assert last(core) == (5.0, S.UNKNOWN, S.UNVERIFIED, Reason.ANNOUNCED_CHAIN_OK)
    assert [e.hub for e in core.drain_events()] == [HUB]


def test_unknown_to_fake_when_the_chain_check_fails() -> None:
    core = sim_node(addr(1))
    core.hub_announced(HUB, False, 7.0, "wallet not made by the factory")
    assert last(core) == (7.0, S.UNKNOWN, S.FAKE, Reason.CHAIN_CHECK_FAILED)
    assert core.record(HUB).history[-1].detail == "wallet not made by the factory"


def test_unverified_to_checked_by_weighted_positive_answers() -> None:
    core = announced()
    trusted(core, addr(2), addr(3))
    core.accept_answer(answer(addr(2), HUB, Verdict.GOOD, 100.0), 100.0)
    assert core.status(HUB) is S.UNVERIFIED  # one answerer is not enough
    core.accept_answer(answer(addr(3), HUB, Verdict.GOOD, 200.0), 200.0)
    assert last(core) == (200.0, S.UNVERIFIED, S.CHECKED, Reason.POSITIVE_ANSWERS)


def test_checked_to_safe_when_a_payment_matches_the_agreement() -> None:
    core = announced()
    trusted(core, addr(2), addr(3))
    for p in (addr(2), addr(3)):
        core.accept_answer(answer(p, HUB, Verdict.GOOD, 10.0), 10.0)
    work_for(core, HUB, start=0.0)
    assert core.next_deadline() == DAY + HOUR  # the payday plus its grace
    pay(core, HUB, 24 * RATE, DAY)
    core.on_timer(DAY + HOUR - 1)
    assert core.status(HUB) is S.CHECKED  # not judged before the grace ends
    core.on_timer(DAY + HOUR)
    assert last(core) == (DAY + HOUR, S.CHECKED, S.SAFE, Reason.PAYMENT_MATCHED)


def test_unverified_to_safe_directly_by_own_evidence() -> None:
    core = announced()
    work_for(core, HUB)
    pay(core, HUB, 24 * RATE, DAY)
    core.on_timer(DAY + HOUR)
    assert last(core)[1:] == (S.UNVERIFIED, S.SAFE, Reason.PAYMENT_MATCHED)


def test_safe_to_suspected_by_a_missed_payment() -> None:
    core = announced()
    work_for(core, HUB)
    pay(core, HUB, 24 * RATE, DAY)
    core.on_timer(DAY + HOUR)
    core.on_timer(2 * DAY + HOUR)  # second payday: nothing came
    assert last(core) == (2 * DAY + HOUR, S.SAFE, S.SUSPECTED, Reason.PAYMENT_MISSED)
    assert "expected 24000, paid 0" in core.record(HUB).history[-1].detail


def test_suspected_by_a_short_payment() -> None:
    core = announced()
    work_for(core, HUB)
    pay(core, HUB, 12 * RATE, DAY)
    core.on_timer(DAY + HOUR)
    assert last(core)[1:] == (S.UNVERIFIED, S.SUSPECTED, Reason.PAYMENT_SHORT)


def test_a_late_payment_within_the_grace_still_matches() -> None:
    core = announced()
    work_for(core, HUB)
    pay(core, HUB, 24 * RATE, DAY + HOUR - 1)
    core.on_timer(DAY + HOUR)
    assert core.status(HUB) is S.SAFE


def test_suspected_on_chain_and_rehabilitated() -> None:
    core = announced()
    core.chain_state(HUB, ChainState.SUSPECTED, 50.0)
    assert last(core) == (50.0, S.UNVERIFIED, S.SUSPECTED, Reason.CHAIN_SUSPECTED)
    core.chain_state(HUB, ChainState.REGISTERED, 60.0)
    assert last(core) == (60.0, S.SUSPECTED, S.UNVERIFIED, Reason.CHAIN_REHABILITATED)


def test_punished_on_chain_is_fake_for_good() -> None:
    core = announced()
    core.chain_state(HUB, ChainState.PUNISHED, 70.0)
    assert last(core) == (70.0, S.UNVERIFIED, S.FAKE, Reason.CHAIN_PUNISHED)
    trusted(core, addr(2), addr(3))
    for p in (addr(2), addr(3)):
        core.accept_answer(answer(p, HUB, Verdict.GOOD, 80.0), 80.0)
    core.chain_state(HUB, ChainState.REGISTERED, 90.0)
    assert core.status(HUB) is S.FAKE


def test_negative_answers_outweighing_positive_suspect_and_positive_lift_it() -> None:
    core = announced()
    trusted(core, addr(2), addr(3), addr(4))
    core.accept_answer(answer(addr(2), HUB, Verdict.BAD, 10.0), 10.0)
    assert last(core) == (10.0, S.UNVERIFIED, S.SUSPECTED, Reason.NEGATIVE_ANSWERS)
    # evidence older than the newest negative does not answer it
    core.accept_answer(answer(addr(3), HUB, Verdict.GOOD, 20.0, last_seen=5.0), 20.0)
    assert core.tally(HUB, 20.0).positive == 0.0
    core.accept_answer(answer(addr(4), HUB, Verdict.GOOD, 30.0), 30.0)
    assert core.status(HUB) is S.SUSPECTED  # 1 vs 1: not outweighed
    core.accept_answer(answer(addr(3), HUB, Verdict.GOOD, 40.0), 40.0)  # newer evidence now
    assert last(core) == (40.0, S.SUSPECTED, S.CHECKED, Reason.POSITIVE_ANSWERS)


def test_hearsay_cannot_lift_suspicion_from_our_own_evidence() -> None:
    core = announced()
    work_for(core, HUB)
    core.on_timer(DAY + HOUR)  # missed
    assert core.record(HUB).suspicion is Reason.PAYMENT_MISSED
    trusted(core, addr(2), addr(3), addr(4))
    for p in (addr(2), addr(3), addr(4)):
        core.accept_answer(answer(p, HUB, Verdict.GOOD, DAY + 2 * HOUR), DAY + 2 * HOUR)
    assert core.status(HUB) is S.SUSPECTED
    assert core.record(HUB).suspicion is Reason.PAYMENT_MISSED


def test_consumer_deal_outcomes_move_status() -> None:
    core = announced()
    core.deal_outcome(DealOutcome(HUB, b"\x01" * 32, True, True, True, 10.0), 10.0)
    assert last(core) == (10.0, S.UNVERIFIED, S.SAFE, Reason.DEAL_VERIFIED)
    core.deal_outcome(DealOutcome(HUB, b"\x02" * 32, True, False, True, 20.0), 20.0)
    assert last(core) == (20.0, S.SAFE, S.SUSPECTED, Reason.DEAL_FAILED)


def test_the_table_refuses_what_it_does_not_list() -> None:
    rec = HubRecord(HUB)
    with pytest.raises(LocalTransitionError, match="POSITIVE_ANSWERS not allowed from UNKNOWN"):
        rec.move(Reason.POSITIVE_ANSWERS, 1.0)
    rec.move(Reason.ANNOUNCED_CHAIN_OK, 1.0)
    rec.move(Reason.CHAIN_PUNISHED, 2.0)
    for reason in Reason:
        assert not rec.allows(reason), f"{reason.name} must not leave FAKE"
    assert [(t.source, t.target) for t in rec.history] == [
        (S.UNKNOWN, S.UNVERIFIED),
        (S.UNVERIFIED, S.FAKE),
    ]


def test_every_reason_has_one_target_and_sources() -> None:
    assert set(TRANSITIONS) == set(Reason)
    for target, sources in TRANSITIONS.values():
        assert sources and target not in (S.UNKNOWN,)


def test_history_is_bounded_when_statuses_flip() -> None:
    core = announced()
    trusted(core, addr(2), addr(3))
    for i in range(200):
        v = Verdict.BAD if i % 2 == 0 else Verdict.GOOD
        for p in (addr(2), addr(3)):
            core.accept_answer(answer(p, HUB, v, float(i)), float(i))
    assert len(core.record(HUB).history) == 64


def test_every_period_a_hub_may_offer_is_one_an_agreement_can_state() -> None:
    """The hub's `workers.payout_period` and the agreement share one range: a hub
    paying every few seconds has workers whose evidence judges it."""
    import dataclasses

    from p2pnode.config import WorkersSection
    from p2pnode.errors import UserError
    from reputation.evidence import MAX_PAYOUT_PERIOD_S, MIN_PAYOUT_PERIOD_S, Agreement

    base = Agreement(addr(1), HUB, RATE, MIN_PAYOUT_PERIOD_S, 0.0)
    for period in (MIN_PAYOUT_PERIOD_S, 4, MAX_PAYOUT_PERIOD_S):
        WorkersSection(payout_period=float(period)).validate()
        dataclasses.replace(base, payout_period_s=period).validate()
    for period in (MIN_PAYOUT_PERIOD_S - 1, MAX_PAYOUT_PERIOD_S + 1):
        with pytest.raises(UserError, match=r"workers\.payout_period"):
            WorkersSection(payout_period=float(period)).validate()
        with pytest.raises(ValueError, match=r"payout_period_s: must be in \[1, 31536000\]"):
            dataclasses.replace(base, payout_period_s=period).validate()


def test_a_hub_paying_every_few_seconds_is_judged_with_a_short_grace() -> None:
    """Paydays every 4 s, judged 10 s after each: the first paid (safe), the second
    not (suspected)."""
    from reputation.evidence import Agreement
    from reputation.params import ReputationParams, StatusParams

    core = sim_node(addr(1), ReputationParams(status=StatusParams(payment_grace_s=10.0)))
    core.hub_announced(HUB, True, 0.0)
    core.add_agreement(Agreement(addr(1), HUB, 3600, 4, 100.0))
    assert core.next_deadline() == 114.0
    pay(core, HUB, 4, 107.0)  # late, within the grace
    core.on_timer(114.0)
    assert last(core)[1:] == (S.UNVERIFIED, S.SAFE, Reason.PAYMENT_MATCHED)
    core.on_timer(118.0)
    assert last(core) == (118.0, S.SAFE, S.SUSPECTED, Reason.PAYMENT_MISSED)
