"""Peer exchange records and frames: only correctly signed records pass, and any
bytes a peer sends end in a RemoteError, never another exception."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.envelope import Envelope, seal_record, unmarshal_envelope
from libp2p.peer.id import ID
from libp2p.peer.peer_record import PeerRecord
from multiaddr import Multiaddr

from p2pnode import px
from p2pnode.errors import RemoteError


def _key():
    kp = create_new_key_pair()
    return kp, ID.from_pubkey(kp.public_key)


def test_own_record_verifies() -> None:
    kp, pid = _key()
    env = px.make_record(kp.private_key, pid, [Multiaddr(f"/ip4/127.0.0.1/tcp/4001/p2p/{pid}")])
    rec = px.verify_record(env)
    assert rec.peer_id == pid and rec.addrs == ("/ip4/127.0.0.1/tcp/4001",) and rec.seq > 0


def test_record_signed_by_another_key_is_rejected() -> None:
    _, victim = _key()
    forger_kp, _ = _key()
    forged = seal_record(
        PeerRecord(victim, [Multiaddr("/ip4/127.0.0.1/tcp/6666")]), forger_kp.private_key
    )
    with pytest.raises(RemoteError, match="not the record's peer id"):
        px.verify_record(forged.marshal_envelope())


def test_tampered_payload_fails_the_signature() -> None:
    kp, pid = _key()
    env = unmarshal_envelope(
        px.make_record(kp.private_key, pid, [Multiaddr("/ip4/127.0.0.1/tcp/1")])
    )
    other = PeerRecord(pid, [Multiaddr("/ip4/127.0.0.1/tcp/2")], seq=1).marshal_record()
    tampered = Envelope(env.public_key, env.payload_type, other, env.signature)
    with pytest.raises(RemoteError, match="rejected"):
        px.verify_record(tampered.marshal_envelope())


def test_records_without_tcp_addresses_or_too_big_are_rejected() -> None:
    kp, pid = _key()
    with pytest.raises(RemoteError, match="no /ip4"):
        px.verify_record(
            seal_record(
                PeerRecord(pid, [Multiaddr("/ip4/127.0.0.1/udp/1")]), kp.private_key
            ).marshal_envelope()
        )
    many = [Multiaddr(f"/ip4/127.0.0.1/tcp/{i}") for i in range(1, px.MAX_ADDRS_PER_RECORD + 2)]
    with pytest.raises(RemoteError, match="addresses"):
        px.verify_record(seal_record(PeerRecord(pid, many), kp.private_key).marshal_envelope())
    with pytest.raises(RemoteError, match="bytes"):
        px.verify_record(b"x" * (px.MAX_RECORD_BYTES + 1))


def test_request_and_response_round_trip() -> None:
    frame = px.encode_request(b"rec", 10)
    body = frame[1:]  # one-byte varint for a short frame
    assert px.parse_request(body) == (b"rec", 10)
    resp = px.encode_response([b"a", b"b"])
    assert px.parse_response(resp[1:]) == [b"a", b"b"]


def test_roles_ride_along_and_older_frames_have_none() -> None:
    req = px.read_request(px.encode_request(b"rec", 10, "worker")[1:])
    assert (req.record, req.want, req.role) == (b"rec", 10, "worker")
    assert px.read_request(px.encode_request(b"rec", 10)[1:]).role is None
    resp = px.read_response(px.encode_response([b"a", b"b", b"c"], "seed", ["seed", None])[1:])
    assert resp.records == [b"a", b"b", b"c"]
    assert resp.role == "seed" and resp.roles == ["seed", None, None]
    old = px.read_response(px.encode_response([b"a"])[1:])
    assert old.role is None and old.roles == [None]
    # a role this version does not know is no role: a newer node is not a bad one
    later = msgpack.packb({"v": 1, "records": [b"a"], "role": "oracle", "roles": ["oracle"]})
    assert px.read_response(later).role is None and px.read_response(later).roles == [None]


@pytest.mark.parametrize(
    "body",
    [
        msgpack.packb({"v": 1, "records": [b"a"], "role": 3}),
        msgpack.packb({"v": 1, "records": [b"a"], "role": "x" * (px.MAX_ROLE_BYTES + 1)}),
        msgpack.packb({"v": 1, "records": [b"a"], "roles": ["seed", "seed"]}),
        msgpack.packb({"v": 1, "records": [b"a"], "roles": "seed"}),
        msgpack.packb({"v": 1, "records": [b"a"], "roles": [b"seed"]}),
    ],
)
def test_bad_roles_in_a_response(body: bytes) -> None:
    with pytest.raises(RemoteError, match="role"):
        px.read_response(body)
    with pytest.raises(RemoteError, match="role"):
        px.read_request(msgpack.packb({"v": 1, "record": b"r", "want": 1, "role": ["x"]}))


def test_response_is_capped_at_the_frame_limit() -> None:
    big = [b"x" * px.MAX_RECORD_BYTES] * 200
    frame = px.encode_response(big)
    assert len(frame) <= px.MAX_FRAME_BYTES + 4
    assert 0 < len(msgpack.unpackb(frame[3:])["records"]) < 200


@pytest.mark.parametrize(
    "body",
    [
        msgpack.packb({"v": 2, "record": b"", "want": 1}),
        msgpack.packb({"v": 1, "want": 1}),
        msgpack.packb({"v": 1, "record": b"r", "want": -1}),
        msgpack.packb({"v": 1, "record": b"r", "want": True}),
        msgpack.packb({"v": 1, "record": b"r", "want": px.MAX_WANT + 1}),
        msgpack.packb([1, 2]),
        b"\xc1",
    ],
)
def test_bad_requests(body: bytes) -> None:
    with pytest.raises(RemoteError):
        px.parse_request(body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_any_bytes_give_remote_error_or_a_value(body: bytes) -> None:
    _check_parsers(body, with_record=True)


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.integers(-(2**63), 2**64 - 1)
        | st.binary(max_size=20)
        | st.text(max_size=10),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
        max_leaves=10,
    )
)
def test_any_msgpack_value_gives_remote_error_or_a_value(value: object) -> None:
    body = msgpack.packb(
        {"v": 1, "records": value, "record": value, "want": value, "role": value, "roles": value}
    )
    _check_parsers(body, with_record=False)


def _check_parsers(body: bytes, *, with_record: bool) -> None:
    """Each parser either raises RemoteError or returns a value of its declared shape."""
    try:
        req = px.read_request(body)
        assert isinstance(req.record, bytes) and 0 <= req.want <= px.MAX_WANT
        assert req.role is None or req.role in px.ROLES
    except RemoteError:
        pass
    try:
        resp = px.read_response(body)
        assert all(isinstance(r, bytes) for r in resp.records)
        assert len(resp.roles) == len(resp.records)
        assert all(r is None or r in px.ROLES for r in [resp.role, *resp.roles])
    except RemoteError:
        pass
    if with_record:
        with contextlib.suppress(RemoteError):
            assert isinstance(px.verify_record(body), px.VerifiedRecord)
