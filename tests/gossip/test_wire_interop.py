"""Our codec against the protobuf package's reading of the same schema (py-libp2p's
generated rpc_pb2): what one encodes the other decodes to the same values."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from libp2p.pubsub.pb import rpc_pb2

from gossip.wire import RPC, Control, Message, PeerInfo, Prune, SubOpts, decode_rpc

topics = st.text(max_size=12)
blobs = st.binary(max_size=24)


def _reference() -> rpc_pb2.RPC:
    ref = rpc_pb2.RPC()
    s = ref.subscriptions.add()
    s.subscribe = True
    s.topicid = "orders"
    m = ref.publish.add()
    m.from_id = b"\x00\x24peer"
    m.data = b"payload"
    m.seqno = b"\x00" * 7 + b"\x01"
    m.topicIDs.append("orders")  # py-libp2p keeps the old repeated field; same bytes
    m.signature = b"sig"
    ih = ref.control.ihave.add()
    ih.topicID = "orders"
    ih.messageIDs.extend([b"m1", b"m2"])
    ref.control.iwant.add().messageIDs.extend([b"m3"])
    ref.control.graft.add().topicID = "orders"
    pr = ref.control.prune.add()
    pr.topicID = "hubs"
    pi = pr.peers.add()
    pi.peerID = b"px"
    pi.signedPeerRecord = b"rec"
    pr.backoff = 60
    ref.control.idontwant.add().messageIDs.extend([b"m4"])
    return ref


def test_we_decode_what_protobuf_encodes() -> None:
    rpc = decode_rpc(_reference().SerializeToString())
    assert rpc.subscriptions == [SubOpts(True, "orders")]
    assert rpc.publish == [
        Message("orders", b"payload", b"\x00\x24peer", b"\x00" * 7 + b"\x01", b"sig")
    ]
    assert rpc.control == Control(
        ihave=[("orders", [b"m1", b"m2"])],
        iwant=[b"m3"],
        graft=["orders"],
        prune=[Prune("hubs", [PeerInfo(b"px", b"rec")], 60)],
        idontwant=[b"m4"],
    )


def test_protobuf_decodes_what_we_encode() -> None:
    ours = RPC(
        [SubOpts(False, "hubs")],
        [Message("hubs", b"d", seqno=b"\x01" * 8)],
        Control(graft=["hubs"], prune=[Prune("orders", [], 10)], iwant=[b"x"]),
    )
    ref = rpc_pb2.RPC()
    ref.ParseFromString(ours.encode())
    assert ref.subscriptions[0].subscribe is False
    assert ref.subscriptions[0].topicid == "hubs"
    assert ref.publish[0].data == b"d"
    assert list(ref.publish[0].topicIDs) == ["hubs"]
    assert ref.publish[0].seqno == b"\x01" * 8
    assert ref.control.graft[0].topicID == "hubs"
    assert ref.control.prune[0].backoff == 10
    assert list(ref.control.iwant[0].messageIDs) == [b"x"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.builds(Message, topic=topics, data=blobs, seqno=st.none() | blobs), max_size=4),
    st.lists(st.tuples(st.booleans(), topics), max_size=3),
)
def test_messages_agree_with_protobuf(msgs: list[Message], subs: list[tuple[bool, str]]) -> None:
    ours = RPC([SubOpts(s, t) for s, t in subs], msgs)
    ref = rpc_pb2.RPC()
    ref.ParseFromString(ours.encode())
    assert [(m.topicIDs[0], m.data) for m in ref.publish] == [(m.topic, m.data) for m in msgs]
    assert decode_rpc(ref.SerializeToString()) == ours
