"""How answers weigh: trust in who answered, liars caught by our own evidence, fresh ids."""

from __future__ import annotations

from reputation.eigentrust import GlobalTrust
from reputation.evidence import Agreement, Verdict
from reputation.params import EigenTrustParams
from reputation.state import HubStatus, Reason
from tests.reputation.helpers import (
    DAY,
    HOUR,
    HUB,
    OTHER_HUB,
    PERIOD,
    RATE,
    addr,
    answer,
    pay,
    sim_node,
    work_for,
)

HONEST = [addr(10), addr(11)]
LIARS = [addr(20), addr(21), addr(22)]


def test_three_liars_are_outvoted_by_two_trusted_honest_answers() -> None:
    core = sim_node(addr(1))
    core.hub_announced(HUB, True, 0.0)
    # the liars have earned a little trust somewhere; the honest answerers more
    core.set_global_trust({HONEST[0]: 1.5, HONEST[1]: 1.2, **dict.fromkeys(LIARS, 0.3)})
    now = 100.0
    for liar in LIARS:
        core.accept_answer(answer(liar, HUB, Verdict.BAD, now), now)
    # 0.9 of negative weight reached no threshold (suspect_weight 1.0): still unverified
    assert core.status(HUB) is HubStatus.UNVERIFIED
    for h in HONEST:
        core.accept_answer(answer(h, HUB, Verdict.GOOD, now), now)
    t = core.tally(HUB, now)
    assert (t.votes_good, t.votes_bad) == (2, 3)  # a plain majority would say "bad"
    assert core.majority(HUB, now) is Verdict.BAD
    assert t.positive == 2.7 and abs(t.negative - 0.9) < 1e-12
    assert core.status(HUB) is HubStatus.CHECKED
    assert core.record(HUB).reason is Reason.POSITIVE_ANSWERS


def test_a_liar_caught_by_our_evidence_loses_its_weight() -> None:
    core = sim_node(addr(1))
    core.hub_announced(HUB, True, 0.0)
    liar, honest = LIARS[0], HONEST[0]
    core.set_global_trust({liar: 2.0, honest: 1.0})
    work_for(core, HUB)
    pay(core, HUB, 24 * RATE, DAY)
    core.on_timer(DAY + HOUR)  # paid: the hub is safe for us
    t1 = DAY + 2 * HOUR
    core.accept_answer(answer(honest, HUB, Verdict.GOOD, t1), t1)
    assert core.weight(liar) == 2.0
    # the hub stops paying; the liar praises it after that (evidence dated now)
    core.on_timer(2 * DAY + HOUR)
    assert core.status(HUB) is HubStatus.SUSPECTED
    t2 = 2 * DAY + 2 * HOUR
    core.accept_answer(answer(liar, HUB, Verdict.GOOD, t2), t2)
    assert core.local.contradicted(liar)
    assert core.weight(liar) == 0.0
    assert core.counters["liars_caught"] == 1
    # the honest answer about the time the hub still paid is no lie: its weight stays
    assert not core.local.contradicted(honest)
    assert core.weight(honest) > 0
    # and the caught liar no longer moves our view of other hubs
    other = bytes.fromhex("cc" * 20)
    core.hub_announced(other, True, t2)
    core.accept_answer(answer(liar, other, Verdict.BAD, t2), t2)
    assert core.tally(other, t2).negative == 0.0
    assert core.status(other) is HubStatus.UNVERIFIED


def test_a_liar_slandering_a_hub_that_pays_us_is_caught_at_our_next_payday() -> None:
    core = sim_node(addr(1))
    core.hub_announced(HUB, True, 0.0)
    liar = LIARS[0]
    work_for(core, HUB)
    pay(core, HUB, 24 * RATE, DAY)
    core.on_timer(DAY + HOUR)
    t = DAY + 3 * HOUR
    core.accept_answer(answer(liar, HUB, Verdict.BAD, t), t)
    # "it stopped paying me after your last payday" cannot be judged yet
    assert core.local.counts(liar) == (0, 0)
    pay(core, HUB, 24 * RATE, 2 * DAY)
    core.on_timer(2 * DAY + HOUR)  # it paid us after the liar's claimed date
    assert core.local.contradicted(liar)
    assert core.status(HUB) is HubStatus.SAFE


