"""The msgpack codec: round trips, canonical form, and any bytes give a message or a clean error."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gossip import codec, eip712
from gossip.eip712 import SigningDomain
from gossip.hubs import HubAnnouncement
from gossip.messages import MAX_MESSAGE_BYTES, FieldError, MessageDecodeError, MessageKind
from gossip.orders import BENCHMARK_NAMES, NetworkType, Order, OrderCancel, Property, Side
from gossip.peer_record import PeerRecord, ed25519_peer_id
from p2pnode.errors import RemoteError

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ADDR = eip712.address_of_key(KEY)
DOMAIN = SigningDomain(chain_id=31337)
PEER_KEY = Ed25519PrivateKey.from_private_bytes(b"\x05" * 32)
PEER_ID = ed25519_peer_id(PEER_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
# A fixed, well-formed signature: the codec checks shape, not who signed.
SIG = b"\x01" * 64 + b"\x1b"

addresses = st.binary(min_size=20, max_size=20)
u64 = st.integers(0, 2**64 - 1)
safe_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), max_codepoint=0x2FF), max_size=12
)
multiaddrs = st.lists(
    st.from_regex(r"/ip4/127\.0\.0\.[0-9]{1,3}/tcp/[0-9]{1,5}", fullmatch=True), max_size=3
).map(tuple)


@st.composite
def windows(draw: st.DrawFn, max_len: int) -> tuple[int, int]:
    start = draw(st.integers(0, 2**40))
    return start, start + draw(st.integers(1, max_len))


@st.composite
def orders(draw: st.DrawFn) -> Order:
    start, end = draw(windows(31 * 86400))
    keys = draw(
        st.lists(st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True), max_size=4, unique=True)
    )
    return Order(
        author=draw(addresses),
        side=draw(st.sampled_from(list(Side))),
        price_per_hour=draw(st.integers(0, 2**256 - 1)),
        duration=draw(st.integers(0, 10 * 365 * 86400)),
        benchmarks=tuple(draw(st.lists(u64, min_size=13, max_size=13))),
        network=draw(st.sampled_from(list(NetworkType))),
        properties=tuple(Property(k, draw(safe_text)) for k in sorted(keys)),
        counterparty=draw(addresses),
        blacklist=tuple(sorted(draw(st.lists(addresses, max_size=4, unique=True)))),
        min_rating=draw(st.integers(0, 10_000)),
        geo=draw(st.sampled_from(["", "DE", "JP"])),
        nonce=draw(u64),
        valid_from=start,
        valid_until=end,
        signature=SIG,
    )


@st.composite
def hubs(draw: st.DrawFn) -> HubAnnouncement:
    start, end = draw(windows(7 * 86400))
    return HubAnnouncement(
        owner=draw(addresses),
        wallet=draw(addresses),
        peer_id=draw(st.binary(min_size=1, max_size=64)),
        multiaddrs=draw(multiaddrs),
        name=draw(safe_text),
        description=draw(safe_text),
        sequence=draw(u64),
        valid_from=start,
        valid_until=end,
        signature=SIG,
    )


@st.composite
def cancels(draw: st.DrawFn) -> OrderCancel:
    start, end = draw(windows(31 * 86400))
    return OrderCancel(
        draw(addresses), draw(st.binary(min_size=32, max_size=32)), draw(u64), start, end, SIG
    )


@st.composite
def peer_records(draw: st.DrawFn) -> PeerRecord:
    start, end = draw(windows(86400))
    return PeerRecord(
        draw(addresses), PEER_ID, draw(multiaddrs), draw(u64), start, end, SIG, b"\x02" * 64
    )


messages = st.one_of(orders(), hubs(), cancels(), peer_records())


@settings(max_examples=200, deadline=None)
@given(messages)
def test_round_trip_is_exact_and_canonical(msg: codec.SignedMessage) -> None:
    data = codec.encode(msg)
    assert len(data) <= MAX_MESSAGE_BYTES
    back = codec.decode(data)
    assert back == msg
    assert type(back.signature) is bytes
    assert codec.encode(back) == data


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=600))
@example(b"")
@example(b"\xc1")  # never used in msgpack
@example(b"\xdd\xff\xff\xff\xff")  # array32 claiming 4 billion items
@example(b"\x92\x02\x01")
@example(b"\x91" * 5000)  # deep nesting
def test_any_bytes_give_a_message_or_a_clean_error(data: bytes) -> None:
    try:
        msg = codec.decode(data)
    except MessageDecodeError as exc:
        assert isinstance(exc, RemoteError)
        assert exc.field
        assert str(exc).startswith("invalid message: ")
    else:
        assert codec.encode(msg) == data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages, st.data())
def test_mutated_messages_give_a_message_or_a_clean_error(
    msg: codec.SignedMessage, data: st.DataObject
) -> None:
    raw = bytearray(codec.encode(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw), bytes(raw[:cut])):
        try:
            back = codec.decode(candidate)
        except MessageDecodeError as exc:
            assert exc.field
        else:
            assert codec.encode(back) == candidate


# --- each decode branch --------------------------------------------------------------


def _order(**changes: Any) -> Order:
    fields: dict[str, Any] = {
        "author": ADDR,
        "side": Side.BID,
        "price_per_hour": 10**18,
        "duration": 3600,
        "nonce": 7,
        "valid_from": 100,
        "valid_until": 200,
        "cpu_cores": 2,
        "properties": {"os": "linux"},
    }
    return Order.create(**(fields | changes)).signed(DOMAIN, KEY)


def _wire(msg: codec.SignedMessage) -> list[Any]:
    return list(msgpack.unpackb(codec.encode(msg)))


def _pack(items: list[Any]) -> bytes:
    return bytes(msgpack.packb(items, use_bin_type=True))


def _field_error(data: bytes, **kw: Any) -> str:
    with pytest.raises(MessageDecodeError) as err:
        codec.decode(data, **kw)
    return err.value.field


def test_the_layout_is_kind_version_fields_signature() -> None:
    order = _order()
    wire = _wire(order)
    assert wire[:2] == [MessageKind.ORDER, 1]
    assert wire[2] == ADDR and wire[3] == 2
    assert wire[4] == (10**18).to_bytes(8, "big")  # uint256 as minimal big-endian bytes
    assert wire[6] == [0, 0, 2] + [0] * 10
    assert wire[8] == [["os", "linux"]]
    assert wire[-1] == order.signature
    assert len(wire) == 2 + 15


def test_decode_branches_name_the_field() -> None:
    wire = _wire(_order())
    assert _field_error(b"\x00" * (MAX_MESSAGE_BYTES + 1)) == "message"
    assert _field_error(b"\xc1") == "message"
    assert _field_error(_pack(wire) + b"\x00") == "message"  # trailing bytes
    assert _field_error(_pack([1])) == "message"
    assert _field_error(msgpack.packb({"kind": 2})) == "message"
    assert _field_error(_pack([99, 1])) == "kind"
    assert _field_error(_pack([True, 1])) == "kind"
    assert _field_error(_pack([2, 2, *wire[2:]])) == "version"
    assert _field_error(_pack(wire[:-1])) == "message"
    assert _field_error(_pack(wire), kinds=frozenset({MessageKind.HUB_ANNOUNCEMENT})) == "kind"

    def with_field(i: int, value: Any) -> bytes:
        w = list(wire)
        w[i] = value
        return _pack(w)

    assert _field_error(with_field(2, "0x" + "00" * 20)) == "author"
    assert _field_error(with_field(5, True)) == "duration"
    assert _field_error(with_field(9, "0x" + "00" * 20)) == "counterparty"
    assert _field_error(with_field(10, b"\x01" * 20)) == "blacklist"
    assert _field_error(with_field(3, True)) == "side"
    assert _field_error(with_field(3, 3)) == "side"
    assert _field_error(with_field(4, b"\x00\x01")) == "price_per_hour"
    assert _field_error(with_field(4, b"\x01" * 33)) == "price_per_hour"
    assert _field_error(with_field(4, 5)) == "price_per_hour"
    assert _field_error(with_field(5, 1.5)) == "duration"
    assert _field_error(with_field(6, [0] * 12)) == "benchmarks"
    assert _field_error(with_field(6, [0] * 12 + [None])) == "benchmarks.cpu-cryptonight"
    assert _field_error(with_field(7, 2)) == "network"
    assert _field_error(with_field(8, [["os"]])) == "properties[0]"
    assert _field_error(with_field(8, [[1, "x"]])) == "properties[0].key"
    assert _field_error(with_field(8, [["Os", "x"]])) == "properties[0].key"
    assert _field_error(with_field(8, {"os": "linux"})) == "message"  # maps are refused
    assert _field_error(with_field(10, [b"\x01" * 19])) == "blacklist[0]"
    assert _field_error(with_field(12, "de")) == "geo"
    assert _field_error(with_field(13, -1)) == "nonce"
    assert _field_error(with_field(15, 50)) == "valid_until"
    assert _field_error(with_field(16, b"")) == "signature"
    assert _field_error(with_field(16, b"\x01" * 65)) == "signature"


def test_non_canonical_encodings_are_refused() -> None:
    data = codec.encode(_order())
    wire = msgpack.unpackb(data)
    # nonce 7 as a uint64 (0xcf) instead of a positive fixint: same value, other bytes
    body = msgpack.packb(wire[:13], use_bin_type=True)[1:]
    tail = msgpack.packb(wire[14:], use_bin_type=True)[1:]
    header = data[:3]  # array16: 17 items
    assert header == b"\xdc\x00\x11"
    longer = header + body + b"\xcf" + (7).to_bytes(8, "big") + tail
    assert msgpack.unpackb(longer) == wire
    assert _field_error(longer) == "message"
    # a str where our encoder writes a str8, re-encoded as str16
    hub_wire = _wire(
        HubAnnouncement(ADDR, ADDR, b"p", (), "n" * 40, "", 1, 1, 2).signed(DOMAIN, KEY)
    )
    packed = _pack(hub_wire)
    i = packed.index(b"\xd9\x28" + b"n" * 40)
    str16 = packed[:i] + b"\xda\x00\x28" + packed[i + 2 :]
    assert msgpack.unpackb(str16) == hub_wire
    assert _field_error(str16) == "message"


def test_peer_record_needs_both_signatures_on_the_wire() -> None:
    rec = PeerRecord(ADDR, PEER_ID, (), 1, 1, 2).signed(DOMAIN, KEY, PEER_KEY)
    wire = _wire(rec)
    wire[-1] = b""
    assert _field_error(_pack(wire)) == "peer_signature"
    with pytest.raises(FieldError, match="peer_signature"):
        codec.encode(dataclasses.replace(rec, peer_signature=b""))


def test_encode_refuses_unsigned_invalid_or_foreign_objects() -> None:
    unsigned = dataclasses.replace(_order(), signature=b"")
    with pytest.raises(FieldError, match="signed"):
        codec.encode(unsigned)
    with pytest.raises(FieldError, match="geo"):
        codec.encode(dataclasses.replace(_order(), geo="xx"))
    with pytest.raises(TypeError):
        codec.encode("order")  # type: ignore[arg-type]
    with pytest.raises(MessageDecodeError, match="bytes expected"):
        codec.decode(bytearray(b"\x90"))  # type: ignore[arg-type]


def test_largest_allowed_messages_fit_under_the_cap() -> None:
    start = 1_700_000_000
    big_order = Order(
        author=ADDR,
        side=Side.ASK,
        price_per_hour=2**256 - 1,
        duration=10 * 365 * 86400,
        benchmarks=(2**64 - 1,) * len(BENCHMARK_NAMES),
        network=NetworkType.INBOUND_OUTBOUND,
        properties=tuple(Property(f"k{i:02}" + "x" * 29, "v" * 128) for i in range(16)),
        counterparty=ADDR,
        blacklist=tuple(bytes([i]) * 20 for i in range(64)),
        min_rating=10_000,
        geo="DE",
        nonce=2**64 - 1,
        valid_from=start,
        valid_until=start + 31 * 86400,
        signature=SIG,
    )
    big_hub = HubAnnouncement(
        ADDR,
        ADDR,
        b"p" * 64,
        tuple("/" + "a" * 255 for _ in range(8)),
        "n" * 64,
        "d" * 1024,
        2**64 - 1,
        start,
        start + 7 * 86400,
        SIG,
    )
    for msg in (big_order, big_hub):
        data = codec.encode(msg)
        assert len(data) <= MAX_MESSAGE_BYTES
        assert codec.decode(data) == msg


def test_kept_properties_never_let_a_bad_one_through() -> None:
    """Decoded properties are kept and known-valid ones skip their checks: a bad
    property is refused every time it comes, a str subclass equal to a known-good
    value is still checked, and both memos stay bounded under a flood."""
    from gossip import orders as orders_mod

    wire = _wire(_order())
    bad = list(wire)
    bad[8] = [["Os", "linux"]]
    for _ in range(3):
        assert _field_error(_pack(bad)) == "properties[0].key"
    good = list(wire)
    good[8] = [["os", "linux"]]
    first, again = codec.decode(_pack(good)), codec.decode(_pack(good))
    assert first == again and first.properties[0] is again.properties[0]  # kept

    class Text(str):
        pass

    sneaky = dataclasses.replace(first, properties=(Property(Text("os"), "linux"),))
    assert not orders_mod._known_valid(sneaky.properties[0])
    with pytest.raises(FieldError, match=r"properties\[0\]\.key: string expected"):
        sneaky.validate()  # checked in full, not taken for the known "os"
    with pytest.raises(FieldError, match=r"properties\[0\]\.value"):
        dataclasses.replace(first, properties=(Property("os", "\x1b[2J"),)).validate()

    for i in range(codec._PROPERTIES_MAX + 5):
        flood = list(wire)
        flood[8] = [["k", f"v{i}"]]
        codec.decode(_pack(flood))
    assert 0 < len(codec._PROPERTIES) <= codec._PROPERTIES_MAX
    assert 0 < len(orders_mod._VALID_PROPERTIES) <= orders_mod._VALID_PROPERTIES_MAX


def test_decoded_messages_equal_the_constructed_ones() -> None:
    """decode fills the dataclass without its __init__: the result must be the same
    value, hash and repr as the constructor's."""
    for msg in (_order(), OrderCancel(ADDR, b"\x07" * 32, 9, 10, 20, SIG)):
        got = codec.decode(codec.encode(msg))
        assert got == msg and hash(got) == hash(msg) and repr(got) == repr(msg)
        with pytest.raises(dataclasses.FrozenInstanceError):
            got.nonce = 1  # type: ignore[misc]


