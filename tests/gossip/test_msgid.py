"""StrictSign message ids: go-style (`from || seqno`) and js-style (protobuf public
key || seqno), and why a node must compute the ids its neighbours compute."""

from __future__ import annotations

import random

import pytest
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID

from gossip.msgid import MSG_ID_STYLES, go_style_id, js_style_id
from gossip.router import PROTOCOL_V12, GossipRouter
from gossip.score_params import PeerScoreParams, TopicScoreParams
from gossip.validation import ValidationResult
from gossip.wire import RPC, Control, Message, SubOpts
from p2pnode.errors import UserError
from p2pnode.pubsub import libp2p_sign_policy

T = "t"
SEQNO = bytes.fromhex("0102030405060708")


def test_go_style_is_the_peer_id_then_the_seqno() -> None:
    kp = create_new_key_pair()
    pid = ID.from_pubkey(kp.public_key).to_bytes()
    assert go_style_id(Message(T, b"x", pid, SEQNO)) == pid + SEQNO


def test_js_style_is_the_protobuf_public_key_then_the_seqno() -> None:
    """As js-libp2p computes it: publicKeyToProtobuf(from.publicKey) || seqno, 44
    bytes for an Ed25519 author, where the peer id is `00 24` + those 36 bytes."""
    kp = create_new_key_pair()
    pid = ID.from_pubkey(kp.public_key).to_bytes()
    proto_key = kp.public_key.serialize()
    assert proto_key[:4] == bytes.fromhex("08011220") and pid == b"\x00\x24" + proto_key
    mid = js_style_id(Message(T, b"x", pid, SEQNO))
    assert mid == proto_key + SEQNO and len(mid) == 44


def test_js_style_takes_the_key_field_when_the_peer_id_is_a_hash() -> None:
    hashed_id = b"\x12\x20" + bytes(32)  # sha256 multihash (RSA-style ids)
    key = b"\x08\x00\x12\x05rsa!!"
    assert js_style_id(Message(T, b"x", hashed_id, SEQNO, key=key)) == key + SEQNO
    # a truncated identity multihash embeds nothing
    assert js_style_id(Message(T, b"x", b"\x00\x24\x08", SEQNO, key=key)) == key + SEQNO


def test_libp2p_policy_takes_the_style_by_name_and_names_a_bad_one() -> None:
    kp = create_new_key_pair()
    assert libp2p_sign_policy(kp).id_fn is go_style_id
    assert libp2p_sign_policy(kp, "js").id_fn is js_style_id
    assert set(MSG_ID_STYLES) == {"go", "js"}
    with pytest.raises(UserError, match="id_style='rust'"):
        libp2p_sign_policy(kp, "rust")


def _pair(style_a: str, style_b: str) -> tuple[GossipRouter, GossipRouter]:
    """Two scored routers under StrictSign, `a` publishing with `style_a` ids and
    `b` judging with `style_b`, connected but not meshed (b gets a's gossip)."""
    kps = {name: create_new_key_pair() for name in ("a", "b")}
    routers = []
    for name, style in (("a", style_a), ("b", style_b)):
        kp = kps[name]
        routers.append(
            GossipRouter(
                local_peer=ID.from_pubkey(kp.public_key).to_bytes(),
                rng=random.Random(1),
                sign_policy=libp2p_sign_policy(kp, style),
                score_params=PeerScoreParams(topics={T: TopicScoreParams()}),
                validator=lambda topic, data, peer: ValidationResult.ACCEPT,
            )
        )
    a, b = routers
    a.add_peer(b.local_peer, PROTOCOL_V12, True, 0.0)
    b.add_peer(a.local_peer, PROTOCOL_V12, False, 0.0)
    a.receive_rpc(b.local_peer, RPC([SubOpts(True, T)]), 0.0)
    b.receive_rpc(a.local_peer, RPC([SubOpts(True, T)]), 0.0)
    return a, b


@pytest.mark.parametrize(("style_a", "style_b", "broken"), [("js", "js", 0), ("go", "js", 1)])
def test_gossip_ids_match_only_when_both_sides_compute_the_same_id(
    style_a: str, style_b: str, broken: int
) -> None:
    """b holds a's message (it came directly); a's IHAVE then names it. With the
    same id function b asks for nothing; with another, b asks for an id it already
    holds under its own name, the answer never matches the promise, and a pays a
    broken-promise penalty for honest gossip."""
    a, b = _pair(style_a, style_b)
    b.subscribe(T, 0.0)
    b.drain_rpcs()
    own_id = a.publish(T, b"order", 0.0)  # a is not subscribed: flood publish to b
    for _peer, rpc in a.drain_rpcs():
        b.receive_rpc(a.local_peer, rpc, 0.1)
    assert b.metrics.msgs_delivered == 1
    b.receive_rpc(a.local_peer, RPC(control=Control(ihave=[(T, [own_id])])), 0.2)
    asked = [i for _, rpc in b.drain_rpcs() if rpc.control for i in rpc.control.iwant]
    assert len(asked) == broken
    for mid in asked:  # a answers honestly from its cache
        a.receive_rpc(b.local_peer, RPC(control=Control(iwant=[mid])), 0.3)
    for _, rpc in a.drain_rpcs():
        b.receive_rpc(a.local_peer, rpc, 0.4)
    b.heartbeat(5.0)  # past iwant_followup_time
    assert b.metrics.broken_promises == broken