def test_fresh_identities_with_no_evidence_move_nothing() -> None:
    core = sim_node(addr(1))
    core.hub_announced(HUB, True, 0.0)
    core.set_global_trust(dict.fromkeys(HONEST, 1.0))
    for h in HONEST:
        core.accept_answer(answer(h, HUB, Verdict.GOOD, 10.0), 10.0)
    assert core.status(HUB) is HubStatus.CHECKED
    before = list(core.record(HUB).history)
    fresh = [addr(1000 + i) for i in range(1000)]
    for i, f in enumerate(fresh):
        core.accept_answer(answer(f, HUB, Verdict.BAD, 20.0 + i), 20.0 + i)
    assert all(core.weight(f) == 0.0 for f in fresh)
    t = core.tally(HUB, 2000.0)
    assert t.negative == 0.0 and t.positive == 2.0
    assert core.status(HUB) is HubStatus.CHECKED
    assert list(core.record(HUB).history) == before
    # they did not push the trusted answers out of the capped table either
    table = core.answers[HUB]
    assert len(table) == len(HONEST) + core.params.poll.max_untrusted_answers_per_hub
    assert all(h in table for h in HONEST)
    # and a hub nobody trusted anyone about stays unverified whatever they say
    core.hub_announced(bytes.fromhex("dd" * 20), True, 0.0)
    for f in fresh[:50]:
        core.accept_answer(answer(f, bytes.fromhex("dd" * 20), Verdict.GOOD, 30.0), 30.0)
    assert core.status(bytes.fromhex("dd" * 20)) is HubStatus.UNVERIFIED


def test_local_trust_tracks_agreements_and_contradictions() -> None:
    core = sim_node(addr(1))
    core.hub_announced(HUB, True, 0.0)
    work_for(core, HUB)
    pay(core, HUB, 24 * RATE, DAY)
    core.on_timer(DAY + HOUR)
    for i in range(5):
        t = DAY + (2 + i) * HOUR
        core.accept_answer(answer(HONEST[0], HUB, Verdict.GOOD, t, last_seen=DAY), t)
    assert core.local.counts(HONEST[0]) == (5, 0)
    assert core.local.units(HONEST[0]) == 1.0  # the only peer we trust: the average
    assert core.local.row() == {HONEST[0]: 1.0}
    # one contradiction undoes `contradiction_penalty` (4) agreements
    core.accept_answer(answer(HONEST[0], HUB, Verdict.BAD, DAY + 8 * HOUR, last_seen=DAY), DAY)
    assert core.local.value(HONEST[0]) == 1.0
    assert not core.local.contradicted(HONEST[0])


def test_with_the_chain_payees_a_right_guess_earns_no_credit() -> None:
    core = sim_node(addr(1))
    core.hub_announced(HUB, True, 0.0)
    worker, guesser = HONEST[0], addr(99)
    core.set_chain_payees({HUB: {core.address: 1, worker: 2}})
    work_for(core, HUB)
    pay(core, HUB, 24 * RATE, DAY)
    core.on_timer(DAY + HOUR)
    t = DAY + 2 * HOUR
    core.accept_answer(answer(worker, HUB, Verdict.GOOD, t, last_seen=DAY), t)
    core.accept_answer(answer(guesser, HUB, Verdict.GOOD, t, last_seen=DAY), t)
    assert core.local.counts(worker) == (1, 0)  # the hub paid it: a real test passed
    # "it pays me" from an address the hub never paid is a lie, however right it sounds
    assert core.local.contradicted(guesser)
    assert core.weight(guesser) == 0.0


def test_reevaluate_all_decides_hubs_once_trust_arrives() -> None:
    core = sim_node(addr(1))
    core.hub_announced(HUB, True, 0.0)
    for h in HONEST:
        core.accept_answer(answer(h, HUB, Verdict.GOOD, 10.0), 10.0)
    assert core.status(HUB) is HubStatus.UNVERIFIED  # nobody trusted yet
    core.set_global_trust(dict.fromkeys(HONEST, 1.0))
    core.reevaluate_all(20.0)
    assert core.status(HUB) is HubStatus.CHECKED


