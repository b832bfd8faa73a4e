"""Peer-score parameters and thresholds of gossipsub v1.1 (P1-P7), with their bounds.

The structure and the bounds follow the gossipsub v1.1 spec and go-libp2p-pubsub's
score_params.go, so that a network tuned for go peers can be tuned the same way here.
Every parameter set is a frozen dataclass whose `validate()` raises
`ScoreParameterError` naming the parameter, the offending value and the bound: a
mis-set weight silently turns a penalty into a reward, which is exactly the kind of
mistake that must fail loudly at start-up rather than in production.

Times are float seconds. Decay factors are applied once per `decay_interval`;
`score_parameter_decay` turns "forget this after N seconds" into such a factor.

`default_peer_score_params()` builds the set used for our three topics (hubs,
orders, peer records); docs/parameters.md explains every number.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType

from gossip.errors import UserError
from gossip.topics import HUBS_TOPIC, ORDERS_TOPIC, PEERS_TOPIC, TRUST_TOPIC

__all__ = [
    "DEFAULT_DECAY_INTERVAL",
    "DEFAULT_DECAY_TO_ZERO",
    "HUBS_TOPIC",
    "ORDERS_TOPIC",
    "PEERS_TOPIC",
    "TRUST_TOPIC",
    "PeerScoreParams",
    "PeerScoreThresholds",
    "ScoreParameterError",
    "TopicProfile",
    "TopicScoreParams",
    "decay_convergence",
    "default_peer_score_params",
    "default_thresholds",
    "default_topic_profiles",
    "score_parameter_decay",
    "topic_params_from_profile",
]

DEFAULT_DECAY_INTERVAL = 1.0
DEFAULT_DECAY_TO_ZERO = 0.01


class ScoreParameterError(UserError, ValueError):
    """A score parameter is out of its bound: the operator's (or the caller's) setting is wrong.

    `parameter` is the dotted name (e.g. ``topics['/sonm/orders/1'].topic_weight``),
    `bound` the rule it broke, `value` what it was.
    """

    def __init__(self, parameter: str, value: object, bound: str) -> None:
        super().__init__(f"invalid score parameter {parameter} = {value!r}: must be {bound}")
        self.parameter = parameter
        self.value = value
        self.bound = bound


def _finite(name: str, value: object) -> float:
    # bool is an int to Python, but True as a weight is a configuration mistake
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScoreParameterError(name, value, "a finite number")
    return float(value)


def _nonneg(name: str, value: object, what: str = ">= 0") -> None:
    if _finite(name, value) < 0:
        raise ScoreParameterError(name, value, what)


def _nonpos(name: str, value: object, what: str = "<= 0 (a penalty; 0 disables it)") -> None:
    if _finite(name, value) > 0:
        raise ScoreParameterError(name, value, what)


def _positive(name: str, value: object) -> None:
    if _finite(name, value) <= 0:
        raise ScoreParameterError(name, value, "> 0")


def _unit_open(name: str, value: object) -> None:
    v = _finite(name, value)
    if not 0 < v < 1:
        raise ScoreParameterError(name, value, "> 0 and < 1")


def score_parameter_decay(
    decay_to_zero_after: float,
    decay_interval: float = DEFAULT_DECAY_INTERVAL,
    decay_to_zero: float = DEFAULT_DECAY_TO_ZERO,
) -> float:
    """The per-interval decay factor that takes a counter of 1 down to `decay_to_zero`
    after `decay_to_zero_after` seconds (go's ScoreParameterDecayWithBase).

    As in go, the number of ticks is the whole number of intervals in the window, so the
    factor is exactly the one go computes for the same durations.
    """
    _positive("decay_interval", decay_interval)
    _unit_open("decay_to_zero", decay_to_zero)
    _finite("decay_to_zero_after", decay_to_zero_after)
    ticks = math.floor(decay_to_zero_after / decay_interval + 1e-9)
    if ticks < 1:
        raise ScoreParameterError(
            "decay_to_zero_after", decay_to_zero_after, f">= decay_interval ({decay_interval})"
        )
    return float(decay_to_zero ** (1.0 / ticks))


def decay_convergence(decay: float, rate_per_interval: float) -> float:
    """The steady-state value of a counter that grows by `rate_per_interval` each
    interval and is multiplied by `decay` at each interval: the level a peer that keeps
    doing the thing at that rate settles at. Used to size caps and thresholds."""
    _unit_open("decay", decay)
    return rate_per_interval / (1.0 - decay)


@dataclass(frozen=True, slots=True)
class PeerScoreThresholds:
    """The five score thresholds the router acts on.

    gossip: below it, no IHAVE/IWANT is exchanged with the peer.
    publish: below it, our own publishes (flood publish, fanout) skip the peer.
    graylist: below it, every RPC from the peer is ignored.
    accept_px: PX in a PRUNE is followed only from peers at or above it; meant to be
    reachable only by trusted nodes (seeds, pre-trusted peers via P5).
    opportunistic_graft: when the median mesh score drops below it, the router grafts
    better-scoring peers.
    """

    gossip_threshold: float = -4000.0
    publish_threshold: float = -8000.0
    graylist_threshold: float = -16000.0
    accept_px_threshold: float = 100.0
    opportunistic_graft_threshold: float = 5.0

    def validate(self) -> None:
        g = _finite("gossip_threshold", self.gossip_threshold)
        p = _finite("publish_threshold", self.publish_threshold)
        gl = _finite("graylist_threshold", self.graylist_threshold)
        if g > 0:
            raise ScoreParameterError("gossip_threshold", g, "<= 0")
        if p > 0 or p > g:
            raise ScoreParameterError("publish_threshold", p, f"<= 0 and <= gossip_threshold ({g})")
        if gl > 0 or gl > p:
            raise ScoreParameterError(
                "graylist_threshold", gl, f"<= 0 and <= publish_threshold ({p})"
            )
        _nonneg("accept_px_threshold", self.accept_px_threshold)
        _nonneg("opportunistic_graft_threshold", self.opportunistic_graft_threshold)


@dataclass(frozen=True, slots=True)
class TopicScoreParams:
    """Per-topic parameters: P1-P4 and the topic's weight.

    Weights of rewards (P1, P2) must be >= 0, weights of penalties (P3, P3b, P4) <= 0;
    a zero weight disables a component and relaxes the checks of its other fields, as
    in go. The defaults are a generic moderate-traffic topic; see
    `topic_params_from_profile` for the sets we actually run with.
    """

    topic_weight: float = 1.0

    # P1: time in mesh, counted in whole quanta, capped.
    time_in_mesh_weight: float = 10.0 / 360.0
    time_in_mesh_quantum: float = 10.0
    time_in_mesh_cap: float = 360.0

    # P2: first message deliveries, a decaying capped counter.
    first_message_deliveries_weight: float = 1.0
    first_message_deliveries_decay: float = 0.5 ** (1.0 / 600.0)
    first_message_deliveries_cap: float = 40.0

    # P3: mesh message deliveries deficit (squared), active after `activation` in mesh;
    # deliveries count if they arrive before validation ends or within `window` after.
    mesh_message_deliveries_weight: float = 0.0
    mesh_message_deliveries_decay: float = 0.5
    mesh_message_deliveries_cap: float = 10.0
    mesh_message_deliveries_threshold: float = 1.0
    mesh_message_deliveries_window: float = 0.01
    mesh_message_deliveries_activation: float = 30.0

    # P3b: sticky penalty added on prune while a P3 deficit is active.
    mesh_failure_penalty_weight: float = 0.0
    mesh_failure_penalty_decay: float = 0.5

    # P4: invalid (REJECTed) messages, squared.
    invalid_message_deliveries_weight: float = -50.0
    invalid_message_deliveries_decay: float = 0.01 ** (1.0 / 3600.0)

    def validate(self, prefix: str = "") -> None:
        """Raise ScoreParameterError for the first parameter out of bounds.

        `prefix` qualifies names when the set is nested (``topics['x'].``)."""

        def n(name: str) -> str:
            return prefix + name

        for f in fields(self):
            _finite(n(f.name), getattr(self, f.name))
        _nonneg(n("topic_weight"), self.topic_weight)

        # P1
        if self.time_in_mesh_quantum == 0:
            raise ScoreParameterError(n("time_in_mesh_quantum"), 0, "non-zero")
        _nonneg(n("time_in_mesh_weight"), self.time_in_mesh_weight, ">= 0 (0 disables P1)")
        if self.time_in_mesh_weight != 0:
            _positive(n("time_in_mesh_quantum"), self.time_in_mesh_quantum)
            _positive(n("time_in_mesh_cap"), self.time_in_mesh_cap)

        # P2
        _nonneg(
            n("first_message_deliveries_weight"),
            self.first_message_deliveries_weight,
            ">= 0 (0 disables P2)",
        )
        if self.first_message_deliveries_weight != 0:
            _unit_open(n("first_message_deliveries_decay"), self.first_message_deliveries_decay)
            _positive(n("first_message_deliveries_cap"), self.first_message_deliveries_cap)

        # P3
        _nonpos(n("mesh_message_deliveries_weight"), self.mesh_message_deliveries_weight)
        if self.mesh_message_deliveries_weight != 0:
            _unit_open(n("mesh_message_deliveries_decay"), self.mesh_message_deliveries_decay)
            _positive(n("mesh_message_deliveries_cap"), self.mesh_message_deliveries_cap)
            _positive(
                n("mesh_message_deliveries_threshold"), self.mesh_message_deliveries_threshold
            )
        _nonneg(n("mesh_message_deliveries_window"), self.mesh_message_deliveries_window)
        if self.mesh_message_deliveries_weight != 0 and self.mesh_message_deliveries_activation < 1:
            raise ScoreParameterError(
                n("mesh_message_deliveries_activation"),
                self.mesh_message_deliveries_activation,
                ">= 1 (seconds)",
            )

        # P3b
        _nonpos(n("mesh_failure_penalty_weight"), self.mesh_failure_penalty_weight)
        if self.mesh_failure_penalty_weight != 0:
            _unit_open(n("mesh_failure_penalty_decay"), self.mesh_failure_penalty_decay)

        # P4 (the decay is checked even when the weight is 0, as go does)
        _nonpos(n("invalid_message_deliveries_weight"), self.invalid_message_deliveries_weight)
        _unit_open(n("invalid_message_deliveries_decay"), self.invalid_message_deliveries_decay)


@dataclass(frozen=True, slots=True)
class PeerScoreParams:
    """Global score parameters: the scored topics, the topic cap, P5-P7 and decay.

    `topics` is copied into a read-only mapping; topics not listed are not scored.
    P5 values are pushed with `PeerScore.set_app_score` (fed by reputation) rather than
    pulled through a callback, so the score stays a pure function of recorded state.
    IPs in `ip_colocation_factor_whitelist` are CIDR strings ("10.0.0.0/8").
    """

    topics: Mapping[str, TopicScoreParams] = field(default_factory=dict)
    topic_score_cap: float = 25.0

    app_specific_weight: float = 1.0

    ip_colocation_factor_weight: float = -50.0
    ip_colocation_factor_threshold: int = 8
    ip_colocation_factor_whitelist: tuple[str, ...] = ()

    behaviour_penalty_weight: float = -10.0
    behaviour_penalty_threshold: float = 6.0
    behaviour_penalty_decay: float = 0.01 ** (1.0 / 600.0)

    decay_interval: float = DEFAULT_DECAY_INTERVAL
    decay_to_zero: float = DEFAULT_DECAY_TO_ZERO
    retain_score: float = 3600.0
    seen_msg_ttl: float = 120.0

    def __post_init__(self) -> None:
        if isinstance(self.topics, Mapping):
            object.__setattr__(self, "topics", MappingProxyType(dict(self.topics)))
        if isinstance(self.ip_colocation_factor_whitelist, list):
            object.__setattr__(
                self, "ip_colocation_factor_whitelist", tuple(self.ip_colocation_factor_whitelist)
            )

    def validate(self) -> None:
        """Raise ScoreParameterError for the first parameter out of bounds."""
        if not isinstance(self.topics, Mapping):
            raise ScoreParameterError("topics", self.topics, "a mapping of topic -> params")
        for topic, tp in self.topics.items():
            if not isinstance(topic, str) or not topic:
                raise ScoreParameterError("topics", topic, "keyed by non-empty topic strings")
            if not isinstance(tp, TopicScoreParams):
                raise ScoreParameterError(f"topics[{topic!r}]", tp, "a TopicScoreParams")
            tp.validate(prefix=f"topics[{topic!r}].")

        _nonneg("topic_score_cap", self.topic_score_cap, ">= 0 (0 means no cap)")
        _finite("app_specific_weight", self.app_specific_weight)

        _nonpos("ip_colocation_factor_weight", self.ip_colocation_factor_weight)
        t = self.ip_colocation_factor_threshold
        if not isinstance(t, int) or isinstance(t, bool):
            raise ScoreParameterError("ip_colocation_factor_threshold", t, "an integer")
        if self.ip_colocation_factor_weight != 0 and t < 1:
            raise ScoreParameterError("ip_colocation_factor_threshold", t, ">= 1")
        if not isinstance(self.ip_colocation_factor_whitelist, tuple):
            raise ScoreParameterError(
                "ip_colocation_factor_whitelist",
                self.ip_colocation_factor_whitelist,
                "a tuple of CIDR strings",
            )
        for i, cidr in enumerate(self.ip_colocation_factor_whitelist):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except (TypeError, ValueError):
                raise ScoreParameterError(
                    f"ip_colocation_factor_whitelist[{i}]", cidr, "a CIDR string such as 10.0.0.0/8"
                ) from None

        _nonpos("behaviour_penalty_weight", self.behaviour_penalty_weight)
        if self.behaviour_penalty_weight != 0:
            _unit_open("behaviour_penalty_decay", self.behaviour_penalty_decay)
        _nonneg("behaviour_penalty_threshold", self.behaviour_penalty_threshold)

        if _finite("decay_interval", self.decay_interval) < 1:
            raise ScoreParameterError("decay_interval", self.decay_interval, ">= 1 (seconds)")
        _unit_open("decay_to_zero", self.decay_to_zero)
        _nonneg("retain_score", self.retain_score, ">= 0 (seconds; 0 retains nothing)")
        _positive("seen_msg_ttl", self.seen_msg_ttl)


# ---------------------------------------------------------------------------------------
# Deriving topic parameters from what we expect of a topic
# ---------------------------------------------------------------------------------------

MAX_IN_MESH_SCORE = 10.0
MAX_FIRST_MESSAGE_DELIVERIES_SCORE = 40.0


@dataclass(frozen=True, slots=True)
class TopicProfile:
    """What we expect of a topic, from which its score parameters are derived.

    expected_rate: valid messages per second across the whole network in steady state.
    first_delivery_memory: seconds after which a first-delivery credit is forgotten.
    invalid_memory: seconds after which a REJECTed message is forgotten.
    mesh_deliveries: enable P3/P3b. Only for topics with steady traffic: on a quiet topic
    every honest mesh peer shows a deficit and would be pruned for it.
    mesh_delivery_memory: seconds after which a mesh delivery is forgotten (P3 decay).
    mesh_activation: seconds in the mesh before P3 applies.
    mesh_window: seconds after validation a copy still counts as near-first; small (the
    spec says milliseconds) so a mesh peer cannot earn P3 by echoing what we sent it.
    mesh_cap_factor: the P3 threshold is the fair-share steady level over this factor.
    """

    weight: float
    expected_rate: float
    first_delivery_memory: float = 3600.0
    invalid_memory: float = 3600.0
    mesh_deliveries: bool = False
    mesh_delivery_memory: float = 60.0
    mesh_activation: float = 60.0
    mesh_window: float = 0.05
    mesh_cap_factor: float = 3.0

    def validate(self) -> None:
        _positive("weight", self.weight)
        _positive("expected_rate", self.expected_rate)
        _positive("first_delivery_memory", self.first_delivery_memory)
        _positive("invalid_memory", self.invalid_memory)
        _positive("mesh_delivery_memory", self.mesh_delivery_memory)
        if _finite("mesh_activation", self.mesh_activation) < 1:
            raise ScoreParameterError("mesh_activation", self.mesh_activation, ">= 1 (seconds)")
        _nonneg("mesh_window", self.mesh_window)
        if _finite("mesh_cap_factor", self.mesh_cap_factor) <= 1:
            raise ScoreParameterError("mesh_cap_factor", self.mesh_cap_factor, "> 1")


def topic_params_from_profile(
    profile: TopicProfile,
    *,
    max_positive_score: float,
    mesh_d: int = 6,
    decay_interval: float = DEFAULT_DECAY_INTERVAL,
    decay_to_zero: float = DEFAULT_DECAY_TO_ZERO,
) -> TopicScoreParams:
    """Topic parameters in the style the Ethereum consensus clients derive theirs.

    - P1 reaches MAX_IN_MESH_SCORE after an hour in the mesh (10 s quanta).
    - P2's cap is the steady level of a peer that is first with twice its fair share
      (1/D of the topic's traffic), and its weight makes that cap worth
      MAX_FIRST_MESSAGE_DELIVERIES_SCORE.
    - P4 weighs one invalid message at -max_positive_score after the topic weight, so
      a handful of REJECTs outweighs any good behaviour and ~18 reach the default
      graylist threshold.
    - P3 (optional): the threshold is 1/cap_factor of the level a peer forwarding its
      fair share settles at; a peer with no deliveries at all loses max_positive_score.
    """
    profile.validate()
    if mesh_d < 1:
        raise ScoreParameterError("mesh_d", mesh_d, ">= 1")
    fm_decay = score_parameter_decay(profile.first_delivery_memory, decay_interval, decay_to_zero)
    fair_share = profile.expected_rate * decay_interval / mesh_d
    fm_cap = decay_convergence(fm_decay, 2.0 * fair_share)
    inv_decay = score_parameter_decay(profile.invalid_memory, decay_interval, decay_to_zero)
    quantum = 10.0
    tim_cap = 3600.0 / quantum

    mmd_weight = 0.0
    mmd_decay = 0.5
    mmd_cap = 10.0
    mmd_threshold = 1.0
    if profile.mesh_deliveries:
        mmd_decay = score_parameter_decay(
            profile.mesh_delivery_memory, decay_interval, decay_to_zero
        )
        mmd_cap = decay_convergence(mmd_decay, fair_share)
        mmd_threshold = mmd_cap / profile.mesh_cap_factor
        mmd_weight = -max_positive_score / (profile.weight * mmd_threshold**2)

    return TopicScoreParams(
        topic_weight=profile.weight,
        time_in_mesh_weight=MAX_IN_MESH_SCORE / tim_cap,
        time_in_mesh_quantum=quantum,
        time_in_mesh_cap=tim_cap,
        first_message_deliveries_weight=MAX_FIRST_MESSAGE_DELIVERIES_SCORE / fm_cap,
        first_message_deliveries_decay=fm_decay,
        first_message_deliveries_cap=fm_cap,
        mesh_message_deliveries_weight=mmd_weight,
        mesh_message_deliveries_decay=mmd_decay,
        mesh_message_deliveries_cap=mmd_cap,
        mesh_message_deliveries_threshold=mmd_threshold,
        mesh_message_deliveries_window=profile.mesh_window,
        mesh_message_deliveries_activation=profile.mesh_activation,
        mesh_failure_penalty_weight=mmd_weight,
        mesh_failure_penalty_decay=mmd_decay,
        invalid_message_deliveries_weight=-max_positive_score / profile.weight,
        invalid_message_deliveries_decay=inv_decay,
    )


def default_topic_profiles(
    hubs_topic: str = HUBS_TOPIC,
    orders_topic: str = ORDERS_TOPIC,
    peers_topic: str = PEERS_TOPIC,
    trust_topic: str = TRUST_TOPIC,
) -> dict[str, TopicProfile]:
    """Our four topics. Orders carry the market's traffic and weigh most; hub
    announcements are rare but each matters; peer records are housekeeping; trust
    polls come in rounds (a few questions per node every few minutes, and answers).
    Rates are network-wide assumptions (docs/parameters.md); P3 is off everywhere
    because none of these topics has guaranteed steady traffic."""
    return {
        orders_topic: TopicProfile(weight=0.4, expected_rate=5.0, first_delivery_memory=600.0),
        hubs_topic: TopicProfile(weight=0.3, expected_rate=0.2),
        peers_topic: TopicProfile(weight=0.1, expected_rate=0.5),
        trust_topic: TopicProfile(weight=0.2, expected_rate=0.5),
    }


def default_peer_score_params(
    profiles: Mapping[str, TopicProfile] | None = None,
    *,
    mesh_d: int = 6,
    decay_interval: float = DEFAULT_DECAY_INTERVAL,
    decay_to_zero: float = DEFAULT_DECAY_TO_ZERO,
    thresholds: PeerScoreThresholds | None = None,
) -> PeerScoreParams:
    """The score parameters we run with, derived from topic profiles.

    max_positive_score is what a perfect peer earns across all topics
    (P1 + P2 maxima times the topic weights); the topic cap is half of it so that
    activity alone never reaches accept_px_threshold (only P5 from reputation can).
    P6 and P7 are sized against the thresholds: 9 peers over the colocation threshold
    fall below gossip; a steady one behaviour penalty every 10 s does too.
    """
    thresholds = thresholds or PeerScoreThresholds()
    thresholds.validate()
    profiles = default_topic_profiles() if profiles is None else profiles
    total_weight = sum(p.weight for p in profiles.values())
    max_positive_score = (MAX_IN_MESH_SCORE + MAX_FIRST_MESSAGE_DELIVERIES_SCORE) * total_weight
    topics = {
        name: topic_params_from_profile(
            prof,
            max_positive_score=max_positive_score,
            mesh_d=mesh_d,
            decay_interval=decay_interval,
            decay_to_zero=decay_to_zero,
        )
        for name, prof in profiles.items()
    }
    bp_decay = score_parameter_decay(600.0, decay_interval, decay_to_zero)
    bp_threshold = 6.0
    bp_target = decay_convergence(bp_decay, 0.1 * decay_interval) - bp_threshold
    params = PeerScoreParams(
        topics=topics,
        topic_score_cap=max_positive_score / 2.0 if max_positive_score > 0 else 0.0,
        app_specific_weight=1.0,
        ip_colocation_factor_weight=-max(max_positive_score, 1.0),
        ip_colocation_factor_threshold=8,
        behaviour_penalty_weight=thresholds.gossip_threshold / (bp_target**2),
        behaviour_penalty_threshold=bp_threshold,
        behaviour_penalty_decay=bp_decay,
        decay_interval=decay_interval,
        decay_to_zero=decay_to_zero,
        retain_score=3600.0,
        seen_msg_ttl=120.0,
    )
    params.validate()
    return params


def default_thresholds() -> PeerScoreThresholds:
    """The thresholds matching `default_peer_score_params` (those of the Ethereum
    consensus networks, whose score scale we share)."""
    return PeerScoreThresholds()