# --- the plain path for orders ------------------------------------------------------------

_RAW_ODD_VALUES: list[Any] = [
    0,
    1,
    2,
    3,
    -1,
    True,
    False,
    2**64 - 1,
    10 * 365 * 86400 + 1,
    31 * 86400 + 1,
    100 + 31 * 86400 + 1,  # valid_until: one second past the longest window from 100
    10_000,
    10_001,
    "",
    "DE",
    "de",
    "DEU",
    b"",
    b"\x00",
    b"\x00\x01",
    b"\x01" * 32,
    b"\x01" * 33,
    b"\x02" * 19,
    b"\x02" * 20,
    b"\x01" * 64 + b"\x1b",
    b"\x01" * 64 + b"\x1d",
    b"\x01" * 65,
    (),
    (0,) * 13,
    (0,) * 12,
    (0,) * 12 + (-1,),
    (0,) * 12 + (True,),
    (0,) * 12 + ("0",),
    (b"\x02" * 20,),
    (("os", "linux"),),
    (("os", "linux"), ("os", "linux")),
    (("zone", "a"), ("os", "linux")),
    (("os", "linux"), ("zone", "a")),
    (("os", "linux", "x"),),
    (("os", b"linux"),),
    (("Os", "linux"),),
    (("never", "seen"),),
    ("os", "linux"),
]
_RAW_ODD = st.sampled_from(_RAW_ODD_VALUES)


