"""What a peer's subscriptions can make a router hold, and for how long.

A subscription is the one place a remote peer hands us a string we keep: topic
names are capped in length, names of topics we neither join nor publish to are
capped per peer, refusals are counted and cost a behaviour penalty, and
everything a peer made us hold (its table entries, the interned subscription
sets and the names in them) goes when the peer leaves.
"""

from __future__ import annotations

import gc
import random
import tracemalloc

import pytest

from gossip.params import GossipSubParams, ParamError
from gossip.router import GossipRouter, interned_topic_sets
from gossip.score_params import PeerScoreParams, PeerScoreThresholds, TopicScoreParams
from gossip.wire import RPC, SubOpts, frame

T = "t"


def _router(params: GossipSubParams | None = None, scored: bool = False) -> GossipRouter:
    kw: dict[str, object] = {}
    if scored:
        kw["score_params"] = PeerScoreParams(topics={T: TopicScoreParams()})
        kw["thresholds"] = PeerScoreThresholds()
    return GossipRouter(
        local_peer=b"me",
        params=params or GossipSubParams(),
        rng=random.Random(1),
        **kw,  # type: ignore[arg-type]
    )


def _subscribe(r: GossipRouter, peer: bytes, topics: list[str], now: float = 0.0) -> None:
    """Through the codec, as from the wire: the names are decoded, fresh strings."""
    r.receive(peer, frame(RPC(subscriptions=[SubOpts(True, t) for t in topics]).encode()), now)


def _tracked(r: GossipRouter, peer: bytes, topics: list[str]) -> list[str]:
    return [t for t in topics if peer in r.topic_peers(t)]


def test_topic_length_is_capped_and_a_longer_name_refused_counted_and_penalised() -> None:
    r = _router(scored=True)
    r.subscribe(T, 0.0)
    r.add_peer(b"a", "/meshsub/1.1.0", False, 0.0)
    fits, too_long = "x" * 256, "y" * 257
    wide = "é" * 129  # 258 bytes in UTF-8 in 129 characters: the cap is in bytes
    _subscribe(r, b"a", [T, fits, too_long, wide])
    assert _tracked(r, b"a", [T, fits, too_long, wide]) == [T, fits]
    assert r.metrics.subs_refused == 2
    snap = r.peer_score.snapshot(b"a", 0.0)  # type: ignore[union-attr]
    assert snap is not None and snap.behaviour_penalty == 2


def test_unknown_topics_beyond_the_budget_are_refused_known_ones_never() -> None:
    r = _router(GossipSubParams(max_unknown_topics_per_peer=4), scored=True)
    r.subscribe(T, 0.0)
    r.add_peer(b"a", "/meshsub/1.1.0", False, 0.0)
    unknown = [f"u{i}" for i in range(10)]
    _subscribe(r, b"a", unknown)
    assert _tracked(r, b"a", unknown) == unknown[:4]
    assert r.metrics.subs_refused == 6
    # a topic we join is always taken, whatever the peer spent on others
    _subscribe(r, b"a", [T])
    assert b"a" in r.topic_peers(T)
    # leaving an unknown topic frees its place in the budget
    r.receive(b"a", frame(RPC(subscriptions=[SubOpts(False, "u0")]).encode()), 0.0)
    _subscribe(r, b"a", ["u9"])
    assert _tracked(r, b"a", unknown) == ["u1", "u2", "u3", "u9"]
    # a topic we publish to (fanout) is known too
    r2 = _router(GossipSubParams(max_unknown_topics_per_peer=0, flood_publish=False))
    r2.add_peer(b"b", "/meshsub/1.1.0", False, 0.0)
    _subscribe(r2, b"b", ["f"])
    assert not r2.topic_peers("f") and r2.metrics.subs_refused == 1


def test_a_subscription_flood_drives_the_peer_below_the_graylist_threshold() -> None:
    r = _router(scored=True)
    r.subscribe(T, 0.0)
    r.add_peer(b"a", "/meshsub/1.1.0", False, 0.0)
    r.add_peer(b"honest", "/meshsub/1.1.0", False, 0.0)
    _subscribe(r, b"honest", [T])
    _subscribe(r, b"a", [f"junk/{i}" for i in range(200)])
    th = PeerScoreThresholds()
    assert r.score_of(b"a", 0.0) < th.graylist_threshold
    assert r.score_of(b"honest", 0.0) == 0.0


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"max_topic_length": 0}, "max_topic_length"),
        ({"max_topic_length": 1 << 17}, "max_topic_length"),
        ({"max_unknown_topics_per_peer": -1}, "max_unknown_topics_per_peer"),
    ],
)
def test_topic_params_validate_names_the_parameter(change: dict[str, int], name: str) -> None:
    with pytest.raises(ParamError, match=name):
        GossipSubParams(**change).validate()  # type: ignore[arg-type]


def test_what_a_peer_made_us_hold_goes_when_it_leaves() -> None:
    """A peer fills its whole budget with the longest names; after it leaves, the
    router's tables, the intern cache and the traced memory are back to where they
    were before it came."""
    params = GossipSubParams()
    r = _router(params)
    r.subscribe(T, 0.0)
    r.add_peer(b"honest", "/meshsub/1.1.0", False, 0.0)
    _subscribe(r, b"honest", [T])
    gc.collect()
    tracemalloc.start()
    try:
        base_mem = tracemalloc.get_traced_memory()[0]
        base_sets = interned_topic_sets()
        lefts = []
        for n in range(4):  # peers come and go: nothing accumulates
            peer = b"hostile%d" % n
            r.add_peer(peer, "/meshsub/1.1.0", False, 0.0)
            names = [f"{n}/{i}/".ljust(params.max_topic_length, "z") for i in range(100)]
            # one at a time: every step makes a new subscription set to intern
            for name in names:
                _subscribe(r, peer, [name])
            held = _tracked(r, peer, names)
            assert len(held) == params.max_unknown_topics_per_peer
            held_bytes = len(held) * params.max_topic_length
            grown = tracemalloc.get_traced_memory()[0] - base_mem
            assert grown > held_bytes
            r.remove_peer(peer, 1.0)
            del names, held
            gc.collect()
            assert interned_topic_sets() <= base_sets
            assert len(r._topic_peers) == 1  # T only
            left = tracemalloc.get_traced_memory()[0] - base_mem
            # what is left is the slack of tables that grew (a dict never shrinks),
            # not the names: less than half of them, and it does not accumulate
            assert left < held_bytes // 2, (left, held_bytes)
            lefts.append(left)
        assert lefts[-1] <= lefts[0] + 256, lefts
    finally:
        tracemalloc.stop()
