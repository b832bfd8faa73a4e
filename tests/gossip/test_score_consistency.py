"""The cached score never goes stale, whatever sequence of router hooks runs.

`score()` caches per peer and each hook invalidates what it changes; P6 makes one peer's
score depend on others' IPs. Random hook sequences check the cached value against a
fresh computation after every step, and the IP index against the per-peer records.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gossip.score import PeerScore
from gossip.score_params import PeerScoreParams, TopicScoreParams
from gossip.validation import ValidationResult

PEERS = [b"p0", b"p1", b"p2", b"p3", b"p4"]
TOPICS = ["t0", "t1", "unscored"]
IPS = ["203.0.113.1", "203.0.113.2", "2001:db8::1", "2001:db8::2", "127.0.0.1", None]
MSGS = [b"m0", b"m1", b"m2", b"m3"]


def params() -> PeerScoreParams:
    tp = TopicScoreParams(
        topic_weight=0.7,
        time_in_mesh_weight=0.3,
        time_in_mesh_quantum=1.0,
        time_in_mesh_cap=20.0,
        first_message_deliveries_weight=1.0,
        first_message_deliveries_decay=0.8,
        first_message_deliveries_cap=5.0,
        mesh_message_deliveries_weight=-0.5,
        mesh_message_deliveries_decay=0.7,
        mesh_message_deliveries_cap=8.0,
        mesh_message_deliveries_threshold=3.0,
        mesh_message_deliveries_window=0.5,
        mesh_message_deliveries_activation=2.0,
        mesh_failure_penalty_weight=-0.25,
        mesh_failure_penalty_decay=0.6,
        invalid_message_deliveries_weight=-2.0,
        invalid_message_deliveries_decay=0.9,
    )
    return PeerScoreParams(
        topics={"t0": tp, "t1": tp},
        topic_score_cap=6.0,
        app_specific_weight=0.5,
        ip_colocation_factor_weight=-3.0,
        ip_colocation_factor_threshold=1,
        ip_colocation_factor_whitelist=("203.0.113.2/32",),
        behaviour_penalty_weight=-1.0,
        behaviour_penalty_threshold=1.0,
        behaviour_penalty_decay=0.5,
        decay_interval=1.0,
        decay_to_zero=0.01,
        retain_score=3.0,
        seen_msg_ttl=4.0,
    )


peer = st.sampled_from(PEERS)
topic = st.sampled_from(TOPICS)
msg = st.sampled_from(MSGS)
op = st.one_of(
    st.tuples(st.just("add"), peer, st.sampled_from(IPS)),
    st.tuples(st.just("remove"), peer),
    st.tuples(st.just("ip"), peer, st.sampled_from(IPS)),
    st.tuples(st.just("app"), peer, st.floats(-20, 20)),
    st.tuples(st.just("penalty"), peer, st.integers(1, 3)),
    st.tuples(st.just("graft"), peer, topic),
    st.tuples(st.just("prune"), peer, topic),
    st.tuples(st.just("validate"), msg, peer, topic),
    st.tuples(st.just("deliver"), msg, peer, topic),
    st.tuples(st.just("duplicate"), msg, peer, topic),
    st.tuples(st.just("reject"), msg, peer, topic, st.sampled_from(["reject", "ignore"])),
    st.tuples(st.just("unvalidated"), peer, topic),
    st.tuples(st.just("tick"), st.floats(0.0, 2.5)),
)


def apply(ps: PeerScore, step: tuple[Any, ...], now: float) -> float:
    kind = step[0]
    if kind == "add":
        ps.add_peer(step[1], now, ip=step[2])
    elif kind == "remove":
        ps.remove_peer(step[1], now)
    elif kind == "ip":
        ps.set_ip(step[1], step[2])
    elif kind == "app":
        ps.set_app_score(step[1], step[2])
    elif kind == "penalty":
        ps.add_penalty(step[1], step[2])
    elif kind == "graft":
        ps.graft(step[1], step[2], now)
    elif kind == "prune":
        ps.prune(step[1], step[2], now)
    elif kind == "validate":
        ps.validate_message(step[1], step[2], step[3], now)
    elif kind == "deliver":
        ps.deliver_message(step[1], step[2], step[3], now)
    elif kind == "duplicate":
        ps.duplicate_message(step[1], step[2], step[3], now)
    elif kind == "reject":
        result = ValidationResult.REJECT if step[4] == "reject" else ValidationResult.IGNORE
        ps.reject_message(step[1], step[2], step[3], result, now)
    elif kind == "unvalidated":
        ps.reject_unvalidated(step[1], step[2], now)
    elif kind == "tick":
        now += step[1]
        ps.refresh(now)
    return now


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=60))
def test_cached_scores_match_a_fresh_computation(steps: list[tuple[Any, ...]]) -> None:
    ps = PeerScore(params())
    now = 0.0
    for step in steps:
        now = apply(ps, step, now)
        for p in PEERS:
            # read through the cache first, so stale entries would be caught next step
            cached = ps.score(p, now)
            record = ps._stats.get(p)
            fresh = 0.0 if record is None else ps._compute(p, record)
            assert cached == fresh, (step, p)
        # the colocation index holds exactly the recorded peers' IPs
        index = {(ip, p) for ip, group in ps._peer_ips.items() for p in group}
        recorded = {(ip, p) for p, rec in ps._stats.items() for ip in rec.ips}
        assert index == recorded
        assert all(ps._peer_ips.values())
