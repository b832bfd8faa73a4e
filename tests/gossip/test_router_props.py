"""Property: whatever RPCs peers send, in whatever order, the router never raises and
keeps its invariants (mesh within the topic's peers and bounded, queues bounded)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from gossip.params import GossipSubParams
from gossip.router import PROTOCOL_V10, PROTOCOL_V11, PROTOCOL_V12, GossipRouter
from gossip.validation import ValidationResult
from gossip.wire import RPC, Control, Message, PeerInfo, Prune, SubOpts, frame

TOPICS = ["a", "b", "c"]
PEERS = [b"p%d" % i for i in range(6)]

topics = st.sampled_from(TOPICS)
ids = st.binary(min_size=1, max_size=8)
rpcs = st.builds(
    RPC,
    subscriptions=st.lists(st.builds(SubOpts, subscribe=st.booleans(), topic=topics), max_size=3),
    publish=st.lists(
        st.builds(Message, topic=topics, data=st.binary(max_size=16), from_=st.none() | ids),
        max_size=3,
    ),
    control=st.none()
    | st.builds(
        Control,
        ihave=st.lists(st.tuples(topics, st.lists(ids, max_size=4)), max_size=2),
        iwant=st.lists(ids, max_size=4),
        graft=st.lists(topics, max_size=2),
        prune=st.lists(
            st.builds(
                Prune,
                topic=topics,
                peers=st.lists(st.builds(PeerInfo, peer_id=st.sampled_from(PEERS)), max_size=2),
                backoff=st.none() | st.integers(0, 2**64 - 1),
            ),
            max_size=2,
        ),
        idontwant=st.lists(ids, max_size=4),
    ),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("rpc"), st.sampled_from(PEERS), rpcs),
        st.tuples(st.just("raw"), st.sampled_from(PEERS), st.binary(max_size=30)),
        st.tuples(st.just("tick"), st.floats(0.0, 3.0)),
        st.tuples(st.just("publish"), topics, st.binary(max_size=8)),
        st.tuples(st.just("join"), topics),
        st.tuples(st.just("leave"), topics),
        st.tuples(st.just("drop"), st.sampled_from(PEERS)),
        st.tuples(st.just("add"), st.sampled_from(PEERS), st.booleans()),
    ),
    max_size=40,
)


def verdict(topic: str, data: bytes, peer: bytes) -> ValidationResult:
    return [ValidationResult.ACCEPT, ValidationResult.REJECT, ValidationResult.IGNORE][
        len(data) % 3
    ]


@settings(max_examples=300, deadline=None)
@given(steps, st.integers(0, 2**32))
def test_router_survives_any_input_and_keeps_invariants(plan: list[tuple], seed: int) -> None:
    from gossip.score_params import PeerScoreParams, TopicScoreParams

    params = GossipSubParams(D=3, D_lo=2, D_hi=4, D_score=1, D_out=1, max_queued_messages=8)
    r = GossipRouter(
        local_peer=b"me",
        params=params,
        rng=random.Random(seed),
        validator=verdict,
        score_params=PeerScoreParams(topics={t: TopicScoreParams() for t in TOPICS}),
    )
    protos = [PROTOCOL_V10, PROTOCOL_V11, PROTOCOL_V12]
    now = 0.0
    for i, p in enumerate(PEERS):
        r.add_peer(p, protos[i % 3], i % 2 == 0, now)
    for step in plan:
        kind = step[0]
        if kind == "rpc":
            r.receive(step[1], frame(step[2].encode()), now)
        elif kind == "raw":
            r.receive(step[1], step[2], now)
        elif kind == "tick":
            now += step[1]
            r.on_timer(now)
        elif kind == "publish":
            try:
                r.publish(step[1], step[2], now)
            except Exception as exc:  # only the documented, named refusals
                assert type(exc).__name__ in {"NoPeersError", "DuplicatePublishError"}
        elif kind == "join":
            r.subscribe(step[1], now)
        elif kind == "leave":
            r.unsubscribe(step[1], now)
        elif kind == "drop":
            r.remove_peer(step[1], now)
        elif kind == "add":
            r.add_peer(step[1], PROTOCOL_V12, step[2], now)
        for t in r.subscriptions():
            assert r.mesh_peers(t) <= r.topic_peers(t) | set()
            assert r.mesh_peers(t) <= set(r.peers())
        for p in r.peers():
            assert r.queued_messages(p) <= params.max_queued_messages + 64  # own publishes
        r.drain()
        r.events()
    now += 1.5
    r.on_timer(now)
    for t in r.subscriptions():
        assert len(r.mesh_peers(t)) <= params.D_hi
