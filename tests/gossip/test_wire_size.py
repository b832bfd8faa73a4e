"""`RPC.encoded_size()` is arithmetic (the simulator sizes every RPC it sends without
encoding it), so it must equal the length of the real encoding for any RPC:
lengths on both sides of every varint boundary, non-ASCII topics, huge backoffs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gossip.wire import RPC, Control, Message, PeerInfo, Prune, SubOpts, uvarint, uvarint_size

# lengths around the one/two/three-byte varint boundaries, built cheaply
sizes = st.one_of(
    st.integers(0, 140),
    st.integers(16_370, 16_400),
    st.sampled_from([127, 128, 129, 16_383, 16_384, 16_385]),
)
blobs = st.one_of(st.binary(max_size=40), sizes.map(bytes))
opt_blobs = st.none() | blobs
topics = st.one_of(
    st.text(max_size=20),  # any code points: the UTF-8 length differs from len()
    st.integers(120, 200).map(lambda n: "t" * n),
    st.integers(40, 70).map(lambda n: "é" * n),
)
many_ids = st.integers(0, 600).map(lambda n: [b"%032d" % i for i in range(n)])
id_lists = st.one_of(st.lists(blobs, max_size=5), many_ids)

messages = st.builds(
    Message,
    topic=topics,
    data=blobs,
    from_=opt_blobs,
    seqno=opt_blobs,
    signature=opt_blobs,
    key=opt_blobs,
)
prunes = st.builds(
    Prune,
    topic=topics,
    peers=st.lists(st.builds(PeerInfo, peer_id=opt_blobs, signed_record=opt_blobs), max_size=3),
    backoff=st.none() | st.integers(0, 2**64 - 1),
)
controls = st.builds(
    Control,
    ihave=st.lists(st.tuples(topics, id_lists), max_size=3),
    iwant=id_lists,
    graft=st.lists(topics, max_size=3),
    prune=st.lists(prunes, max_size=2),
    idontwant=id_lists,
)
rpcs = st.builds(
    RPC,
    subscriptions=st.lists(st.builds(SubOpts, subscribe=st.booleans(), topic=topics), max_size=3),
    publish=st.lists(messages, max_size=3),
    control=st.none() | controls,
)


@settings(max_examples=400, deadline=None)
@given(rpcs)
def test_encoded_size_is_the_length_of_the_encoding(rpc: RPC) -> None:
    assert rpc.encoded_size() == len(rpc.encode())
    if rpc.control is not None:
        assert rpc.control.encoded_size() == len(rpc.control.encode())


@given(st.integers(0, 2**64 - 1))
def test_uvarint_size_is_the_length_of_the_varint(n: int) -> None:
    assert uvarint_size(n) == len(uvarint(n))


def test_an_empty_control_adds_nothing() -> None:
    """An empty control field is not written, so it has no size either."""
    assert RPC(control=Control()).encoded_size() == 0 == len(RPC(control=Control()).encode())
    # RPC field 3 { ControlMessage field 3 { ControlGraft field 1: "" } }
    rpc = RPC(control=Control(graft=[""]))
    assert rpc.encoded_size() == 6 == len(rpc.encode())
