"""One router under test, fake neighbours fed RPCs in virtual time (no network).

Each test checks one rule of the gossipsub v1.0/v1.1/v1.2 specs. Output is read
back through the real codec (`drain()` frames decoded), so the bytes the router
would put on the wire are what is asserted on.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import pytest

from gossip.events import (
    Delivered,
    PeerExchange,
    PeerGraylisted,
    PeerShouldDisconnect,
    ValidationRequest,
)
from gossip.params import GossipSubParams, ParamError
from gossip.router import (
    PROTOCOL_V10,
    PROTOCOL_V11,
    PROTOCOL_V12,
    DuplicatePublishError,
    GossipRouter,
    NoPeersError,
)
from gossip.validation import ValidationResult
from gossip.wire import RPC, Control, Message, PeerInfo, Prune, SubOpts, decode_rpc, split_frames

T = "t"


def accept(topic: str, data: bytes, peer: bytes) -> ValidationResult:
    return ValidationResult.ACCEPT


class Harness:
    """The router under test plus helpers to play its neighbours."""

    def __init__(self, params: GossipSubParams | None = None, seed: int = 1, **kw: object) -> None:
        kw.setdefault("validator", accept)
        self.now = 0.0
        self.r = GossipRouter(
            local_peer=b"me",
            params=params or GossipSubParams(),
            rng=random.Random(seed),
            **kw,  # type: ignore[arg-type]
        )
        self.sent: dict[bytes, list[RPC]] = {}
        self.frames: dict[bytes, list[bytes]] = {}
        self.evs: list[object] = []

    def add(
        self,
        name: bytes,
        topics: Iterable[str] = (T,),
        outbound: bool = False,
        protocol: str = PROTOCOL_V12,
    ) -> bytes:
        self.r.add_peer(name, protocol, outbound, self.now)
        subs = [SubOpts(True, t) for t in topics]
        if subs:
            self.feed(name, RPC(subscriptions=subs))
        return name

    def add_many(self, n: int, prefix: bytes = b"p", **kw: object) -> list[bytes]:
        return [self.add(prefix + b"%03d" % i, **kw) for i in range(n)]  # type: ignore[arg-type]

    def feed(self, peer: bytes, rpc: RPC) -> None:
        body = rpc.encode()
        from gossip.wire import frame

        self.r.receive(peer, frame(body), self.now)

    def msg(self, peer: bytes, data: bytes, topic: str = T) -> bytes:
        self.feed(peer, RPC(publish=[Message(topic, data)]))
        return self.r.sign_policy.msg_id(Message(topic, data))

    def collect(self) -> dict[bytes, list[RPC]]:
        """Drain the router; return what each peer got since the last collect."""
        out: dict[bytes, list[RPC]] = {}
        for peer, fr in self.r.drain():
            bodies, used = split_frames(fr, self.r.params.max_rpc_size)
            assert used == len(fr) and len(bodies) == 1
            self.frames.setdefault(peer, []).append(fr)
            out.setdefault(peer, []).append(decode_rpc(bodies[0]))
        for k, v in out.items():
            self.sent.setdefault(k, []).extend(v)
        self.evs.extend(self.r.events())
        return out

    def advance(self, dt: float) -> None:
        end = self.now + dt
        while True:
            d = self.r.next_deadline()
            if d is None or d > end:
                break
            self.now = d
            self.r.on_timer(self.now)
        self.now = end

    def heartbeat(self) -> None:
        d = self.r.next_deadline()
        assert d is not None
        self.advance(max(d - self.now, 0.0))


def grafts(rpcs: list[RPC]) -> list[str]:
    return [t for r in rpcs if r.control for t in r.control.graft]


def prunes(rpcs: list[RPC]) -> list[Prune]:
    return [p for r in rpcs if r.control for p in r.control.prune]


def published(rpcs: list[RPC]) -> list[Message]:
    return [m for r in rpcs for m in r.publish]


def ihaves(rpcs: list[RPC]) -> list[tuple[str, list[bytes]]]:
    return [i for r in rpcs if r.control for i in r.control.ihave]


def iwants(rpcs: list[RPC]) -> list[bytes]:
    return [i for r in rpcs if r.control for i in r.control.iwant]


# ---------------------------------------------------------------- parameters


def test_params_defaults_are_the_spec_ones_and_validate() -> None:
    p = GossipSubParams().validate()
    assert (p.D, p.D_lo, p.D_hi, p.D_lazy, p.D_score, p.D_out) == (6, 5, 12, 6, 4, 2)
    assert (p.heartbeat_interval, p.fanout_ttl, p.mcache_len, p.mcache_gossip) == (1.0, 60, 5, 3)
    assert (p.prune_backoff, p.unsubscribe_backoff, p.gossip_factor) == (60, 10, 0.25)
    assert (p.max_ihave_length, p.max_ihave_messages, p.iwant_followup_time) == (5000, 10, 3)
    assert p.seen_ttl == 120 and p.flood_publish


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"D_lo": 7}, "D_lo"),
        ({"D_hi": 5}, "D_hi"),
        ({"D_out": 5}, "D_out"),
        ({"D_score": 13}, "D_score"),
        ({"mcache_gossip": 6}, "mcache_gossip"),
        ({"gossip_factor": 1.5}, "gossip_factor"),
        ({"heartbeat_interval": 0.0}, "heartbeat_interval"),
        ({"max_rpc_size": 10}, "max_rpc_size"),
    ],
)
def test_params_validate_names_the_parameter(change: dict[str, object], name: str) -> None:
    with pytest.raises(ParamError, match=name):
        replace(GossipSubParams(), **change).validate()  # type: ignore[arg-type]


# ---------------------------------------------------------------- mesh


def test_join_grafts_D_peers_and_announces_subscription() -> None:
    h = Harness()
    peers = h.add_many(10)
    h.r.subscribe(T, h.now)
    out = h.collect()
    assert len(h.r.mesh_peers(T)) == 6
    for p in peers:
        assert SubOpts(True, T) in [s for r in out[p] for s in r.subscriptions]
    grafted = {p for p in peers if grafts(out.get(p, []))}
    assert grafted == h.r.mesh_peers(T)


def test_mesh_bounds_after_heartbeat_when_oversubscribed() -> None:
    h = Harness()
    h.r.subscribe(T, h.now)
    peers = h.add_many(20)
    outbound = h.add_many(3, prefix=b"o", outbound=True)
    for p in peers + outbound:  # everyone grafts us
        h.feed(p, RPC(control=Control(graft=[T])))
    # inbound grafts beyond D_hi are refused with PRUNE; mesh never exceeds D_hi + outbound
    assert len(h.r.mesh_peers(T)) <= 12 + 3
    h.collect()
    h.heartbeat()
    mesh = h.r.mesh_peers(T)
    assert len(mesh) == 6
    assert len(mesh & set(outbound)) >= 2  # D_out outbound peers kept
    out = h.collect()
    pruned = {p for p, rpcs in out.items() if prunes(rpcs)}
    assert pruned and not pruned & mesh


def test_mesh_refilled_after_heartbeat_when_below_D_lo() -> None:
    h = Harness()
    peers = h.add_many(10)
    h.r.subscribe(T, h.now)
    h.collect()
    for p in list(h.r.mesh_peers(T))[:3]:
        h.feed(p, RPC(control=Control(prune=[Prune(T, [], 60)])))
    assert len(h.r.mesh_peers(T)) == 3
    h.heartbeat()
    assert len(h.r.mesh_peers(T)) == 6
    assert set(peers) >= h.r.mesh_peers(T)


def test_outbound_quota_grafts_outbound_peers() -> None:
    h = Harness()
    h.r.subscribe(T, h.now)
    inbound = h.add_many(6)
    for p in inbound:
        h.feed(p, RPC(control=Control(graft=[T])))
    out_peers = h.add_many(3, prefix=b"o", outbound=True)
    h.collect()
    h.heartbeat()
    assert len(h.r.mesh_peers(T) & set(out_peers)) >= 2


def test_graft_for_unknown_topic_is_ignored_without_prune() -> None:
    h = Harness()
    p = h.add(b"a", topics=("other",))
    h.feed(p, RPC(control=Control(graft=["other"])))
    assert not prunes(h.collect().get(p, []))
    assert h.r.mesh_peers("other") == set()


def test_unsubscribe_prunes_mesh_with_unsubscribe_backoff() -> None:
    h = Harness()
    h.add_many(8)
    h.r.subscribe(T, h.now)
    mesh = h.r.mesh_peers(T)
    h.collect()
    h.r.unsubscribe(T, h.now)
    out = h.collect()
    for p in mesh:
        (pr,) = prunes(out[p])
        assert pr.topic == T and pr.backoff == 10
    assert T not in h.r.subscriptions()


def test_v10_peer_gets_prune_without_backoff_or_px() -> None:
    h = Harness(GossipSubParams(do_px=True))
    old = h.add(b"old", protocol=PROTOCOL_V10)
    h.add_many(5)
    h.r.subscribe(T, h.now)
    h.collect()
    h.r.unsubscribe(T, h.now)
    out = h.collect()
    (pr,) = prunes(out[old])  # six peers, D=6: old is in the mesh
    assert pr.backoff is None and pr.peers == []
    assert all(prunes(out[p])[0].backoff == 10 for p in out if p != old)


# ---------------------------------------------------------------- backoff


def test_backoff_honoured_after_prune() -> None:
    h = Harness()
    a = h.add(b"a")
    h.r.subscribe(T, h.now)
    assert a in h.r.mesh_peers(T)
    h.collect()
    h.feed(a, RPC(control=Control(prune=[Prune(T, [], 5)])))
    assert a not in h.r.mesh_peers(T)
    h.advance(5.0)  # backoff running (plus one heartbeat of slack): no GRAFT to a
    assert a not in h.r.mesh_peers(T)
    assert not grafts(h.collect().get(a, []))
    h.advance(2.5)
    assert a in h.r.mesh_peers(T)
    assert grafts(h.collect()[a]) == [T]


def test_graft_during_backoff_is_refused_and_penalised() -> None:
    from gossip.score_params import PeerScoreParams, TopicScoreParams

    sp = PeerScoreParams(topics={T: TopicScoreParams()}, behaviour_penalty_threshold=0.0)
    h = Harness(score_params=sp)
    a = h.add(b"a")
    h.r.subscribe(T, h.now)
    h.collect()
    h.r.unsubscribe(T, h.now)
    h.r.subscribe(T, h.now)  # back in, but a is in our backoff now
    h.collect()
    before = h.r.score_of(a, h.now)
    h.feed(a, RPC(control=Control(graft=[T])))
    assert a not in h.r.mesh_peers(T)
    assert [p.topic for p in prunes(h.collect()[a])] == [T]
    h.advance(1.0)
    assert h.r.score_of(a, h.now) < before  # P7 behaviour penalty


# ---------------------------------------------------------------- gossip


def _published_with_a_peer() -> tuple[Harness, bytes, bytes]:
    """A router with two peers that published one message and wrote it out."""
    h = Harness()
    a = h.add(b"a")
    h.add(b"b")
    h.r.subscribe(T, h.now)
    mid = h.r.publish(T, b"payload", h.now)
    h.collect()
    return h, a, mid


def test_iwant_answered_from_mcache_within_retransmission_limit() -> None:
    h, a, mid = _published_with_a_peer()
    served = 0
    for _ in range(5):  # each ask answered in its own write
        h.feed(a, RPC(control=Control(iwant=[mid])))
        served += len(published(h.collect().get(a, [])))
    assert served == 3  # gossip_retransmission
    assert h.r.metrics.iwant_refused == 2


def test_iwant_asked_twice_before_the_write_is_served_once() -> None:
    h, a, mid = _published_with_a_peer()
    h.feed(a, RPC(control=Control(iwant=[mid])))
    h.feed(a, RPC(control=Control(iwant=[mid])))
    assert len(published(h.collect().get(a, []))) == 1
    assert h.r.metrics.iwant_served == 2  # both count toward the retransmission limit


def test_iwant_not_answered_after_message_leaves_mcache() -> None:
    h = Harness()
    a = h.add(b"a")
    h.r.subscribe(T, h.now)
    mid = h.r.publish(T, b"payload", h.now)
    h.collect()
    h.advance(5.5)  # mcache_len heartbeats
    h.feed(a, RPC(control=Control(iwant=[mid])))
    assert published(h.collect().get(a, [])) == []
    assert h.r.seen(mid)  # still seen though: no re-delivery


def test_ihave_for_unseen_ids_gets_iwant_and_a_promise() -> None:
    h = Harness()
    a = h.add(b"a")
    h.r.subscribe(T, h.now)
    h.collect()
    known = h.msg(b"a", b"known")
    h.collect()
    h.feed(a, RPC(control=Control(ihave=[(T, [known, b"new1", b"new2"])])))
    assert sorted(iwants(h.collect()[a])) == [b"new1", b"new2"]
    # the promise breaks after iwant_followup_time
    h.advance(4.5)
    assert h.r.metrics.broken_promises == 1


def test_ihave_limits_per_heartbeat() -> None:
    h = Harness(GossipSubParams(max_ihave_messages=2, max_ihave_length=7))
    a = h.add(b"a")
    h.r.subscribe(T, h.now)
    h.collect()
    for i in range(4):
        h.feed(a, RPC(control=Control(ihave=[(T, [b"x%d%d" % (i, j) for j in range(5)])])))
    asked = iwants(h.collect()[a])
    assert len(asked) == 7  # max_ihave_length ids per heartbeat in total
    assert h.r.metrics.ihave_ignored == 2  # third and fourth IHAVE over max_ihave_messages
    h.heartbeat()
    h.feed(a, RPC(control=Control(ihave=[(T, [b"fresh"])])))
    assert iwants(h.collect()[a]) == [b"fresh"]


def test_ihave_for_topic_not_joined_is_ignored() -> None:
    h = Harness()
    a = h.add(b"a", topics=("other",))
    h.feed(a, RPC(control=Control(ihave=[("other", [b"x"])])))
    assert iwants(h.collect().get(a, [])) == []


def test_heartbeat_gossips_ihave_to_non_mesh_peers_only() -> None:
    h = Harness(GossipSubParams(D=2, D_lo=1, D_hi=3, D_score=1, D_out=0, D_lazy=3))
    peers = h.add_many(8)
    h.r.subscribe(T, h.now)
    mid = h.r.publish(T, b"m", h.now)
    mesh = h.r.mesh_peers(T)
    h.collect()
    h.heartbeat()
    out = h.collect()
    got = {p for p in peers if any(mid in ids for _, ids in ihaves(out.get(p, [])))}
    assert len(got) == 3  # max(D_lazy, gossip_factor * 6)
    assert not got & mesh


# ---------------------------------------------------------------- publish


def test_flood_publish_sends_to_all_topic_peers() -> None:
    h = Harness()
    peers = h.add_many(15)
    h.r.subscribe(T, h.now)
    h.collect()
    h.r.publish(T, b"flood", h.now)
    out = h.collect()
    assert all(published(out[p]) for p in peers)


def test_without_flood_publish_only_mesh_gets_it() -> None:
    h = Harness(GossipSubParams(flood_publish=False))
    h.add_many(15)
    h.r.subscribe(T, h.now)
    h.collect()
    h.r.publish(T, b"mesh only", h.now)
    out = h.collect()
    assert {p for p, rpcs in out.items() if published(rpcs)} == h.r.mesh_peers(T)


def test_fanout_used_then_expires_after_ttl() -> None:
    h = Harness(GossipSubParams(flood_publish=False, fanout_ttl=10))
    h.add_many(10, topics=("x",))
    h.r.publish("x", b"1", h.now)
    fan = h.r.fanout_peers("x")
    assert len(fan) == 6
    out = h.collect()
    assert {p for p, rpcs in out.items() if published(rpcs)} == fan
    h.advance(5)
    h.r.publish("x", b"2", h.now)  # refreshes the TTL
    h.advance(9)
    assert h.r.fanout_peers("x") == fan
    h.advance(2)
    assert h.r.fanout_peers("x") == set()
    assert h.r._fanout is None and h.r._fanout_last is None  # nothing kept for no topic


def test_subscribing_turns_the_fanout_into_the_mesh() -> None:
    h = Harness(GossipSubParams(flood_publish=False))
    h.add_many(10, topics=("x",))
    h.r.publish("x", b"1", h.now)
    fan = h.r.fanout_peers("x")
    h.r.subscribe("x", h.now)
    assert h.r.mesh_peers("x") == fan and h.r.fanout_peers("x") == set()
    assert h.r._fanout is None


def test_publish_without_peers_raises_and_can_be_retried() -> None:
    h = Harness()
    h.r.subscribe(T, h.now)
    with pytest.raises(NoPeersError):
        h.r.publish(T, b"alone", h.now)
    h.add(b"a")
    h.r.publish(T, b"alone", h.now)  # not poisoned in the seen cache by the failure
    with pytest.raises(DuplicatePublishError):
        h.r.publish(T, b"alone", h.now)


def test_own_publish_is_delivered_locally() -> None:
    h = Harness()
    h.add(b"a")
    h.r.subscribe(T, h.now)
    mid = h.r.publish(T, b"mine", h.now)
    h.collect()
    (d,) = [e for e in h.evs if isinstance(e, Delivered)]
    assert d.msg_id == mid and d.received_from == b"me"


# ---------------------------------------------------------------- messages


def test_forward_to_mesh_except_source_and_deliver_once() -> None:
    h = Harness()
    peers = h.add_many(8)
    h.r.subscribe(T, h.now)
    mesh = h.r.mesh_peers(T)
    h.collect()
    src = next(iter(mesh))
    h.msg(src, b"hello")
    h.msg(src, b"hello")  # duplicate
    out = h.collect()
    got = {p for p in peers if published(out.get(p, []))}
    assert got == mesh - {src}
    assert [e.data for e in h.evs if isinstance(e, Delivered)] == [b"hello"]
    assert h.r.metrics.msgs_duplicate == 1


def test_rejected_message_not_forwarded() -> None:
    h = Harness(validator=lambda t, d, p: ValidationResult.REJECT)
    h.add_many(4)
    h.r.subscribe(T, h.now)
    src = next(iter(h.r.mesh_peers(T)))
    h.collect()
    h.msg(src, b"bad")
    assert not any(published(r) for r in h.collect().values())
    assert h.r.metrics.msgs_rejected == 1


def test_async_validation_request_then_done() -> None:
    h = Harness(validator=None)
    h.add_many(4)
    h.r.subscribe(T, h.now)
    src = next(iter(h.r.mesh_peers(T)))
    h.collect()
    mid = h.msg(src, b"later")
    (req,) = [e for e in h.r.events() if isinstance(e, ValidationRequest)]
    assert req.msg_id == mid and req.data == b"later"
    assert not any(published(r) for r in h.collect().values())
    h.r.validation_done(mid, ValidationResult.ACCEPT, h.now)
    assert sum(len(published(r)) for r in h.collect().values()) == 3


def test_message_for_unsubscribed_topic_dropped() -> None:
    h = Harness()
    a = h.add(b"a", topics=("x",))
    h.msg(a, b"nope", topic="x")
    h.collect()
    assert not [e for e in h.evs if isinstance(e, Delivered)]
    assert h.r.metrics.msgs_unsubscribed_topic == 1


def test_seen_cache_ttl() -> None:
    h = Harness(GossipSubParams(seen_ttl=30))
    a = h.add(b"a")
    h.r.subscribe(T, h.now)
    h.msg(a, b"once")
    h.advance(20)
    h.msg(a, b"once")
    h.collect()
    assert len([e for e in h.evs if isinstance(e, Delivered)]) == 1
    h.advance(15)  # past the TTL: the same payload is a new message again
    h.msg(a, b"once")
    h.collect()
    assert len([e for e in h.evs if isinstance(e, Delivered)]) == 2


def test_strict_no_sign_rejects_author_fields() -> None:
    h = Harness()
    a = h.add(b"a")
    h.r.subscribe(T, h.now)
    h.feed(a, RPC(publish=[Message(T, b"x", from_=b"a", seqno=b"\x00" * 8)]))
    h.collect()
    assert h.r.metrics.msgs_policy_rejected == 1
    assert not [e for e in h.evs if isinstance(e, Delivered)]


def test_strict_sign_accepts_good_and_rejects_forged_without_poisoning_seen() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    from gossip.msgid import StrictSign

    keys = {b"alice": Ed25519PrivateKey.generate()}

    def verify(author: bytes, payload: bytes, sig: bytes, key: bytes | None) -> bool:
        k = keys.get(author)
        if k is None:
            return False
        pub: Ed25519PublicKey = k.public_key()
        try:
            pub.verify(sig, payload)
        except Exception:
            return False
        return True

    alice = GossipRouter(
        local_peer=b"alice",
        rng=random.Random(2),
        sign_policy=StrictSign(verify, keys[b"alice"].sign),
    )
    alice.add_peer(b"me", PROTOCOL_V12, True, 0.0)
    alice.receive_rpc(b"me", RPC([SubOpts(True, T)]), 0.0)
    alice.drain()
    h = Harness(sign_policy=StrictSign(verify))
    h.add(b"alice")
    h.r.subscribe(T, h.now)
    alice.publish(T, b"signed", 0.0)
    ((_, good),) = alice.drain_rpcs()
    real = good.publish[0]
    forged = Message(T, b"evil", real.from_, real.seqno, real.signature)
    h.feed(b"alice", RPC(publish=[forged]))
    h.feed(b"alice", good)
    h.collect()
    assert [e.data for e in h.evs if isinstance(e, Delivered)] == [b"signed"]
    assert h.r.metrics.msgs_policy_rejected == 1


# ---------------------------------------------------------------- IDONTWANT


def test_idontwant_honoured_when_forwarding() -> None:
    h = Harness()
    peers = h.add_many(6)
    h.r.subscribe(T, h.now)
    h.collect()
    mesh = sorted(h.r.mesh_peers(T))
    src, shy = mesh[0], mesh[1]
    mid = Harness().r.sign_policy.msg_id(Message(T, b"big"))
    h.feed(shy, RPC(control=Control(idontwant=[mid])))
    h.msg(src, b"big")
    out = h.collect()
    assert not published(out.get(shy, []))
    assert all(published(out[p]) for p in mesh[2:])
    assert h.r.metrics.msgs_skipped_idontwant == 1
    assert set(mesh) <= set(peers)


def test_idontwant_sent_for_large_messages_to_v12_mesh_peers_only() -> None:
    h = Harness(GossipSubParams(idontwant_message_threshold=100))
    h.add_many(3, protocol=PROTOCOL_V12)
    h.add_many(3, prefix=b"q", protocol=PROTOCOL_V11)
    h.r.subscribe(T, h.now)
    mesh = h.r.mesh_peers(T)
    h.collect()
    src = sorted(mesh)[0]
    mid = h.msg(src, b"x" * 200)
    out = h.collect()
    told = {p for p, rpcs in out.items() for r in rpcs if r.control and mid in r.control.idontwant}
    assert told == {p for p in mesh if p.startswith(b"p") and p != src}


# ---------------------------------------------------------------- scoring thresholds


def _scored(**kw: Any) -> Harness:
    from gossip.score_params import PeerScoreParams, TopicScoreParams

    return Harness(score_params=PeerScoreParams(topics={T: TopicScoreParams()}), **kw)


def test_px_accepted_only_above_accept_px_threshold() -> None:
    h = _scored()
    good, bad = h.add(b"good"), h.add(b"bad")
    h.r.subscribe(T, h.now)
    h.collect()
    assert h.r.peer_score is not None
    h.r.set_app_score(good, 500.0)
    offer = [PeerInfo(b"x1", b"rec1"), PeerInfo(b"x2", None)]
    h.feed(bad, RPC(control=Control(prune=[Prune(T, offer, 60)])))
    h.feed(good, RPC(control=Control(prune=[Prune(T, offer, 60)])))
    h.collect()
    px = [e for e in h.evs if isinstance(e, PeerExchange)]
    assert len(px) == 1 and px[0].from_peer == good
    assert [c.peer_id for c in px[0].candidates] == [b"x1", b"x2"]
    assert h.r.metrics.px_refused == 1


def test_graylisted_peer_ignored_and_reported_once() -> None:
    h = _scored()
    a = h.add(b"a")
    h.r.subscribe(T, h.now)
    h.collect()
    h.r.set_app_score(a, -20000.0)
    h.msg(a, b"x")
    h.msg(a, b"y")
    h.collect()
    assert not [e for e in h.evs if isinstance(e, Delivered)]
    assert [e.peer for e in h.evs if isinstance(e, PeerGraylisted)] == [a]
    assert [e.peer for e in h.evs if isinstance(e, PeerShouldDisconnect)] == [a]
    assert h.r.metrics.graylisted_rpcs == 2


def test_gossip_threshold_gates_ihave_and_iwant() -> None:
    h = _scored()
    a = h.add(b"a")
    h.r.subscribe(T, h.now)
    mid = h.r.publish(T, b"m", h.now)
    h.collect()
    h.r.set_app_score(a, -5000.0)
    h.feed(a, RPC(control=Control(ihave=[(T, [b"zz"])], iwant=[mid])))
    out = h.collect().get(a, [])
    assert not iwants(out) and not published(out)


def test_publish_threshold_excludes_low_peers_from_flood_publish() -> None:
    h = _scored()
    a, b = h.add(b"a"), h.add(b"b")
    h.r.subscribe(T, h.now)
    h.collect()
    h.r.set_app_score(a, -9000.0)
    h.r.publish(T, b"m", h.now)
    out = h.collect()
    assert published(out[b]) and not published(out.get(a, []))


def test_negative_score_peers_pruned_from_mesh_at_heartbeat() -> None:
    h = _scored()
    h.add_many(6)
    h.r.subscribe(T, h.now)
    victim = sorted(h.r.mesh_peers(T))[0]
    h.collect()
    h.r.set_app_score(victim, -1.0)
    h.heartbeat()
    assert victim not in h.r.mesh_peers(T)
    (pr,) = prunes(h.collect()[victim])
    assert pr.peers == []  # no PX for a peer we distrust


def test_opportunistic_graft_when_mesh_median_is_low() -> None:
    params = GossipSubParams(opportunistic_graft_ticks=3)
    h = _scored(params=params)
    h.add_many(6)
    h.r.subscribe(T, h.now)
    mesh = set(h.r.mesh_peers(T))
    assert len(mesh) == 6
    better = h.add_many(4, prefix=b"g")
    for p in better:
        h.r.set_app_score(p, 50.0)
    h.collect()
    h.advance(3.2)  # three heartbeats: one opportunistic-graft round
    grafted = h.r.mesh_peers(T) & set(better)
    assert len(grafted) == 2  # opportunistic_graft_peers


def test_scores_of_invalid_senders_decay_over_time() -> None:
    from gossip.score_params import PeerScoreParams, TopicScoreParams

    tp = TopicScoreParams(invalid_message_deliveries_decay=0.5)
    h = Harness(
        score_params=PeerScoreParams(topics={T: tp}),
        validator=lambda t, d, p: ValidationResult.REJECT,
    )
    a = h.add(b"a")
    h.r.subscribe(T, h.now)
    for i in range(5):
        h.msg(a, b"bad%d" % i)
    s0 = h.r.score_of(a, h.now)
    assert s0 < 0
    h.advance(5.0)
    s1 = h.r.score_of(a, h.now)
    assert s0 < s1 < 0


# ---------------------------------------------------------------- queues and frames


def test_everything_queued_for_a_peer_leaves_in_one_frame() -> None:
    h = Harness()
    peers = h.add_many(3)
    h.r.subscribe(T, h.now)
    src = sorted(h.r.mesh_peers(T))[0]
    h.collect()
    for i in range(20):
        h.msg(src, b"m%d" % i)
    h.feed(peers[1], RPC(control=Control(ihave=[(T, [b"unknown"])])))
    out = h.collect()
    for p in peers[1:]:
        assert len(out[p]) == 1  # one frame
        assert len(published(out[p])) == 20
    assert iwants(out[peers[1]]) == [b"unknown"]


def test_frames_split_at_max_rpc_size() -> None:
    h = Harness(GossipSubParams(max_rpc_size=2048))
    h.add_many(2)
    h.r.subscribe(T, h.now)
    src = sorted(h.r.mesh_peers(T))[0]
    h.r.drain()
    for i in range(20):
        h.msg(src, b"%03d" % i + b"x" * 300)
    frames = [f for p, f in h.r.drain() if p != src]
    assert len(frames) > 1 and all(len(f) <= 2048 + 3 for f in frames)
    msgs = [m for f in frames for b in split_frames(f, 4096)[0] for m in decode_rpc(b).publish]
    assert [m.data[:3] for m in msgs] == [b"%03d" % i for i in range(20)]


def test_forward_queue_bounded_but_own_publishes_kept() -> None:
    h = Harness(GossipSubParams(max_queued_messages=5))
    a, b = h.add(b"a"), h.add(b"b")
    h.r.subscribe(T, h.now)
    h.r.drain()
    for i in range(10):
        h.msg(a, b"fwd%d" % i)
    assert h.r.queued_messages(b) == 5
    assert h.r.metrics.queue_overflow == 5
    for i in range(3):
        h.r.publish(T, b"own%d" % i, h.now)
    assert h.r.queued_messages(b) == 8  # own messages are never dropped


def test_malformed_frames_counted_then_disconnect_asked() -> None:
    h = Harness(GossipSubParams(max_malformed_frames=2))
    a = h.add(b"a")
    for _ in range(3):
        h.r.receive(a, b"\x03\x12\x05x", h.now)
    h.collect()
    assert h.r.metrics.malformed_frames == 3
    assert [e.peer for e in h.evs if isinstance(e, PeerShouldDisconnect)] == [a]


def test_overflowing_a_peer_queue_costs_it_a_behaviour_penalty_once() -> None:
    from gossip.score_params import PeerScoreParams, TopicScoreParams

    sp = PeerScoreParams(topics={T: TopicScoreParams()}, behaviour_penalty_threshold=0.0)
    h = Harness(GossipSubParams(max_queued_messages=2), score_params=sp)
    a, b, c = h.add(b"a"), h.add(b"b"), h.add(b"c")
    h.r.subscribe(T, h.now)
    h.r.drain()
    h.r.remove_peer(c, h.now)
    for i in range(4):
        h.msg(a, b"fwd%d" % i)  # b's queue overflows
    h.heartbeat()
    once = h.r.score_of(b, h.now)
    assert once < 0 <= h.r.score_of(a, h.now)  # a only delivered
    h.r.drain()
    h.heartbeat()
    assert h.r.score_of(b, h.now) >= once  # not penalised again without a new overflow


def test_idontwant_lasts_its_ttl_in_heartbeats_then_is_forgotten() -> None:
    h = Harness(GossipSubParams(idontwant_ttl_heartbeats=2))
    h.add_many(6)
    h.r.subscribe(T, h.now)
    h.collect()
    src, shy = sorted(h.r.mesh_peers(T))[:2]
    mid = h.r.sign_policy.msg_id(Message(T, b"later"))
    h.feed(shy, RPC(control=Control(idontwant=[mid])))
    h.heartbeat()
    assert h.r._dontwant is not None
    h.heartbeat()
    assert h.r._dontwant is None  # expired, and the map itself dropped
    h.msg(src, b"later")
    assert published(h.collect().get(shy, []))
    assert h.r.metrics.msgs_skipped_idontwant == 0


def test_a_peer_that_reconnects_starts_with_a_clean_record() -> None:
    """Malformed-frame counts and IDONTWANTs belong to the connection."""
    h = Harness(GossipSubParams(max_malformed_frames=2))
    a, b = h.add(b"a"), h.add(b"b")
    h.r.subscribe(T, h.now)
    mid = h.r.sign_policy.msg_id(Message(T, b"m"))
    h.feed(a, RPC(control=Control(idontwant=[mid])))
    for _ in range(2):
        h.r.receive(a, b"\x03\x12\x05x", h.now)
    h.r.remove_peer(a, h.now)
    a = h.add(b"a")
    h.feed(a, RPC(control=Control(graft=[T])))
    for _ in range(2):
        h.r.receive(a, b"\x03\x12\x05x", h.now)
    h.collect()
    assert not [e for e in h.evs if isinstance(e, PeerShouldDisconnect)]
    h.r.receive(a, b"\x03\x12\x05x", h.now)  # the third since reconnecting
    h.collect()
    assert [e.peer for e in h.evs if isinstance(e, PeerShouldDisconnect)] == [a]
    h.msg(b, b"m")
    assert a in h.r.mesh_peers(T) and published(h.collect()[a])


def test_topic_count_per_peer_bounded() -> None:
    h = Harness(GossipSubParams(max_topics_per_peer=3))
    a = h.add(b"a", topics=[f"t{i}" for i in range(10)])
    assert sum(1 for i in range(10) if a in h.r.topic_peers(f"t{i}")) == 3


def test_remove_peer_forgets_it_everywhere() -> None:
    h = Harness()
    a = h.add(b"a")
    h.r.subscribe(T, h.now)
    h.r.publish(T, b"q", h.now)
    h.r.remove_peer(a, h.now)
    assert a not in h.r.mesh_peers(T) and a not in h.r.topic_peers(T)
    assert h.r.drain() == []


def test_graft_from_a_peer_not_subscribed_is_refused() -> None:
    h = Harness()
    a = h.add(b"a", topics=())
    h.r.subscribe(T, h.now)
    h.collect()
    h.feed(a, RPC(control=Control(graft=[T])))
    assert a not in h.r.mesh_peers(T)
    assert [p.topic for p in prunes(h.collect()[a])] == [T]
    # subscribing and grafting in one RPC is fine (subscriptions are handled first)
    b = h.add(b"b", topics=())
    h.feed(b, RPC(subscriptions=[SubOpts(True, T)], control=Control(graft=[T])))
    assert b in h.r.mesh_peers(T)


def test_graft_refused_when_mesh_full_from_inbound_but_accepted_from_outbound() -> None:
    h = Harness()
    h.r.subscribe(T, h.now)
    for p in h.add_many(12):
        h.feed(p, RPC(control=Control(graft=[T])))
    assert len(h.r.mesh_peers(T)) == 12
    h.collect()
    late_in = h.add(b"late-in")
    late_out = h.add(b"late-out", outbound=True)
    h.feed(late_in, RPC(control=Control(graft=[T])))
    h.feed(late_out, RPC(control=Control(graft=[T])))
    assert late_in not in h.r.mesh_peers(T) and late_out in h.r.mesh_peers(T)
    assert prunes(h.collect()[late_in])


def test_remote_backoff_is_capped() -> None:
    h = Harness(GossipSubParams(max_backoff=100.0))
    a = h.add(b"a")
    h.r.subscribe(T, h.now)
    h.collect()
    h.feed(a, RPC(control=Control(prune=[Prune(T, [], 2**63)])))
    h.advance(102.0)
    assert a in h.r.mesh_peers(T)  # regrafted once the capped backoff ran out


def test_kept_promise_is_not_penalised() -> None:
    h = Harness()
    a = h.add(b"a")
    h.r.subscribe(T, h.now)
    mid = h.r.sign_policy.msg_id(Message(T, b"promised"))
    h.feed(a, RPC(control=Control(ihave=[(T, [mid])])))
    assert iwants(h.collect()[a]) == [mid]
    h.advance(1.0)
    h.msg(a, b"promised")
    h.advance(5.0)
    assert h.r.metrics.broken_promises == 0


def test_prune_offers_px_with_signed_records_when_enabled() -> None:
    records = {b"p%03d" % i: b"record-%d" % i for i in range(8)}
    h = Harness(GossipSubParams(do_px=True), peer_record=records.get)
    h.add_many(8)
    h.r.subscribe(T, h.now)
    mesh = h.r.mesh_peers(T)
    h.collect()
    h.r.unsubscribe(T, h.now)
    out = h.collect()
    victim = sorted(mesh)[0]
    (pr,) = prunes(out[victim])
    assert pr.peers and all(pi.peer_id != victim for pi in pr.peers)
    assert all(pi.signed_record == records.get(pi.peer_id or b"") for pi in pr.peers)


def test_peer_protocol_is_what_was_negotiated() -> None:
    from gossip.params import GossipSubParams
    from gossip.router import PROTOCOL_V11, PROTOCOL_V12, GossipRouter

    r = GossipRouter(local_peer=b"me", params=GossipSubParams(), rng=random.Random(1))
    r.add_peer(b"a", PROTOCOL_V12, True, 0.0)
    r.add_peer(b"b", PROTOCOL_V11, False, 0.0)
    assert r.peer_protocol(b"a") == PROTOCOL_V12
    assert r.peer_protocol(b"b") == PROTOCOL_V11
    assert r.peer_protocol(b"nobody") is None
    r.remove_peer(b"a", 1.0)
    assert r.peer_protocol(b"a") is None


def test_parameters_are_validated_once_per_object_and_always_when_new() -> None:
    good = GossipSubParams(D=7)
    calls = []

    class Counting(GossipSubParams):
        def validate(self) -> GossipSubParams:
            calls.append(self)
            return super().validate()

    counted = Counting(D=7)
    for _ in range(3):
        GossipRouter(local_peer=b"me", rng=random.Random(1), params=counted)
    assert calls == [counted]  # the same object: once
    GossipRouter(local_peer=b"me", rng=random.Random(1), params=good)
    with pytest.raises(ParamError, match="D"):
        GossipRouter(local_peer=b"me", rng=random.Random(1), params=GossipSubParams(D=0))
    bad = Counting(D=-1)
    for _ in range(2):  # one that failed is checked again, and fails again
        with pytest.raises(ParamError):
            GossipRouter(local_peer=b"me", rng=random.Random(1), params=bad)
    assert calls == [counted, bad, bad]
