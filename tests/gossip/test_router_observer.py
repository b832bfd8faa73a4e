"""The peer score as an observer the router is given: it hears every connection,
mesh change and message fate as it happens, and its `score` is what the router's
decisions read."""

from __future__ import annotations

import random

from gossip.router import PROTOCOL_V12, GossipRouter
from gossip.score import PeerScore
from gossip.score_params import PeerScoreParams, PeerScoreThresholds, TopicScoreParams
from gossip.validation import ValidationResult
from gossip.wire import RPC, Control, Message, SubOpts

T = "t"


class Recorder:
    """Records each call; scores are set by the test."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.scores: dict[bytes, float] = {}

    def _note(self, *call: object) -> None:
        self.calls.append(tuple(str(c) for c in call))

    def add_peer(self, peer: bytes, now: float, ip: str | None = None) -> None:
        self._note("add_peer", peer, ip)

    def remove_peer(self, peer: bytes, now: float) -> None:
        self._note("remove_peer", peer)

    def set_ip(self, peer: bytes, ip: str | None) -> None:
        self._note("set_ip", peer, ip)

    def graft(self, peer: bytes, topic: str, now: float) -> None:
        self._note("graft", peer, topic)

    def prune(self, peer: bytes, topic: str, now: float) -> None:
        self._note("prune", peer, topic)

    def validate_message(self, msg_id: bytes, peer: bytes, topic: str, now: float) -> None:
        self._note("validate", peer, topic)

    def deliver_message(self, msg_id: bytes, peer: bytes, topic: str, now: float) -> None:
        self._note("deliver", peer, topic)

    def duplicate_message(self, msg_id: bytes, peer: bytes, topic: str, now: float) -> None:
        self._note("duplicate", peer, topic)

    def reject_message(
        self, msg_id: bytes, peer: bytes, topic: str, result: ValidationResult, now: float
    ) -> None:
        self._note("reject", peer, topic, result.name)

    def reject_unvalidated(self, peer: bytes, topic: str, now: float) -> None:
        self._note("reject_unvalidated", peer, topic)

    def add_penalty(self, peer: bytes, count: int) -> None:
        self._note("penalty", peer, count)

    def set_app_score(self, peer: bytes, value: float) -> None:
        self._note("app_score", peer, value)

    def score(self, peer: bytes, now: float) -> float:
        return self.scores.get(peer, 0.0)

    def refresh(self, now: float) -> None:
        pass


def _verdict(topic: str, data: bytes, peer: bytes) -> ValidationResult:
    return ValidationResult.REJECT if data == b"bad" else ValidationResult.ACCEPT


def test_an_injected_observer_hears_what_happens_and_its_scores_decide() -> None:
    rec = Recorder()
    r = GossipRouter(
        local_peer=b"me",
        rng=random.Random(1),
        score=rec,
        thresholds=PeerScoreThresholds(),
        validator=_verdict,
    )
    assert r.peer_score is rec
    for p in (b"a", b"b"):
        r.add_peer(p, PROTOCOL_V12, False, 0.0, ip="10.0.0.1")
        r.receive_rpc(p, RPC([SubOpts(True, T)]), 0.0)
    rec.scores[b"b"] = -1.0  # negative: never grafted
    r.subscribe(T, 0.0)
    r.receive_rpc(b"a", RPC(publish=[Message(T, b"good")]), 0.1)
    r.receive_rpc(b"b", RPC(publish=[Message(T, b"good")]), 0.1)
    r.receive_rpc(b"a", RPC(publish=[Message(T, b"bad")]), 0.2)
    r.receive_rpc(b"a", RPC(control=Control(prune=[])), 0.3)
    r.unsubscribe(T, 0.4)
    r.remove_peer(b"a", 0.5)
    assert rec.calls == [
        ("add_peer", "b'a'", "10.0.0.1"),
        ("add_peer", "b'b'", "10.0.0.1"),
        ("graft", "b'a'", T),
        ("validate", "b'a'", T),
        ("deliver", "b'a'", T),
        ("duplicate", "b'b'", T),
        ("validate", "b'a'", T),
        ("reject", "b'a'", T, "REJECT"),
        ("prune", "b'a'", T),
        ("remove_peer", "b'a'"),
    ]
    assert r.mesh_peers(T) == set()


def test_thresholds_come_with_an_injected_peer_score() -> None:
    th = PeerScoreThresholds(gossip_threshold=-1.0, publish_threshold=-2.0, graylist_threshold=-3.0)
    ps = PeerScore(PeerScoreParams(topics={T: TopicScoreParams()}), th)
    r = GossipRouter(local_peer=b"me", rng=random.Random(1), score=ps)
    assert r.thresholds is th
    r.add_peer(b"a", PROTOCOL_V12, False, 0.0)
    r.set_app_score(b"a", -10.0)  # app weight 1: score -10, under the graylist
    r.receive_rpc(b"a", RPC([SubOpts(True, T)]), 0.0)
    assert r.metrics.graylisted_rpcs == 1