def _plain_wire() -> list[Any]:
    order = _order(properties={"os": "linux", "zone": "a"}, geo="DE")
    codec.decode(codec.encode(order))  # its properties are now known
    return _wire(order)


def _plain_agrees(changes: list[tuple[int, Any]]) -> bool:
    """Whether the plain path built the changed order; if it did, the generic path
    (convert each member, then Order.validate) must build it equal and find it valid."""
    wire = _plain_wire()
    for i, value in changes:
        wire[i] = value
    data = _pack(wire)
    top = msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=True)
    plain = codec._plain_order(top)
    if plain is None:
        _accepted_agrees(data)
        return False
    generic = codec._built(int(MessageKind.ORDER), top)
    generic.validate()  # raises if the plain path let an invalid order through
    assert generic.signature
    assert plain == generic and repr(plain) == repr(generic) and hash(plain) == hash(generic)
    assert codec.decode(data) == plain
    assert codec.decode_accepted(data, MessageKind.ORDER) == plain
    assert codec._accepted_plain_order(top) == plain
    return True


def _accepted_agrees(data: bytes) -> None:
    """Bytes `decode` accepts, by whichever path, `decode_accepted` builds the same:
    its plain path looks only at what separates the two paths."""
    try:
        decoded = codec.decode(data)
    except MessageDecodeError:
        return
    accepted = codec.decode_accepted(data, MessageKind.ORDER)
    assert accepted == decoded and repr(accepted) == repr(decoded)


