"""The /sonm/deal/1 messages: round trips, signatures bound to the signer field,
every malformed, oversized, unsigned or re-encoded frame refused with a reason."""

from __future__ import annotations

import contextlib
import dataclasses

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip.eip712 import SigningDomain, address_of_key
from p2pnode.market import dealwire as w

DOMAIN = SigningDomain(chain_id=31337)
KEY_A = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
KEY_B = bytes(range(1, 33))
A, B = address_of_key(KEY_A), address_of_key(KEY_B)
ASK, BID = b"\x11" * 32, b"\x22" * 32


def _request(**over: object) -> w.DealRequest:
    base = w.DealRequest(consumer=A, ask_id=ASK, bid_id=BID, nonce=7, valid_until=1_000)
    return w.sign(dataclasses.replace(base, **over), DOMAIN, KEY_A)


def _all() -> list[w.DealMessage]:
    return [
        _request(),
        w.sign(w.DealReply(B, ASK, A, 1, 1_030, "reserved"), DOMAIN, KEY_B),
        w.sign(w.DealReply(B, ASK, A, 0, 0, "slot reserved by another consumer"), DOMAIN, KEY_B),
        w.sign(w.DealProposed(A, ASK, 3), DOMAIN, KEY_A),
        w.sign(w.DealVerdict(B, 3, 1, "accepted"), DOMAIN, KEY_B),
    ]


@pytest.mark.parametrize("msg", _all(), ids=lambda m: type(m).__name__)
def test_round_trip_through_frames(msg: w.DealMessage) -> None:
    data = w.frame(msg)
    reader = w.FrameReader()
    # byte by byte: a frame split anywhere by the stream comes out whole, once
    frames = [f for i in range(len(data)) for f in reader.feed(data[i : i + 1])]
    assert len(frames) == 1
    assert w.decode(frames[0], DOMAIN, expect=type(msg)) == msg
    assert len(frames[0]) <= w.MAX_FRAME_BYTES


def test_layout_is_kind_version_fields_signature() -> None:
    msg = _request()
    top = msgpack.unpackb(w.encode(msg))
    assert top == [1, 1, A, ASK, BID, 7, 1_000, msg.signature]


def test_wrong_kind_for_the_step_is_refused() -> None:
    with pytest.raises(w.DealWireError, match="kind: REQUEST expected here, got PROPOSED"):
        w.decode(
            w.encode(w.sign(w.DealProposed(A, ASK, 3), DOMAIN, KEY_A)), DOMAIN, expect=w.DealRequest
        )


def test_signature_must_be_the_signer_fields() -> None:
    forged = w.sign(w.DealRequest(B, ASK, BID, 1, 1_000), DOMAIN, KEY_A)  # A signs as B
    with pytest.raises(w.DealWireError, match="not made by the message's signer"):
        w.decode(w.encode(forged), DOMAIN)
    other_chain = w.encode(_request())
    with pytest.raises(w.DealWireError, match="signer"):
        w.decode(other_chain, SigningDomain(chain_id=1))


def test_unsigned_is_refused_both_ways() -> None:
    unsigned = w.DealRequest(A, ASK, BID, 1, 1_000)
    with pytest.raises(ValueError, match="signature"):
        w.encode(unsigned)
    raw = msgpack.packb([1, 1, A, ASK, BID, 1, 1_000, b""], use_bin_type=True)
    with pytest.raises(w.DealWireError, match="signature: missing"):
        w.decode(raw, DOMAIN)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xc1", "not valid msgpack"),
        (msgpack.packb({"a": 1}), "max_map_len|not valid msgpack|array"),
        (msgpack.packb([9, 1]), "kind: one of"),
        (msgpack.packb([1, 2, A, ASK, BID, 1, 1, b"s" * 65], use_bin_type=True), "version"),
        (msgpack.packb([1, 1, A, ASK], use_bin_type=True), "items"),
        (msgpack.packb([1, 1, A[:19], ASK, BID, 1, 1, b"s" * 65], use_bin_type=True), "consumer"),
        (msgpack.packb([1, 1, A, ASK, BID, True, 1, b"s" * 65], use_bin_type=True), "nonce"),
        (msgpack.packb([1, 1, A, ASK, BID, -1, 1, b"s" * 65], use_bin_type=True), "nonce"),
        (msgpack.packb([1, 1, A, ASK, BID, 1, 1, "x"], use_bin_type=True), "signature"),
        (b"\x00" * (w.MAX_FRAME_BYTES + 1), "limit"),
    ],
)
def test_malformed_payloads_name_what_is_wrong(raw: bytes, reason: str) -> None:
    with pytest.raises(w.DealWireError, match=reason):
        w.decode(raw, DOMAIN)


def test_non_canonical_encoding_is_refused() -> None:
    msg = _request()
    top = [1, 1, A, ASK, BID, 7, 1_000, msg.signature]
    # 7 as a uint64 (0xcf ...) instead of a positive fixint
    canonical = msgpack.packb(top, use_bin_type=True)
    wide = canonical.replace(
        b"\x07\xcd\x03\xe8", b"\xcf" + (7).to_bytes(8, "big") + b"\xcd\x03\xe8"
    )
    assert wide != canonical
    with pytest.raises(w.DealWireError, match="canonical"):
        w.decode(wide, DOMAIN)


def test_oversized_frame_is_refused_before_it_is_buffered() -> None:
    reader = w.FrameReader()
    with pytest.raises(w.DealWireError, match="limit"):
        reader.feed(b"\xff\xff\x03")  # announces ~64 KiB
    with pytest.raises(w.DealWireError, match="longer than 4 bytes"):
        w.FrameReader().feed(b"\x80\x80\x80\x80\x01")


def test_reasons_are_capped_and_printable() -> None:
    with pytest.raises(ValueError, match="reason"):
        w.encode(w.sign(w.DealVerdict(B, 1, 0, "x" * (w.MAX_REASON_BYTES + 1)), DOMAIN, KEY_B))
    with pytest.raises(ValueError, match="control"):
        w.encode(w.sign(w.DealVerdict(B, 1, 0, "\x1b[2J"), DOMAIN, KEY_B))


def test_request_window() -> None:
    req = _request(valid_until=1_000)
    assert w.check_request_window(req, 900) is None
    assert w.check_request_window(req, 1_001) == "request expired"
    assert "more than" in (w.check_request_window(req, 1_000 - w.MAX_REQUEST_WINDOW - 1) or "")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=20))
def test_fuzz_decode_refuses_or_round_trips(data: bytes, flip: int) -> None:
    """Random bytes and bit-flipped real messages: a DealWireError, or (unflipped) the
    very message, never another exception."""
    real = w.encode(_all()[flip % 5])
    damaged = bytearray(real)
    damaged[flip % len(damaged)] ^= 1 << (flip % 8)
    for raw in (data, bytes(damaged)):
        try:
            msg = w.decode(raw, DOMAIN)
        except w.DealWireError as exc:
            assert str(exc)
        else:
            assert w.encode(msg) == raw
    with contextlib.suppress(w.DealWireError):
        assert all(len(f) <= w.MAX_FRAME_BYTES for f in w.FrameReader().feed(data))