def test_a_warning_is_trusted_bad_news_newer_than_our_last_payday() -> None:
    core = sim_node(addr(1))
    core.hub_announced(HUB, True, 0.0)
    honest, liar, fresh = HONEST[0], LIARS[0], addr(30)
    core.set_global_trust({honest: 0.4, liar: 0.0})
    now = 3 * DAY
    assert core.warning(HUB, now) == 0.0  # nothing heard
    # a liar's slander and a fresh identity's weigh nothing, however fresh their claim
    core.accept_answer(answer(liar, HUB, Verdict.BAD, now), now)
    core.accept_answer(answer(fresh, HUB, Verdict.BAD, now), now)
    assert core.warning(HUB, now) == 0.0
    # one trusted peer stiffed at 2.5 days: below suspect_weight, yet a warning
    core.accept_answer(answer(honest, HUB, Verdict.BAD, now, last_seen=2.5 * DAY), now)
    assert core.status(HUB) is HubStatus.UNVERIFIED
    assert abs(core.warning(HUB, now) - 0.4) < 1e-12
    # a positive answer does not cancel it (anyone can claim "it paid me just now")
    core.accept_answer(answer(addr(12), HUB, Verdict.GOOD, now), now)
    assert abs(core.warning(HUB, now) - 0.4) < 1e-12
    # the hub paying us after the peer's bad payday lifts it: its news is older than ours
    work_for(core, HUB, start=2 * DAY)
    pay(core, HUB, 24 * RATE, 3 * DAY)
    core.on_timer(3 * DAY + HOUR)
    assert core.warning(HUB, 3 * DAY + HOUR) == 0.0
    # and the answer ages out with answer_ttl
    other = sim_node(addr(2))
    other.hub_announced(HUB, True, 0.0)
    other.set_global_trust({honest: 0.4})
    other.accept_answer(answer(honest, HUB, Verdict.BAD, now, last_seen=2.5 * DAY), now)
    assert other.warning(HUB, now + 8 * DAY) == 0.0


def test_a_missed_first_payday_is_proven_on_chain_without_trust() -> None:
    """A new worker stiffed at its first payday has no weight anywhere yet; its "BAD"
    with its agreement is checked against the hub wallet's transfers instead."""
    stiffed, colleague = sim_node(addr(2)), sim_node(addr(3))
    last_paid: dict[bytes, dict[bytes, float]] = {HUB: {}}
    for core in (stiffed, colleague):
        core.hub_announced(HUB, True, 0.0)
        core.set_chain_last_paid(last_paid)
    ag = work_for(stiffed, HUB, start=DAY)
    work_for(colleague, HUB, start=0.0)
    pay(colleague, HUB, 24 * RATE, DAY)
    last_paid[HUB][colleague.address] = DAY
    colleague.on_timer(DAY + HOUR)
    assert stiffed.proof_for(HUB) is None  # its first payday has not come
    stiffed.on_timer(2 * DAY + HOUR)  # missed: nothing paid since it joined
    assert stiffed.proof_for(HUB) == ag
    (alert,) = stiffed.drain_alerts()
    now = 2 * DAY + HOUR
    assert colleague.weight(stiffed.address) == 0.0
    assert not colleague.accept_alert(alert, now)  # no weight, no proof: dropped
    assert colleague.accept_alert(alert, now, proof=ag)
    assert colleague.warning(HUB, now) == colleague.params.status.proof_weight == 1.0
    # a proof moves no status: only the weighted tally does
    assert colleague.status(HUB) is HubStatus.SAFE
    # the proof holds only while the wallet has paid the answerer nothing since
    last_paid[HUB][stiffed.address] = now
    assert colleague.warning(HUB, now) == 0.0


def test_a_proof_that_does_not_check_counts_for_nothing() -> None:
    core = sim_node(addr(1))
    core.hub_announced(HUB, True, 0.0)
    fresh = addr(30)
    ag = Agreement(fresh, HUB, RATE, PERIOD, 0.0)
    now = DAY + 2 * HOUR
    bad = answer(fresh, HUB, Verdict.BAD, now)
    assert not core.check_proof(bad, ag, now)  # the hub's wallet was never read
    core.set_chain_last_paid({HUB: {fresh: HOUR}})
    assert not core.check_proof(bad, ag, now)  # it paid the answerer after the start
    core.set_chain_last_paid({HUB: {}})
    assert core.check_proof(bad, ag, now)
    assert not core.check_proof(bad, ag, DAY + HOUR / 2)  # the payday's grace not over
    assert not core.check_proof(answer(fresh, HUB, Verdict.GOOD, now), ag, now)
    assert not core.check_proof(answer(addr(31), HUB, Verdict.BAD, now), ag, now)  # not its own
    assert not core.check_proof(answer(fresh, OTHER_HUB, Verdict.BAD, now), ag, now)
    # a proven answer from a peer nobody trusts is kept with the answers that count:
    # the untrusted corner's churn cannot push it out
    core.accept_answer(bad, now, proof=ag)
    assert core.answers[HUB][fresh].proof_start == 0.0
    assert fresh not in core._untrusted[HUB]
    assert core.warning(HUB, now) == 1.0
    assert core.tally(HUB, now).negative == 0.0  # and it weighs nothing in the tally


