"""Bounds of the score parameters and thresholds, the decay helper, and the defaults."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from gossip.score import PeerScore
from gossip.score_params import (
    HUBS_TOPIC,
    ORDERS_TOPIC,
    PEERS_TOPIC,
    TRUST_TOPIC,
    PeerScoreParams,
    PeerScoreThresholds,
    ScoreParameterError,
    TopicProfile,
    TopicScoreParams,
    decay_convergence,
    default_peer_score_params,
    default_thresholds,
    score_parameter_decay,
    topic_params_from_profile,
)
from p2pnode.errors import UserError

NAN = math.nan
INF = math.inf


# ------------------------------------------------------------------------- thresholds

THRESHOLD_CASES = [
    (dict(gossip_threshold=1.0), "gossip_threshold", "<= 0"),
    (dict(gossip_threshold=NAN), "gossip_threshold", "finite"),
    (dict(publish_threshold=1.0), "publish_threshold", "<= 0"),
    (dict(gossip_threshold=-10.0, publish_threshold=-5.0), "publish_threshold", "gossip_threshold"),
    (dict(graylist_threshold=1.0), "graylist_threshold", "<= 0"),
    (dict(publish_threshold=-8000.0, graylist_threshold=-100.0), "graylist_threshold", "publish"),
    (dict(graylist_threshold=-INF), "graylist_threshold", "finite"),
    (dict(accept_px_threshold=-1.0), "accept_px_threshold", ">= 0"),
    (dict(opportunistic_graft_threshold=-0.5), "opportunistic_graft_threshold", ">= 0"),
    (dict(opportunistic_graft_threshold=INF), "opportunistic_graft_threshold", "finite"),
]


@pytest.mark.parametrize(("changes", "name", "bound"), THRESHOLD_CASES)
def test_thresholds_validate_names_parameter_and_bound(
    changes: dict[str, float], name: str, bound: str
) -> None:
    t = dataclasses.replace(PeerScoreThresholds(), **changes)
    with pytest.raises(ScoreParameterError) as err:
        t.validate()
    assert err.value.parameter == name
    assert name in str(err.value) and bound in str(err.value)


def test_threshold_defaults_are_valid_and_ordered() -> None:
    t = default_thresholds()
    t.validate()
    assert t.graylist_threshold <= t.publish_threshold <= t.gossip_threshold <= 0
    assert t.accept_px_threshold >= 0 and t.opportunistic_graft_threshold >= 0
    # zeros are allowed at every bound
    PeerScoreThresholds(0.0, 0.0, 0.0, 0.0, 0.0).validate()


def test_errors_are_the_operators_fault_and_value_errors() -> None:
    with pytest.raises(UserError):
        PeerScoreThresholds(gossip_threshold=1.0).validate()
    with pytest.raises(ValueError):
        PeerScoreThresholds(gossip_threshold=1.0).validate()


# ------------------------------------------------------------------------- topic params

TOPIC_CASES = [
    (dict(topic_weight=-1.0), "topic_weight", ">= 0"),
    (dict(topic_weight=NAN), "topic_weight", "finite"),
    (dict(time_in_mesh_cap="3600"), "time_in_mesh_cap", "finite"),
    (dict(time_in_mesh_quantum=0.0), "time_in_mesh_quantum", "non-zero"),
    (dict(time_in_mesh_weight=-0.1), "time_in_mesh_weight", ">= 0"),
    (dict(time_in_mesh_quantum=-1.0), "time_in_mesh_quantum", "> 0"),
    (dict(time_in_mesh_cap=0.0), "time_in_mesh_cap", "> 0"),
    (dict(first_message_deliveries_weight=-1.0), "first_message_deliveries_weight", ">= 0"),
    (dict(first_message_deliveries_decay=1.0), "first_message_deliveries_decay", "< 1"),
    (dict(first_message_deliveries_decay=0.0), "first_message_deliveries_decay", "> 0"),
    (dict(first_message_deliveries_cap=0.0), "first_message_deliveries_cap", "> 0"),
    (dict(mesh_message_deliveries_weight=1.0), "mesh_message_deliveries_weight", "<= 0"),
    (
        dict(mesh_message_deliveries_weight=-1.0, mesh_message_deliveries_decay=1.5),
        "mesh_message_deliveries_decay",
        "< 1",
    ),
    (
        dict(mesh_message_deliveries_weight=-1.0, mesh_message_deliveries_cap=-1.0),
        "mesh_message_deliveries_cap",
        "> 0",
    ),
    (
        dict(mesh_message_deliveries_weight=-1.0, mesh_message_deliveries_threshold=0.0),
        "mesh_message_deliveries_threshold",
        "> 0",
    ),
    (dict(mesh_message_deliveries_window=-0.1), "mesh_message_deliveries_window", ">= 0"),
    (
        dict(mesh_message_deliveries_weight=-1.0, mesh_message_deliveries_activation=0.5),
        "mesh_message_deliveries_activation",
        ">= 1",
    ),
    (dict(mesh_failure_penalty_weight=2.0), "mesh_failure_penalty_weight", "<= 0"),
    (
        dict(mesh_failure_penalty_weight=-1.0, mesh_failure_penalty_decay=0.0),
        "mesh_failure_penalty_decay",
        "> 0",
    ),
    (dict(invalid_message_deliveries_weight=1.0), "invalid_message_deliveries_weight", "<= 0"),
    (dict(invalid_message_deliveries_decay=1.0), "invalid_message_deliveries_decay", "< 1"),
]


@pytest.mark.parametrize(("changes", "name", "bound"), TOPIC_CASES)
def test_topic_params_validate_names_parameter_and_bound(
    changes: dict[str, float], name: str, bound: str
) -> None:
    tp = dataclasses.replace(TopicScoreParams(), **changes)
    with pytest.raises(ScoreParameterError) as err:
        tp.validate()
    assert err.value.parameter == name
    assert bound in str(err.value)
    # nested in the peer params, the name says which topic
    with pytest.raises(ScoreParameterError) as nested:
        PeerScoreParams(topics={"orders": tp}).validate()
    assert nested.value.parameter == f"topics['orders'].{name}"


def test_disabled_components_relax_their_other_fields() -> None:
    # a zero weight switches a component off; its decay/cap may then be anything in range
    TopicScoreParams(
        first_message_deliveries_weight=0.0,
        first_message_deliveries_decay=5.0,
        first_message_deliveries_cap=-1.0,
        mesh_message_deliveries_weight=0.0,
        mesh_message_deliveries_decay=7.0,
        mesh_message_deliveries_activation=0.0,
        mesh_failure_penalty_weight=0.0,
        mesh_failure_penalty_decay=0.0,
    ).validate()


# ------------------------------------------------------------------------- peer params

PEER_CASES = [
    (dict(topic_score_cap=-1.0), "topic_score_cap", ">= 0"),
    (dict(app_specific_weight=INF), "app_specific_weight", "finite"),
    (dict(app_specific_weight=True), "app_specific_weight", "finite"),
    (dict(decay_to_zero="0.01"), "decay_to_zero", "finite"),
    (dict(ip_colocation_factor_weight=1.0), "ip_colocation_factor_weight", "<= 0"),
    (dict(ip_colocation_factor_threshold=0), "ip_colocation_factor_threshold", ">= 1"),
    (dict(ip_colocation_factor_threshold=2.5), "ip_colocation_factor_threshold", "integer"),
    (
        dict(ip_colocation_factor_whitelist=("10.0.0.0/33",)),
        "ip_colocation_factor_whitelist[0]",
        "CIDR",
    ),
    (dict(behaviour_penalty_weight=1.0), "behaviour_penalty_weight", "<= 0"),
    (dict(behaviour_penalty_decay=1.0), "behaviour_penalty_decay", "< 1"),
    (dict(behaviour_penalty_threshold=-1.0), "behaviour_penalty_threshold", ">= 0"),
    (dict(decay_interval=0.5), "decay_interval", ">= 1"),
    (dict(decay_to_zero=0.0), "decay_to_zero", "> 0"),
    (dict(decay_to_zero=1.0), "decay_to_zero", "< 1"),
    (dict(retain_score=-1.0), "retain_score", ">= 0"),
    (dict(seen_msg_ttl=0.0), "seen_msg_ttl", "> 0"),
    (dict(topics={"": TopicScoreParams()}), "topics", "non-empty"),
    (dict(topics={"t": "not params"}), "topics['t']", "TopicScoreParams"),
]


@pytest.mark.parametrize(("changes", "name", "bound"), PEER_CASES)
def test_peer_params_validate_names_parameter_and_bound(
    changes: dict[str, Any], name: str, bound: str
) -> None:
    p = dataclasses.replace(PeerScoreParams(), **changes)
    with pytest.raises(ScoreParameterError) as err:
        p.validate()
    assert err.value.parameter == name
    assert bound in str(err.value)
    # a score object refuses to start with it
    with pytest.raises(ScoreParameterError):
        PeerScore(p)


def test_colocation_threshold_may_be_zero_when_p6_is_off() -> None:
    PeerScoreParams(ip_colocation_factor_weight=0.0, ip_colocation_factor_threshold=0).validate()


def test_peer_params_topics_are_read_only() -> None:
    source = {"t": TopicScoreParams()}
    p = PeerScoreParams(topics=source)
    source["u"] = TopicScoreParams()
    assert list(p.topics) == ["t"]
    with pytest.raises(TypeError):
        p.topics["v"] = TopicScoreParams()  # type: ignore[index]


# ------------------------------------------------------------------------- decay helper


def test_score_parameter_decay_matches_go() -> None:
    # go: ScoreParameterDecay(10 * time.Second) == math.Pow(0.01, 1/10)
    assert score_parameter_decay(10.0) == 0.01 ** (1 / 10)
    # ticks are whole intervals: 10.5 s at 1 s is 10 ticks, 60 s at 12 s is 5
    assert score_parameter_decay(10.5) == 0.01 ** (1 / 10)
    assert score_parameter_decay(60.0, 12.0) == 0.01 ** (1 / 5)
    # applying it for the window takes 1 down to decay_to_zero
    d = score_parameter_decay(3600.0, 1.0, 0.001)
    assert d**3600 == pytest.approx(0.001)


def test_score_parameter_decay_bounds() -> None:
    with pytest.raises(ScoreParameterError, match="decay_to_zero_after"):
        score_parameter_decay(0.5)
    with pytest.raises(ScoreParameterError, match="decay_interval"):
        score_parameter_decay(10.0, 0.0)
    with pytest.raises(ScoreParameterError, match="decay_to_zero"):
        score_parameter_decay(10.0, 1.0, 1.0)


def test_decay_convergence_is_the_steady_level() -> None:
    d = 0.9
    level = 0.0
    for _ in range(500):
        level = level * d + 2.0
    assert decay_convergence(d, 2.0) == pytest.approx(level)  # just after an increment


# ------------------------------------------------------------------------- defaults


def test_default_params_cover_our_topics_and_validate() -> None:
    p = default_peer_score_params()
    p.validate()
    assert set(p.topics) == {HUBS_TOPIC, ORDERS_TOPIC, PEERS_TOPIC, TRUST_TOPIC}
    assert sum(t.topic_weight for t in p.topics.values()) == pytest.approx(1.0)
    # P3 is off by default: none of our topics has steady traffic
    assert all(t.mesh_message_deliveries_weight == 0 for t in p.topics.values())
    PeerScore(p, default_thresholds())


def test_default_params_are_consistent_with_the_thresholds() -> None:
    p = default_peer_score_params()
    t = default_thresholds()
    max_positive = sum(
        (
            t_.time_in_mesh_cap * t_.time_in_mesh_weight
            + t_.first_message_deliveries_cap * t_.first_message_deliveries_weight
        )
        * t_.topic_weight
        for t_ in p.topics.values()
    )
    assert max_positive == pytest.approx(50.0)
    # topic activity alone never reaches accept-PX: that takes P5 from reputation
    assert p.topic_score_cap < t.accept_px_threshold
    # one invalid message costs as much as a perfect peer earns, in every topic
    for tp in p.topics.values():
        assert tp.invalid_message_deliveries_weight * tp.topic_weight == pytest.approx(
            -max_positive
        )
    # a steady penalty every 10 s settles at the gossip threshold
    steady = decay_convergence(p.behaviour_penalty_decay, 0.1)
    excess = steady - p.behaviour_penalty_threshold
    assert excess**2 * p.behaviour_penalty_weight == pytest.approx(t.gossip_threshold)


def test_profile_with_mesh_deliveries_enables_p3_scaled_to_traffic() -> None:
    prof = TopicProfile(weight=0.5, expected_rate=12.0, mesh_deliveries=True)
    tp = topic_params_from_profile(prof, max_positive_score=50.0, mesh_d=6)
    tp.validate()
    assert tp.mesh_message_deliveries_weight < 0
    assert tp.mesh_failure_penalty_weight == tp.mesh_message_deliveries_weight
    # a peer with no deliveries at all loses max_positive_score in this topic
    worst = tp.mesh_message_deliveries_threshold**2 * tp.mesh_message_deliveries_weight
    assert worst * tp.topic_weight == pytest.approx(-50.0)
    # the threshold is a third of the steady level of a fair-share forwarder
    fair = decay_convergence(tp.mesh_message_deliveries_decay, 12.0 / 6)
    assert tp.mesh_message_deliveries_threshold == pytest.approx(fair / 3.0)


def test_profile_bounds() -> None:
    with pytest.raises(ScoreParameterError, match="expected_rate"):
        topic_params_from_profile(
            TopicProfile(weight=1.0, expected_rate=0.0), max_positive_score=1.0
        )
    with pytest.raises(ScoreParameterError, match="mesh_d"):
        topic_params_from_profile(
            TopicProfile(weight=1.0, expected_rate=1.0), max_positive_score=1.0, mesh_d=0
        )


def test_defaults_graylist_a_flooder_but_not_a_one_off_relay() -> None:
    """The default numbers do what docs/parameters.md says they do."""
    from gossip.validation import ValidationResult

    p = default_peer_score_params()
    t = default_thresholds()
    ps = PeerScore(p, t)
    honest, flooder = b"honest", b"flooder"
    ps.add_peer(honest, 0.0, ip="198.51.100.1")
    ps.add_peer(flooder, 0.0, ip="198.51.100.2")
    ps.refresh(0.0)
    # another peer relayed one invalid message while we validated the flooder's copy
    ps.validate_message(b"bad0", flooder, ORDERS_TOPIC, 0.1)
    ps.duplicate_message(b"bad0", honest, ORDERS_TOPIC, 0.2)
    ps.reject_message(b"bad0", flooder, ORDERS_TOPIC, ValidationResult.REJECT, 0.3)
    assert t.gossip_threshold < ps.score(honest, 0.3) < 0
    scores = []
    for i in range(1, 18):
        ps.validate_message(b"bad%d" % i, flooder, ORDERS_TOPIC, 0.5)
        ps.reject_message(b"bad%d" % i, flooder, ORDERS_TOPIC, ValidationResult.REJECT, 0.5)
        scores.append(ps.score(flooder, 0.5))

    def after(n: int) -> float:  # the flooder's score after n invalid messages
        return scores[n - 2]

    # 9 invalid messages: below gossip; 13: below publish; 18: graylisted
    assert after(8) >= t.gossip_threshold > after(9)
    assert after(12) >= t.publish_threshold > after(13)
    assert after(17) >= t.graylist_threshold > after(18)


def test_defaults_graylist_a_sybil_crowd_on_one_address() -> None:
    p = default_peer_score_params()
    t = default_thresholds()
    ps = PeerScore(p, t)
    crowd = [b"sybil%d" % i for i in range(8 + 18)]
    for i, s in enumerate(crowd):
        ps.add_peer(s, 0.0, ip="203.0.113.50")
        if i < 8:
            assert ps.score(s, 0.0) == 0.0  # a hub and its workers behind one NAT
    assert ps.score(crowd[0], 0.0) < t.graylist_threshold
