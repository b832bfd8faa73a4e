"""Each score component P1-P7 in isolation, in virtual time, without a network.

Every test builds parameters where only the component under test has a weight, so the
score is that component alone and the expected value follows from the spec's formula.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import pytest

from gossip.score import PeerScore
from gossip.score_params import PeerScoreParams, ScoreParameterError, TopicScoreParams
from gossip.validation import ValidationResult

T = "topic-a"
U = "topic-b"
A, B, C = b"peer-a", b"peer-b", b"peer-c"


def quiet_topic(**overrides: float) -> TopicScoreParams:
    """A topic where every component is off unless named in `overrides`."""
    base: dict[str, float] = dict(
        topic_weight=1.0,
        time_in_mesh_weight=0.0,
        time_in_mesh_quantum=1.0,
        time_in_mesh_cap=1.0,
        first_message_deliveries_weight=0.0,
        first_message_deliveries_decay=0.5,
        first_message_deliveries_cap=1.0,
        mesh_message_deliveries_weight=0.0,
        mesh_message_deliveries_decay=0.5,
        mesh_message_deliveries_cap=1.0,
        mesh_message_deliveries_threshold=1.0,
        mesh_message_deliveries_window=0.0,
        mesh_message_deliveries_activation=1.0,
        mesh_failure_penalty_weight=0.0,
        mesh_failure_penalty_decay=0.5,
        invalid_message_deliveries_weight=0.0,
        invalid_message_deliveries_decay=0.5,
    )
    base.update(overrides)
    return TopicScoreParams(**base)


def quiet_params(
    topics: Mapping[str, TopicScoreParams] | None = None, **overrides: Any
) -> PeerScoreParams:
    base: dict[str, Any] = dict(
        topics=topics if topics is not None else {T: quiet_topic()},
        topic_score_cap=0.0,
        app_specific_weight=0.0,
        ip_colocation_factor_weight=0.0,
        ip_colocation_factor_threshold=1,
        behaviour_penalty_weight=0.0,
        behaviour_penalty_threshold=0.0,
        behaviour_penalty_decay=0.5,
        decay_interval=1.0,
        decay_to_zero=0.01,
        retain_score=10.0,
        seen_msg_ttl=120.0,
    )
    base.update(overrides)
    return PeerScoreParams(**base)


def run_refresh(ps: PeerScore, start: float, end: float, step: float = 1.0) -> None:
    t = start
    while t <= end + 1e-9:
        ps.refresh(t)
        t += step


def deliver(ps: PeerScore, msg_id: bytes, first: bytes, topic: str, now: float) -> None:
    ps.validate_message(msg_id, first, topic, now)
    ps.deliver_message(msg_id, first, topic, now)


# ---------------------------------------------------------------------------------- P1


def test_p1_grows_in_whole_quanta_with_time_in_mesh_and_caps() -> None:
    tp = quiet_topic(time_in_mesh_weight=0.5, time_in_mesh_quantum=2.0, time_in_mesh_cap=5.0)
    ps = PeerScore(quiet_params({T: tp}))
    ps.add_peer(A, 0.0)
    ps.refresh(0.0)
    ps.graft(A, T, 0.0)
    seen = []
    for t in range(1, 16):
        ps.refresh(float(t))
        seen.append(ps.score(A, float(t)))
    # floor(t / quantum) quanta, capped at 5, times the weight
    assert seen == [min(math.floor(t / 2.0), 5.0) * 0.5 for t in range(1, 16)]
    assert seen[-1] == 2.5
    # time in mesh is sampled at refresh, not read from `now` at each score() call
    assert ps.score(A, 1000.0) == 2.5
    ps.prune(A, T, 16.0)
    assert ps.score(A, 16.0) == 0.0


def test_p1_restarts_on_regraft() -> None:
    tp = quiet_topic(time_in_mesh_weight=1.0, time_in_mesh_quantum=1.0, time_in_mesh_cap=100.0)
    ps = PeerScore(quiet_params({T: tp}))
    ps.add_peer(A, 0.0)
    ps.graft(A, T, 0.0)
    run_refresh(ps, 0.0, 10.0)
    assert ps.score(A, 10.0) == 10.0
    ps.prune(A, T, 10.0)
    ps.graft(A, T, 10.0)
    assert ps.score(A, 10.0) == 0.0
    run_refresh(ps, 11.0, 13.0)
    assert ps.score(A, 13.0) == 3.0


# ---------------------------------------------------------------------------------- P2


def test_p2_counts_first_deliveries_caps_and_decays() -> None:
    tp = quiet_topic(
        first_message_deliveries_weight=2.0,
        first_message_deliveries_decay=0.5,
        first_message_deliveries_cap=3.0,
    )
    ps = PeerScore(quiet_params({T: tp}))
    ps.add_peer(A, 0.0)
    ps.add_peer(B, 0.0)
    ps.refresh(0.0)
    deliver(ps, b"m1", A, T, 0.1)
    assert ps.score(A, 0.1) == 2.0
    ps.duplicate_message(b"m1", B, T, 0.2)  # a duplicate is not a first delivery
    assert ps.score(B, 0.2) == 0.0
    for i in range(2, 7):
        deliver(ps, b"m%d" % i, A, T, 0.1 * i)
    assert ps.score(A, 0.7) == 6.0  # capped at 3 deliveries
    ps.refresh(1.0)
    assert ps.score(A, 1.0) == 3.0  # 3 * 0.5 * weight 2
    ps.refresh(2.0)
    assert ps.score(A, 2.0) == 1.5


def test_p2_ignores_unscored_topics_and_unknown_peers() -> None:
    tp = quiet_topic(first_message_deliveries_weight=1.0, first_message_deliveries_cap=10.0)
    ps = PeerScore(quiet_params({T: tp}))
    ps.add_peer(A, 0.0)
    deliver(ps, b"m1", A, "not-scored", 0.0)
    deliver(ps, b"m2", C, T, 0.0)  # never added
    assert ps.score(A, 0.0) == 0.0
    assert ps.score(C, 0.0) == 0.0
    assert ps.snapshot(C, 0.0) is None
    assert ps.snapshot(A, 0.0) is not None
    assert ps.snapshot(A, 0.0).topics == {}  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------- P3


def p3_topic(**overrides: float) -> TopicScoreParams:
    values: dict[str, float] = dict(
        mesh_message_deliveries_weight=-1.0,
        mesh_message_deliveries_decay=0.9,
        mesh_message_deliveries_cap=10.0,
        mesh_message_deliveries_threshold=4.0,
        mesh_message_deliveries_window=0.5,
        mesh_message_deliveries_activation=5.0,
    )
    values.update(overrides)
    return quiet_topic(**values)


def test_p3_deficit_activates_only_after_the_activation_window_and_is_squared() -> None:
    ps = PeerScore(quiet_params({T: p3_topic()}))
    ps.add_peer(A, 0.0)
    ps.refresh(0.0)
    ps.graft(A, T, 0.0)
    deliver(ps, b"m1", A, T, 0.5)  # one mesh delivery: deficit 3
    for t in range(1, 6):
        ps.refresh(float(t))
        # mesh time must exceed (not reach) the activation window
        assert ps.score(A, float(t)) == 0.0, t
    ps.refresh(6.0)
    count = 0.9**6
    assert ps.score(A, 6.0) == pytest.approx(-((4.0 - count) ** 2))
    snap = ps.snapshot(A, 6.0)
    assert snap is not None and snap.topics[T].mesh_message_deliveries_active


def test_p3_no_penalty_at_or_above_threshold_and_counter_capped() -> None:
    tp = p3_topic(mesh_message_deliveries_cap=6.0, mesh_message_deliveries_decay=0.95)
    ps = PeerScore(quiet_params({T: tp}))
    ps.add_peer(A, 0.0)
    ps.refresh(0.0)
    ps.graft(A, T, 0.0)
    for i in range(20):
        deliver(ps, b"m%d" % i, A, T, 0.01 * i)
    snap = ps.snapshot(A, 0.5)
    assert snap is not None and snap.topics[T].mesh_message_deliveries == 6.0
    run_refresh(ps, 1.0, 6.0)
    assert 6.0 * 0.95**6 >= 4.0
    assert ps.score(A, 6.0) == 0.0  # active, but at or above the threshold
    run_refresh(ps, 7.0, 12.0)
    count = 6.0 * 0.95**12
    assert count < 4.0
    assert ps.score(A, 12.0) == pytest.approx(-((4.0 - count) ** 2))


def test_p3_credits_mesh_peers_during_validation_and_within_the_window_only() -> None:
    ps = PeerScore(quiet_params({T: p3_topic(mesh_message_deliveries_window=0.5)}))
    for p in (A, B, C):
        ps.add_peer(p, 0.0)
        ps.graft(p, T, 0.0)
    ps.validate_message(b"m", A, T, 1.0)
    ps.duplicate_message(b"m", B, T, 1.1)  # during validation: credited on accept
    ps.duplicate_message(b"m", B, T, 1.15)  # same peer twice: counted once
    ps.deliver_message(b"m", A, T, 1.2)
    ps.duplicate_message(b"m", C, T, 1.8)  # 0.6 s after validation: outside the window
    counts = {p: ps.snapshot(p, 2.0).topics[T].mesh_message_deliveries for p in (A, B, C)}  # type: ignore[union-attr]
    assert counts == {A: 1.0, B: 1.0, C: 0.0}
    ps.validate_message(b"n", A, T, 3.0)
    ps.deliver_message(b"n", A, T, 3.0)
    ps.duplicate_message(b"n", C, T, 3.4)  # within the window
    assert ps.snapshot(C, 3.4).topics[T].mesh_message_deliveries == 1.0  # type: ignore[union-attr]


def test_p3_counts_only_while_in_mesh() -> None:
    ps = PeerScore(quiet_params({T: p3_topic()}))
    ps.add_peer(A, 0.0)
    deliver(ps, b"m", A, T, 0.0)
    snap = ps.snapshot(A, 0.0)
    assert snap is not None and snap.topics[T].mesh_message_deliveries == 0.0


def test_p3b_sticky_penalty_on_prune_with_an_active_deficit() -> None:
    tp = p3_topic(mesh_failure_penalty_weight=-2.0, mesh_failure_penalty_decay=0.5)
    ps = PeerScore(quiet_params({T: tp}))
    ps.add_peer(A, 0.0)
    ps.add_peer(B, 0.0)
    ps.refresh(0.0)
    ps.graft(A, T, 0.0)
    ps.graft(B, T, 0.0)
    deliver(ps, b"m1", A, T, 0.5)
    run_refresh(ps, 1.0, 6.0)
    ps.prune(A, T, 6.0)
    deficit = 4.0 - 0.9**6
    # P3 no longer applies out of the mesh; P3b holds the deficit squared
    assert ps.score(A, 6.0) == pytest.approx(-2.0 * deficit**2)
    ps.refresh(7.0)
    assert ps.score(A, 7.0) == pytest.approx(-2.0 * deficit**2 * 0.5)
    # pruned before activation: no sticky penalty
    ps.graft(C, T, 6.0)  # C unknown: ignored
    ps.prune(B, T, 7.0)
    snap = ps.snapshot(B, 7.0)
    assert snap is not None and snap.topics[T].mesh_failure_penalty == pytest.approx(
        16.0
    )  # B was active too, with no deliveries at all: deficit 4, squared
    ps.add_peer(C, 7.0)
    ps.graft(C, T, 7.0)
    ps.prune(C, T, 8.0)
    assert ps.snapshot(C, 8.0).topics[T].mesh_failure_penalty == 0.0  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------- P4


def p4_params() -> PeerScoreParams:
    tp = quiet_topic(invalid_message_deliveries_weight=-3.0, invalid_message_deliveries_decay=0.5)
    return quiet_params({T: tp})


def test_p4_is_the_squared_count_of_invalid_messages() -> None:
    ps = PeerScore(p4_params())
    ps.add_peer(A, 0.0)
    ps.refresh(0.0)
    for i, expected in enumerate([-3.0, -12.0, -27.0]):
        ps.validate_message(b"bad%d" % i, A, T, 0.1)
        ps.reject_message(b"bad%d" % i, A, T, ValidationResult.REJECT, 0.2)
        assert ps.score(A, 0.2) == expected
    ps.refresh(1.0)
    assert ps.score(A, 1.0) == -3.0 * 1.5**2


def test_p4_reject_penalises_every_forwarder_during_validation_and_after() -> None:
    ps = PeerScore(p4_params())
    for p in (A, B, C):
        ps.add_peer(p, 0.0)
    ps.validate_message(b"bad", A, T, 1.0)
    ps.duplicate_message(b"bad", B, T, 1.1)
    ps.reject_message(b"bad", A, T, ValidationResult.REJECT, 1.2)
    assert (ps.score(A, 1.2), ps.score(B, 1.2), ps.score(C, 1.2)) == (-3.0, -3.0, 0.0)
    ps.duplicate_message(b"bad", C, T, 1.3)  # sent after the verdict: penalised too
    assert ps.score(C, 1.3) == -3.0
    # a second verdict on the same message changes nothing
    ps.reject_message(b"bad", A, T, ValidationResult.REJECT, 1.4)
    assert ps.score(A, 1.4) == -3.0


def test_p4_ignore_blames_nobody() -> None:
    ps = PeerScore(p4_params())
    for p in (A, B, C):
        ps.add_peer(p, 0.0)
    ps.validate_message(b"stale", A, T, 1.0)
    ps.duplicate_message(b"stale", B, T, 1.1)
    ps.reject_message(b"stale", A, T, ValidationResult.IGNORE, 1.2)
    ps.duplicate_message(b"stale", C, T, 1.3)
    assert [ps.score(p, 1.3) for p in (A, B, C)] == [0.0, 0.0, 0.0]


def test_p4_reject_unvalidated_penalises_only_the_sender() -> None:
    ps = PeerScore(p4_params())
    ps.add_peer(A, 0.0)
    ps.add_peer(B, 0.0)
    ps.reject_unvalidated(A, T, 1.0)
    assert ps.score(A, 1.0) == -3.0
    assert ps.delivery_records() == 0


def test_p4_accept_is_not_a_rejection() -> None:
    ps = PeerScore(p4_params())
    with pytest.raises(ValueError, match="deliver_message"):
        ps.reject_message(b"m", A, T, ValidationResult.ACCEPT, 0.0)


# ---------------------------------------------------------------------------------- P5


def test_p5_is_the_app_score_times_its_weight() -> None:
    ps = PeerScore(quiet_params(app_specific_weight=0.5))
    ps.set_app_score(A, 40.0)  # ahead of the connection
    ps.add_peer(A, 0.0)
    ps.add_peer(B, 0.0)
    assert ps.score(A, 0.0) == 20.0
    ps.set_app_score(B, -10.0)
    assert ps.score(B, 0.0) == -5.0
    ps.set_app_score(B, 0.0)
    assert ps.score(B, 0.0) == 0.0
    with pytest.raises(ValueError, match="finite"):
        ps.set_app_score(A, math.nan)


# ---------------------------------------------------------------------------------- P6


def p6_params(**overrides: Any) -> PeerScoreParams:
    values: dict[str, Any] = dict(
        ip_colocation_factor_weight=-1.0, ip_colocation_factor_threshold=2
    )
    values.update(overrides)
    return quiet_params(**values)


def test_p6_squares_the_surplus_over_the_threshold() -> None:
    ps = PeerScore(p6_params())
    peers = [b"s%d" % i for i in range(5)]
    for n, p in enumerate(peers, start=1):
        ps.add_peer(p, 0.0, ip="203.0.113.7")
        surplus = max(0, n - 2)
        # every peer on the IP shares the penalty, the earlier ones included
        assert [ps.score(q, 0.0) for q in peers[:n]] == [-float(surplus**2)] * n
    ps.add_peer(A, 0.0, ip="198.51.100.1")
    assert ps.score(A, 0.0) == 0.0
    # leaving the IP lifts the penalty of the others
    ps.set_ip(peers[0], "198.51.100.2")
    assert ps.score(peers[1], 0.0) == -4.0
    ps.set_ip(peers[1], None)
    assert ps.score(peers[2], 0.0) == -1.0


def test_p6_whitelist_and_loopback_are_exempt() -> None:
    ps = PeerScore(p6_params(ip_colocation_factor_whitelist=("10.0.0.0/8",)))
    for i in range(5):
        ps.add_peer(b"w%d" % i, 0.0, ip="10.1.2.3")
        ps.add_peer(b"l%d" % i, 0.0, ip="127.0.0.1")
    assert ps.score(b"w4", 0.0) == 0.0
    assert ps.score(b"l4", 0.0) == 0.0


def test_p6_ipv6_peers_in_one_64_share_a_penalty() -> None:
    ps = PeerScore(p6_params())
    for i in range(4):
        ps.add_peer(b"v%d" % i, 0.0, ip=f"2001:db8:1:2::{i + 1}")
    # four distinct addresses, one /64: surplus 2 on the subnet key only
    assert ps.score(b"v0", 0.0) == -4.0
    ps2 = PeerScore(p6_params(ip_colocation_factor_whitelist=("2001:db8::/32",)))
    for i in range(4):
        ps2.add_peer(b"v%d" % i, 0.0, ip=f"2001:db8:1:2::{i + 1}")
    assert ps2.score(b"v0", 0.0) == 0.0


def test_p6_rejects_a_non_address() -> None:
    ps = PeerScore(p6_params())
    ps.add_peer(A, 0.0)
    with pytest.raises(ValueError, match="not an IP address"):
        ps.set_ip(A, "host.example")


# ---------------------------------------------------------------------------------- P7


def test_p7_behaviour_penalty_applies_over_the_threshold_squared_and_decays() -> None:
    ps = PeerScore(
        quiet_params(
            behaviour_penalty_weight=-2.0,
            behaviour_penalty_threshold=3.0,
            behaviour_penalty_decay=0.5,
        )
    )
    ps.add_peer(A, 0.0)
    ps.refresh(0.0)
    ps.add_penalty(A, 3)
    assert ps.score(A, 0.0) == 0.0  # at the threshold: nothing yet
    ps.add_penalty(A, 2)
    assert ps.score(A, 0.0) == -2.0 * (5.0 - 3.0) ** 2
    ps.add_penalty(A, 5)
    assert ps.score(A, 0.0) == -2.0 * 7.0**2
    ps.refresh(1.0)  # 10 -> 5
    assert ps.score(A, 1.0) == -2.0 * 2.0**2
    ps.refresh(2.0)  # 5 -> 2.5, under the threshold
    assert ps.score(A, 2.0) == 0.0
    ps.add_penalty(C, 100)  # unknown peer: ignored
    assert ps.score(C, 2.0) == 0.0


# ---------------------------------------------------------------------------------- decay


def test_counters_decay_to_zero_below_decay_to_zero() -> None:
    tp = quiet_topic(
        first_message_deliveries_weight=1.0,
        first_message_deliveries_decay=0.5,
        first_message_deliveries_cap=100.0,
    )
    ps = PeerScore(quiet_params({T: tp}, decay_to_zero=0.1))
    ps.add_peer(A, 0.0)
    ps.refresh(0.0)
    deliver(ps, b"m", A, T, 0.0)
    values = []
    for t in range(1, 6):
        ps.refresh(float(t))
        values.append(ps.score(A, float(t)))
    # 0.5, 0.25, 0.125, then 0.0625 < 0.1 snaps to exactly zero
    assert values == [0.5, 0.25, 0.125, 0.0, 0.0]


def test_decay_catches_up_by_whole_intervals() -> None:
    tp = quiet_topic(
        first_message_deliveries_weight=1.0,
        first_message_deliveries_decay=0.5,
        first_message_deliveries_cap=100.0,
    )
    ps = PeerScore(quiet_params({T: tp}, decay_interval=2.0, decay_to_zero=0.001))
    ps.add_peer(A, 0.0)
    ps.refresh(0.0)
    for i in range(8):
        deliver(ps, b"m%d" % i, A, T, 0.0)
    ps.refresh(1.0)  # less than one interval: no decay
    assert ps.score(A, 1.0) == 8.0
    ps.refresh(2.5)  # one interval
    assert ps.score(A, 2.5) == 4.0
    ps.refresh(8.0)  # from 2.0 to 8.0: three more
    assert ps.score(A, 8.0) == 0.5


# ---------------------------------------------------------------------------------- retention


def retention_params() -> PeerScoreParams:
    tp = quiet_topic(
        first_message_deliveries_weight=1.0,
        first_message_deliveries_decay=0.5,
        first_message_deliveries_cap=100.0,
        invalid_message_deliveries_weight=-1.0,
        invalid_message_deliveries_decay=0.5,
        mesh_message_deliveries_weight=-1.0,
        mesh_message_deliveries_threshold=2.0,
        mesh_message_deliveries_cap=10.0,
        mesh_message_deliveries_activation=1.0,
        mesh_failure_penalty_weight=-1.0,
    )
    return quiet_params({T: tp}, retain_score=10.0)


def test_negative_score_is_retained_after_disconnect_without_decay() -> None:
    ps = PeerScore(retention_params())
    ps.add_peer(A, 0.0)
    ps.refresh(0.0)
    ps.graft(A, T, 0.0)
    deliver(ps, b"m", A, T, 0.0)  # a first delivery: +1, dropped on disconnect
    for i in range(3):
        ps.validate_message(b"bad%d" % i, A, T, 0.0)
        ps.reject_message(b"bad%d" % i, A, T, ValidationResult.REJECT, 0.0)
    ps.refresh(1.0)
    ps.refresh(2.0)  # active now, mesh deliveries 0.25: deficit 1.75
    assert ps.score(A, 2.0) < 0
    ps.remove_peer(A, 2.0)
    snap = ps.snapshot(A, 2.0)
    assert snap is not None and not snap.connected
    topic = snap.topics[T]
    assert topic.first_message_deliveries == 0.0
    assert not topic.in_mesh
    assert topic.mesh_failure_penalty == pytest.approx(1.75**2)  # deficit made sticky
    retained = ps.score(A, 2.0)
    assert retained == pytest.approx(-(0.75**2) - 1.75**2)
    run_refresh(ps, 3.0, 12.0)  # no decay while away, kept through retain_score
    assert ps.score(A, 12.0) == retained
    ps.add_peer(A, 12.0)  # reconnecting does not wash the score
    assert ps.score(A, 12.0) == retained
    assert ps.is_connected(A)


def test_retained_record_expires_after_retain_score() -> None:
    ps = PeerScore(retention_params())
    ps.add_peer(A, 0.0, ip="203.0.113.9")
    ps.reject_unvalidated(A, T, 0.0)
    ps.remove_peer(A, 1.0)
    ps.refresh(11.0)
    assert A in ps.peers()
    ps.refresh(11.5)
    assert A not in ps.peers()
    assert ps.score(A, 11.5) == 0.0
    assert ps._peer_ips == {}  # colocation tracking released with the record


def test_positive_score_is_forgotten_on_disconnect() -> None:
    ps = PeerScore(retention_params())
    ps.add_peer(A, 0.0)
    deliver(ps, b"m", A, T, 0.0)
    assert ps.score(A, 0.0) == 1.0
    ps.remove_peer(A, 1.0)
    assert A not in ps.peers()
    ps.add_peer(A, 2.0)
    assert ps.score(A, 2.0) == 0.0


# ---------------------------------------------------------------------------------- weights


def test_topic_weights_and_the_topic_cap() -> None:
    common = dict(first_message_deliveries_decay=0.5, first_message_deliveries_cap=100.0)
    topics = {
        T: quiet_topic(topic_weight=2.0, first_message_deliveries_weight=1.0, **common),
        U: quiet_topic(
            topic_weight=0.5,
            first_message_deliveries_weight=1.0,
            invalid_message_deliveries_weight=-1.0,
            **common,
        ),
    }
    ps = PeerScore(quiet_params(topics, topic_score_cap=10.0, app_specific_weight=1.0))
    ps.add_peer(A, 0.0)
    for i in range(3):
        deliver(ps, b"t%d" % i, A, T, 0.0)
    deliver(ps, b"u", A, U, 0.0)
    assert ps.score(A, 0.0) == 3 * 2.0 + 1 * 0.5
    for i in range(3, 10):
        deliver(ps, b"t%d" % i, A, T, 0.0)
    assert ps.score(A, 0.0) == 10.0  # 20.5 capped
    ps.set_app_score(A, 5.0)
    assert ps.score(A, 0.0) == 15.0  # P5 is outside the topic cap
    # the cap limits rewards only: penalties go through
    for _ in range(10):
        ps.reject_unvalidated(A, U, 0.0)
    assert ps.score(A, 0.0) == pytest.approx(20.5 - 100 * 0.5 + 5.0)


# ---------------------------------------------------------------------------------- records


def test_delivery_records_expire_after_seen_msg_ttl() -> None:
    ps = PeerScore(quiet_params(p4_params().topics, seen_msg_ttl=5.0))
    ps.add_peer(A, 0.0)
    ps.add_peer(B, 0.0)
    ps.refresh(0.0)
    for i in range(100):
        ps.validate_message(b"old%d" % i, A, T, 0.0)
    ps.validate_message(b"bad", A, T, 1.0)
    ps.reject_message(b"bad", A, T, ValidationResult.REJECT, 1.0)
    ps.refresh(5.0)
    assert ps.delivery_records() == 101  # not yet past the TTL
    ps.refresh(5.5)
    assert ps.delivery_records() == 1  # the 100 from t=0 are gone, "bad" (t=1) stays
    ps.duplicate_message(b"bad", B, T, 5.5)  # still remembered as invalid
    assert ps.score(B, 5.5) == -3.0
    ps.refresh(6.5)
    assert ps.delivery_records() == 0
    # once forgotten, a late copy is a new unknown message: no verdict, no penalty
    ps.duplicate_message(b"bad", A, T, 6.5)
    assert ps.snapshot(A, 6.5).topics[T].invalid_message_deliveries == 1.0 * 0.5**6  # type: ignore[union-attr]


def test_set_topic_params_recaps_counters_and_scores_new_topics() -> None:
    tp = quiet_topic(first_message_deliveries_weight=1.0, first_message_deliveries_cap=10.0)
    ps = PeerScore(quiet_params({T: tp}))
    ps.add_peer(A, 0.0)
    for i in range(8):
        deliver(ps, b"m%d" % i, A, T, 0.0)
    assert ps.score(A, 0.0) == 8.0
    ps.set_topic_params(T, dataclasses.replace(tp, first_message_deliveries_cap=5.0))
    assert ps.score(A, 0.0) == 5.0
    deliver(ps, b"u", A, U, 0.0)  # not scored yet
    ps.set_topic_params(U, dataclasses.replace(tp, topic_weight=2.0))
    deliver(ps, b"u2", A, U, 0.0)
    assert ps.score(A, 0.0) == 7.0
    assert set(ps.params.topics) == {T, U}
    with pytest.raises(ScoreParameterError, match=r"topics\['x'\].topic_weight"):
        ps.set_topic_params("x", dataclasses.replace(tp, topic_weight=-1.0))