def test_the_plain_order_path_takes_only_what_the_generic_path_builds_the_same() -> None:
    """Every member changed to every odd value, one at a time."""
    taken = sum(_plain_agrees([(i, v)]) for i in range(2, 17) for v in _RAW_ODD_VALUES)
    assert 15 <= taken < 15 * len(_RAW_ODD_VALUES)  # both paths were exercised


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(2, 16), _RAW_ODD), min_size=2, max_size=3))
def test_the_plain_order_path_agrees_under_several_changes(changes: list[tuple[int, Any]]) -> None:
    _plain_agrees(changes)


def test_the_common_order_takes_the_plain_path_and_the_rest_the_generic_one() -> None:
    wire = _plain_wire()
    top = tuple(msgpack.unpackb(_pack(wire), raw=False, use_list=False))
    plain = codec._plain_order(top)
    assert plain is not None
    assert plain == codec.decode(_pack(wire))
    listed = list(wire)
    listed[10] = [b"\x02" * 20]  # a blacklist: valid, but not plain
    listed_top = tuple(msgpack.unpackb(_pack(listed), raw=False, use_list=False))
    assert codec._plain_order(listed_top) is None
    assert codec._accepted_plain_order(listed_top) is None
    assert codec.decode(_pack(listed)).blacklist == (b"\x02" * 20,)
    assert codec.decode_accepted(_pack(listed), MessageKind.ORDER) == codec.decode(_pack(listed))


