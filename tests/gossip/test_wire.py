"""The pubsub protobuf codec: round trips, byte-exact layout, and any bytes give a
value or a clean WireError (never another exception)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip.wire import (
    RPC,
    Control,
    Message,
    PeerInfo,
    Prune,
    SubOpts,
    WireError,
    decode_rpc,
    frame,
    split_frames,
    uvarint,
)
from p2pnode.errors import RemoteError

topics = st.text(max_size=20)
blobs = st.binary(max_size=40)
opt_blobs = st.none() | blobs

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
    backoff=st.none() | st.integers(min_value=0, max_value=2**64 - 1),
)
controls = st.builds(
    Control,
    ihave=st.lists(st.tuples(topics, st.lists(blobs, max_size=4)), max_size=3),
    iwant=st.lists(blobs, max_size=4),
    graft=st.lists(topics, max_size=3),
    prune=st.lists(prunes, max_size=2),
    idontwant=st.lists(blobs, max_size=4),
)
rpcs = st.builds(
    RPC,
    subscriptions=st.lists(st.builds(SubOpts, subscribe=st.booleans(), topic=topics), max_size=3),
    publish=st.lists(messages, max_size=3),
    control=st.none() | controls,
)


@settings(max_examples=300, deadline=None)
@given(rpcs)
def test_round_trip(rpc: RPC) -> None:
    decoded = decode_rpc(rpc.encode())
    assert decoded == rpc
    # re-encoding a decoded RPC gives the same bytes (raw message bytes are reused)
    assert decoded.encode() == rpc.encode()
    assert rpc.encoded_size() == len(rpc.encode())


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_value_or_clean_error(data: bytes) -> None:
    try:
        rpc = decode_rpc(data)
    except WireError as exc:
        assert isinstance(exc, RemoteError)
        return
    assert isinstance(rpc, RPC)
    rpc.encode()  # whatever decoded can be encoded again


@settings(max_examples=500, deadline=None)
@given(rpcs, st.integers(min_value=0, max_value=400), st.integers(min_value=0, max_value=255))
def test_mutated_valid_rpcs_never_crash(rpc: RPC, pos: int, byte: int) -> None:
    raw = bytearray(rpc.encode())
    if raw:
        raw[pos % len(raw)] = byte
    with contextlib.suppress(WireError):
        decode_rpc(bytes(raw))


def test_message_layout_is_the_protobuf_one() -> None:
    msg = Message("t", b"hi", from_=b"A", seqno=b"\x00" * 8, signature=b"S", key=b"K")
    assert msg.encode() == (
        b"\x0a\x01A" + b"\x12\x02hi" + b"\x1a\x08" + b"\x00" * 8 + b"\x22\x01t" + b"\x2a\x01S"
        b"\x32\x01K"
    )
    rpc = RPC([SubOpts(True, "t")], [Message("t", b"x")], Control(graft=["t"]))
    assert rpc.encode() == (
        b"\x0a\x05\x08\x01\x12\x01t" + b"\x12\x06\x12\x01x\x22\x01t" + b"\x1a\x05\x1a\x03\x0a\x01t"
    )


def test_control_layout() -> None:
    ctl = Control(
        ihave=[("t", [b"a"])],
        iwant=[b"b"],
        prune=[Prune("t", [PeerInfo(b"p", b"r")], 60)],
        idontwant=[b"c"],
    )
    assert ctl.encode() == (
        b"\x0a\x06\x0a\x01t\x12\x01a"
        + b"\x12\x03\x0a\x01b"
        + b"\x22\x0d\x0a\x01t\x12\x06\x0a\x01p\x12\x01r\x18\x3c"
        + b"\x2a\x03\x0a\x01c"
    )


def test_unknown_fields_are_skipped() -> None:
    # field 9 varint, field 10 fixed64, field 11 fixed32 and field 12 bytes in an RPC
    extra = b"\x48\x05" + b"\x51" + b"\x00" * 8 + b"\x5d" + b"\x00" * 4 + b"\x62\x02zz"
    body = RPC([SubOpts(True, "t")]).encode() + extra
    assert decode_rpc(body) == RPC([SubOpts(True, "t")])


@pytest.mark.parametrize(
    "bad",
    [
        b"\x12\x05\x12\x01x",  # message runs past the end
        b"\x12\x03\x12\x01x",  # message without its required topic
        b"\x10\x01",  # publish (field 2) with the varint wire type
        b"\x0a\x03\x12\x01\xff",  # topic not UTF-8
        b"\x0a\x80",  # truncated length varint
        b"\x48" + b"\xff" * 11,  # varint over 64 bits
        b"\x4f",  # wire type 7
    ],
)
def test_malformed_inputs_raise_wire_error(bad: bytes) -> None:
    with pytest.raises(WireError):
        decode_rpc(bad)


def test_framing_splits_whole_frames_and_keeps_partial_tail() -> None:
    a = RPC([SubOpts(True, "a")]).encode()
    b = RPC([SubOpts(False, "b")]).encode()
    buf = frame(a) + frame(b) + frame(a)[:3]
    bodies, used = split_frames(buf, 1024)
    assert bodies == [a, b]
    assert used == len(frame(a) + frame(b))


def test_framing_rejects_oversized_declared_length() -> None:
    with pytest.raises(WireError):
        split_frames(uvarint(5000) + b"x", 4096)


def test_uvarint_matches_protobuf_encoding() -> None:
    assert uvarint(0) == b"\x00"
    assert uvarint(127) == b"\x7f"
    assert uvarint(128) == b"\x80\x01"
    assert uvarint(300) == b"\xac\x02"


def test_frames_end_counts_whole_frames_without_copying() -> None:
    from gossip.wire import frames_end

    a = frame(RPC([SubOpts(True, "a")]).encode())
    assert frames_end(a + a, 1024) == 2 * len(a)
    assert frames_end(bytearray(a + a[:4]), 1024) == len(a)
    assert frames_end(b"\x80", 1024) == 0  # the prefix itself is incomplete
    with pytest.raises(WireError):
        frames_end(uvarint(5000), 4096)


@settings(max_examples=200, deadline=None)
@given(st.lists(rpcs, min_size=1, max_size=5), st.lists(st.integers(1, 50), max_size=30))
def test_frame_buffer_reassembles_any_chunking(batch: list[RPC], cuts: list[int]) -> None:
    from gossip.wire import FrameBuffer

    stream = b"".join(frame(r.encode()) for r in batch)
    chunks, pos = [], 0
    for c in cuts:
        chunks.append(stream[pos : pos + c])
        pos += c
    chunks.append(stream[pos:])
    fb = FrameBuffer(1 << 20)
    got = b"".join(fb.feed(c) for c in chunks if c)
    assert got == stream and len(fb) == 0
    bodies, used = split_frames(got, 1 << 20)
    assert used == len(got)
    assert [decode_rpc(b) for b in bodies] == batch
