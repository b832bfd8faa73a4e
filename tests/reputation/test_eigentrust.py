"""Global trust: the power iteration against stationary vectors computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from reputation.eigentrust import GlobalTrust, build_rows, power_iteration
from reputation.evidence import Verdict
from reputation.params import EigenTrustParams, ScoreFeedParams
from reputation.score import app_scores, app_specific_score
from reputation.trust import similarity

A, B, C, D = b"a", b"b", b"c", b"d"
EXACT = EigenTrustParams(epsilon=1e-13, credibility=False)


def test_cycle_with_one_pretrusted_peer() -> None:
    # a -> b -> c -> a, p = a, alpha = 1/2:
    # t_a = 1/2 t_c + 1/2, t_b = 1/2 t_a, t_c = 1/2 t_b  =>  t = (4/7, 2/7, 1/7)
    g = GlobalTrust(EigenTrustParams(alpha=0.5, epsilon=1e-13, credibility=False))
    t = g.update({A: {B: 1.0}, B: {C: 1.0}, C: {A: 1.0}}, {A: 1.0}, peers=[A, B, C])
    assert t[A] == pytest.approx(4 / 7, abs=1e-12)
    assert t[B] == pytest.approx(2 / 7, abs=1e-12)
    assert t[C] == pytest.approx(1 / 7, abs=1e-12)


def test_uneven_trust_split() -> None:
    # a trusts b 3:1 over c; b and c trust a; p = uniform, alpha = 0.2.
    # t_a = 0.8 (t_b + t_c) + 0.2/3; t_b = 0.8 * 0.75 t_a + 0.2/3; t_c = 0.8 * 0.25 t_a + 0.2/3
    # with t_b + t_c = 1 - t_a: t_a = 0.8 (1 - t_a) + 1/15  =>  t_a = (0.8 + 1/15) / 1.8
    g = GlobalTrust(EigenTrustParams(alpha=0.2, epsilon=1e-13, credibility=False))
    t = g.update(
        {A: {B: 3.0, C: 1.0}, B: {A: 1.0}, C: {A: 1.0}},
        {A: 1.0, B: 1.0, C: 1.0},
        peers=[A, B, C],
    )
    ta = (0.8 + 1 / 15) / 1.8
    assert t[A] == pytest.approx(ta, abs=1e-12)
    assert t[B] == pytest.approx(0.6 * ta + 0.2 / 3, abs=1e-12)
    assert t[C] == pytest.approx(0.2 * ta + 0.2 / 3, abs=1e-12)
    assert sum(t.values()) == pytest.approx(1.0, abs=1e-12)


def test_a_peer_with_no_row_defers_to_the_pretrusted() -> None:
    # b trusts no one, so its mass goes to p = a; a trusts b.
    # t_a = (1 - alpha) t_b + alpha, t_b = (1 - alpha) t_a  => t_a = 1 / (2 - alpha)
    alpha = 0.3
    g = GlobalTrust(EigenTrustParams(alpha=alpha, epsilon=1e-13, credibility=False))
    t = g.update({A: {B: 1.0}}, {A: 1.0}, peers=[A, B])
    assert t[A] == pytest.approx(1 / (2 - alpha), abs=1e-12)
    assert t[B] == pytest.approx((1 - alpha) / (2 - alpha), abs=1e-12)


def test_a_liar_clique_nobody_honest_trusts_gets_nothing() -> None:
    rows = {A: {B: 1.0}, B: {A: 1.0}, C: {D: 1.0}, D: {C: 1.0}}
    g = GlobalTrust(EXACT)
    t = g.update(rows, {A: 1.0})
    assert t[C] == 0.0 and t[D] == 0.0
    assert set(g.units()) == {A, B}  # units count only peers someone trusts
    assert sum(g.units().values()) == pytest.approx(2.0)


def test_credibility_stops_a_lying_recommender_from_passing_trust_on() -> None:
    # b is trusted by a, and vouches for c (a liar). With b's credibility 0 its row
    # is ignored and c gets nothing; with credibility 1 c gets a share.
    rows = {A: {B: 1.0}, B: {C: 1.0}}
    plain = GlobalTrust(EigenTrustParams(epsilon=1e-13, credibility=False))
    assert plain.update(rows, {A: 1.0}, peers=[A, B, C])[C] > 0.1
    guarded = GlobalTrust(EigenTrustParams(epsilon=1e-13, credibility=True))
    t = guarded.update(rows, {A: 1.0}, {A: 1.0, B: 0.0}, peers=[A, B, C])
    assert t[C] == 0.0


def test_similarity_is_the_share_of_common_hubs_agreed_on() -> None:
    h1, h2, h3 = b"1", b"2", b"3"
    ours = {h1: Verdict.GOOD, h2: Verdict.BAD}
    assert similarity(ours, {h1: Verdict.GOOD, h2: Verdict.GOOD, h3: Verdict.BAD}) == 0.5
    assert similarity(ours, {h3: Verdict.BAD}) == 0.0
    assert similarity(ours, {h3: Verdict.BAD}, unknown=0.5) == 0.5


def test_warm_start_converges_in_fewer_iterations() -> None:
    rng = np.random.default_rng(7)
    peers = [bytes([i]) for i in range(200)]
    rows = {
        p: {peers[j]: float(rng.random()) for j in rng.choice(200, 8, replace=False)} for p in peers
    }
    params = EigenTrustParams(alpha=0.1, epsilon=1e-10, credibility=False)
    g = GlobalTrust(params)
    g.update(rows, {peers[0]: 1.0}, peers=peers)
    cold = g.last_iterations
    rows[peers[5]] = {peers[6]: 1.0}  # one peer changes its opinion
    t_warm = g.update(rows, {peers[0]: 1.0}, peers=peers)
    warm = g.last_iterations
    t_cold = GlobalTrust(params).update(rows, {peers[0]: 1.0}, peers=peers)
    assert warm < cold
    assert max(abs(t_warm[p] - t_cold[p]) for p in peers) < 1e-8


def test_power_iteration_refuses_a_bad_pretrusted_vector() -> None:
    c = build_rows({A: 0, B: 1}, {A: {B: 1.0}})
    with pytest.raises(ValueError, match="distribution"):
        power_iteration(c, np.array([0.5, 0.2]), EXACT)


def test_score_feed_maps_trust_to_p5() -> None:
    p = ScoreFeedParams()
    assert app_specific_score(0.0, p) == 0.0
    assert app_specific_score(1.0, p) == 10.0
    assert app_specific_score(10.0, p) == 100.0  # reaches accept_px_threshold
    assert app_specific_score(1e9, p) == p.cap
    assert app_specific_score(float("nan"), p) == 0.0
    scores = app_scores({A: 0.5, B: 0.5, C: 0.0}, p)
    assert scores == {A: 15.0, B: 15.0, C: 0.0}