def test_only_properties_of_a_fully_valid_order_are_learned() -> None:
    wire = _plain_wire()
    fresh = list(wire)
    fresh[8] = [["gpu", "h100"]]
    broken = list(fresh)
    broken[12] = "de"  # a lowercase country: the order is refused
    assert _field_error(_pack(broken)) == "geo"
    assert ("gpu", "h100") not in codec._PLAIN_PROPERTIES
    top = tuple(msgpack.unpackb(_pack(fresh), raw=False, use_list=False))
    assert codec._plain_order(top) is None  # not seen in a valid order yet
    first = codec.decode(_pack(fresh))  # the generic path, which learns it
    assert codec._plain_order(top) == first
    for i in range(codec._PROPERTIES_MAX + 5):
        flood = list(wire)
        flood[8] = [["k", f"w{i}"]]
        codec.decode(_pack(flood))
    assert 0 < len(codec._PLAIN_PROPERTIES) <= codec._PROPERTIES_MAX


def test_a_process_that_only_takes_decoded_bytes_learns_their_properties() -> None:
    """decode_accepted (the pool's parent: bytes a child decoded) learns an order's
    properties too, so the orders after it take the plain path there as well."""
    fresh = _plain_wire()
    fresh[8] = [["cpu", "arm64-neoverse"]]
    data = _pack(fresh)
    top = tuple(msgpack.unpackb(data, raw=False, use_list=False))
    assert codec._plain_order(top) is None
    assert codec._accepted_plain_order(top) is None  # not learned here yet
    first = codec.decode_accepted(data, MessageKind.ORDER)
    assert codec._plain_order(top) == first == codec.decode(data)