def test_one_average_peer_reaches_the_thresholds_whatever_the_float_rounding() -> None:
    """An average peer weighs 1.0 by definition, and `suspect_weight` (1.0) is one
    average peer's word. Ten pre-trusted peers (us and nine) nobody has tested yet are all average,
    but the power iteration hands each 0.9999999999999999 units; ten answers of 0.1
    add up to 0.9999999999999999 too. Neither may fall short of the threshold."""
    me = addr(1)
    peers = [addr(30 + i) for i in range(9)]
    gt = GlobalTrust(EigenTrustParams())
    gt.update({me: {}}, dict.fromkeys([me, *peers], 1.0), credibility={me: 1.0})
    units = gt.units()
    units.pop(me)
    assert all(abs(u - 1.0) < 1e-12 for u in units.values())
    assert min(units.values()) < 1.0  # the rounding this test is about
    core = sim_node(me)
    core.hub_announced(HUB, True, 0.0)
    core.set_global_trust(units)
    now = 100.0
    core.accept_answer(answer(peers[0], HUB, Verdict.BAD, now), now)
    assert core.status(HUB) is HubStatus.SUSPECTED
    assert core.record(HUB).reason is Reason.NEGATIVE_ANSWERS
    # ... and one of them, with another peer's word, makes a hub checked
    core.hub_announced(OTHER_HUB, True, 0.0)
    for p in peers[:2]:
        core.accept_answer(answer(p, OTHER_HUB, Verdict.GOOD, now), now)
    assert core.status(OTHER_HUB) is HubStatus.CHECKED
    # ten answers of a tenth of an average peer each are one average peer's word
    tenths = [addr(50 + i) for i in range(10)]
    third = addr(0xCC)
    core = sim_node(me)
    core.hub_announced(third, True, 0.0)
    core.set_global_trust(dict.fromkeys(tenths, 0.1))
    for p in tenths:
        core.accept_answer(answer(p, third, Verdict.BAD, now), now)
    assert core.tally(third, now).negative < 1.0  # the rounding this part is about
    assert core.status(third) is HubStatus.SUSPECTED


def test_one_untested_pretrusted_peer_warns_but_two_are_needed_to_suspect() -> None:
    """Six pre-trusted workers, us among them; we tested three of the others (they
    answered about the hub we work for). The two untested ones keep only what the
    anchor gives them, less than an average peer: one's "BAD" about a hub raises a
    warning and moves no status, and the other's joins it to make the hub suspected."""
    me = addr(1)
    colleagues = [addr(60 + i) for i in range(3)]
    strangers = [addr(70), addr(71)]
    gt = GlobalTrust(EigenTrustParams())
    pre = dict.fromkeys([me, *colleagues, *strangers], 1.0)
    gt.update({me: dict.fromkeys(colleagues, 1 / 3)}, pre, credibility={me: 1.0})
    units = gt.units()
    units.pop(me)
    assert round(units[strangers[0]], 3) == 0.876 and round(units[colleagues[0]], 3) == 1.124
    core = sim_node(me)
    core.hub_announced(HUB, True, 0.0)
    core.set_global_trust(units)
    now = 100.0
    core.accept_answer(answer(strangers[0], HUB, Verdict.BAD, now), now)
    assert core.status(HUB) is HubStatus.UNVERIFIED
    assert core.warning(HUB, now) == units[strangers[0]]
    core.accept_answer(answer(strangers[1], HUB, Verdict.BAD, now), now)
    assert core.status(HUB) is HubStatus.SUSPECTED
