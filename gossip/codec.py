"""Wire encoding of the application messages: one msgpack array in a fixed field order.

Layout (docs/protocol-messages.md has it field by field):

    [kind, version, field_1, ..., field_n, signature(, peer_signature)]

Why an array and not a map: it is smaller (no key strings on every message), and a
fixed order makes the canonical form obvious. Canonical means the encoding our own
encoder produces (msgpack's smallest form of every int, string and array header);
`decode` re-encodes what it parsed and refuses anything that differs. That closes
the door on re-encodings: the router's message id is the hash of these bytes, so a
second encoding of the same signed message would otherwise travel as a new message.

Integers up to 2**64-1 are msgpack ints; uint256 amounts (prices) are bin of their
minimal big-endian bytes (zero is empty). Addresses are bin of 20 bytes, strings
UTF-8 str, lists arrays. No maps, floats, nil, bools or ext types appear anywhere.

Every decode error is a MessageDecodeError (a RemoteError) naming the field.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import msgpack

from gossip.hubs import HubAnnouncement
from gossip.messages import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    UINT64_MAX,
    FieldError,
    MessageDecodeError,
    MessageKind,
)
from gossip.orders import (
    BENCHMARK_NAMES,
    COUNTRY_CODE,
    ORDER_MAX_DURATION_SECONDS,
    ORDER_MAX_PROPERTIES,
    ORDER_MAX_VALIDITY_SECONDS,
    RATING_MAX,
    NetworkType,
    Order,
    OrderCancel,
    Property,
    Side,
)
from gossip.peer_record import PeerRecord

SignedMessage: TypeAlias = HubAnnouncement | Order | OrderCancel | PeerRecord

# msgpack-level limits, well under MAX_MESSAGE_BYTES; the schema checks are tighter still.
_UNPACK_LIMITS: dict[str, Any] = {
    "max_str_len": MAX_MESSAGE_BYTES,
    "max_bin_len": MAX_MESSAGE_BYTES,
    "max_array_len": 256,
    "max_map_len": 0,
    "max_ext_len": 0,
}


@dataclass(frozen=True)
class WireField:
    """How one attribute goes on the wire and comes back, with the decode-side type check."""

    attr: str
    to_wire: Callable[[Any], Any]
    from_wire: Callable[[str, Any], Any]


def _raw(field: str, v: Any, expected: type) -> Any:
    if type(v) is not expected:
        raise FieldError(field, f"{expected.__name__} expected, got {type(v).__name__}")
    return v


def _int_in(field: str, v: Any) -> int:
    return int(_raw(field, v, int))


def _bytes_in(field: str, v: Any) -> bytes:
    return bytes(_raw(field, v, bytes))


def _str_in(field: str, v: Any) -> str:
    return str(_raw(field, v, str))


def _tuple_in(field: str, v: Any) -> tuple[Any, ...]:
    return tuple(_raw(field, v, tuple))


def _uint256_out(v: int) -> bytes:
    return v.to_bytes((v.bit_length() + 7) // 8, "big")


def _uint256_in(field: str, v: Any) -> int:
    raw = _bytes_in(field, v)
    if len(raw) > 32:
        raise FieldError(field, f"uint256 is at most 32 bytes, got {len(raw)}")
    if raw[:1] == b"\x00":
        raise FieldError(field, "uint256 must not have leading zero bytes")
    return int.from_bytes(raw, "big")


def _enum_in(cls: type[enum.IntEnum]) -> Callable[[str, Any], Any]:
    members = cls._value2member_map_  # a dict lookup: cls(n) costs ~1 µs more

    def parse(field: str, v: Any) -> Any:
        n = _int_in(field, v)
        member = members.get(n)
        if member is not None:
            return member
        allowed = ", ".join(f"{m.value} ({m.name})" for m in cls)
        raise FieldError(field, f"one of {allowed} expected, got {n}")

    return parse


def _array_in(inner: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    def parse(field: str, v: Any) -> tuple[Any, ...]:
        return tuple(inner(f"{field}[{i}]", x) for i, x in enumerate(_tuple_in(field, v)))

    return parse


# Decoded properties by their wire pair: most orders carry the same few, so the
# same (immutable) Property object serves them all. Only pairs of two exact strs
# are kept, so a hit is a pair of the same strs. Bounded by emptying when full.
_PROPERTIES: dict[tuple[Any, ...], Property] = {}
_PROPERTIES_MAX = 4096


def _property_in(field: str, v: Any) -> Property:
    if type(v) is tuple:
        known = _PROPERTIES.get(v)
        if known is not None:
            return known
    pair = _tuple_in(field, v)
    if len(pair) != 2:
        raise FieldError(field, f"[key, value] expected, got {len(pair)} items")
    prop = Property(_str_in(f"{field}.key", pair[0]), _str_in(f"{field}.value", pair[1]))
    if len(_PROPERTIES) >= _PROPERTIES_MAX:
        _PROPERTIES.clear()
    _PROPERTIES[pair] = prop
    return prop


def _same(v: Any) -> Any:
    return v


def _as_list(v: Sequence[Any]) -> list[Any]:
    return list(v)


def _as_is(field: str, v: Any) -> Any:
    return v


# Scalars and arrays of scalars pass through unchanged: the message's validate() checks
# their exact types (bool is not int, str is not bytes) and names the field. Only what
# needs converting (enums, uint256, property pairs) is converted here.
def _int(attr: str) -> WireField:
    return WireField(attr, int, _as_is)


def _bytes(attr: str) -> WireField:
    return WireField(attr, _same, _as_is)


def _str(attr: str) -> WireField:
    return WireField(attr, _same, _as_is)


def _str_list(attr: str) -> WireField:
    return WireField(attr, _as_list, _as_is)


SCHEMAS: dict[MessageKind, tuple[type, tuple[WireField, ...]]] = {
    MessageKind.HUB_ANNOUNCEMENT: (
        HubAnnouncement,
        (
            _bytes("owner"),
            _bytes("wallet"),
            _bytes("peer_id"),
            _str_list("multiaddrs"),
            _str("name"),
            _str("description"),
            _int("sequence"),
            _int("valid_from"),
            _int("valid_until"),
            _bytes("signature"),
        ),
    ),
    MessageKind.ORDER: (
        Order,
        (
            _bytes("author"),
            WireField("side", int, _enum_in(Side)),
            WireField("price_per_hour", _uint256_out, _uint256_in),
            _int("duration"),
            WireField("benchmarks", _as_list, _as_is),
            WireField("network", int, _enum_in(NetworkType)),
            WireField(
                "properties", lambda ps: [[p.key, p.value] for p in ps], _array_in(_property_in)
            ),
            _bytes("counterparty"),
            WireField("blacklist", _as_list, _as_is),
            _int("min_rating"),
            _str("geo"),
            _int("nonce"),
            _int("valid_from"),
            _int("valid_until"),
            _bytes("signature"),
        ),
    ),
    MessageKind.ORDER_CANCEL: (
        OrderCancel,
        (
            _bytes("author"),
            _bytes("order_id"),
            _int("nonce"),
            _int("valid_from"),
            _int("valid_until"),
            _bytes("signature"),
        ),
    ),
    MessageKind.PEER_RECORD: (
        PeerRecord,
        (
            _bytes("account"),
            _bytes("peer_id"),
            _str_list("multiaddrs"),
            _int("sequence"),
            _int("valid_from"),
            _int("valid_until"),
            _bytes("signature"),
            _bytes("peer_signature"),
        ),
    ),
}
KIND_OF_TYPE: dict[type, MessageKind] = {cls: kind for kind, (cls, _) in SCHEMAS.items()}
# a kind by its wire value: MessageKind(value) costs ~0.5 µs, a look-up a fraction
KIND_OF_VALUE: dict[int, MessageKind] = dict(MessageKind._value2member_map_)


def _converters(
    fields: tuple[WireField, ...],
) -> tuple[tuple[int, str, Callable[[str, Any], Any]], ...]:
    """The members whose wire value needs converting (the rest pass as they are)."""
    return tuple(
        (i, f.attr, f.from_wire) for i, f in enumerate(fields) if f.from_wire is not _as_is
    )


# What decode needs per kind, worked out once: the class, the array length, the
# conversions. The wire order is the dataclass's field order (checked here), so the
# message is built positionally.
_Converters: TypeAlias = tuple[tuple[int, str, Callable[[str, Any], Any]], ...]
_DECODERS: dict[int, tuple[type, int, tuple[str, ...], _Converters]] = {}
for _kind, (_cls, _fields) in SCHEMAS.items():
    if [f.name for f in dataclasses.fields(_cls)] != [f.attr for f in _fields]:
        raise AssertionError(f"{_cls.__name__}: wire order differs from field order")
    if hasattr(_cls, "__post_init__") or hasattr(_cls, "__slots__"):
        raise AssertionError(f"{_cls.__name__}: decode fills __dict__, which needs neither")
    _DECODERS[int(_kind)] = (
        _cls,
        2 + len(_fields),
        tuple(f.attr for f in _fields),
        _converters(_fields),
    )


def _build(cls: type, names: tuple[str, ...], values: list[Any]) -> Any:
    """`cls(*values)` for these frozen dataclasses (every field given, no
    __post_init__: checked above), without the generated __init__'s one
    object.__setattr__ per field (~3 µs an order)."""
    obj: Any = object.__new__(cls)
    obj.__dict__.update(zip(names, values, strict=True))
    return obj


def _built(kind: int, top: tuple[Any, ...]) -> SignedMessage:
    """The message of a parsed array of this kind, its members converted (a
    FieldError names the member that would not convert); nothing else checked."""
    cls, _, names, converters = _DECODERS[kind]
    values = list(top[2:])
    for i, attr, from_wire in converters:
        values[i] = from_wire(attr, values[i])
    msg: SignedMessage = _build(cls, names, values)
    return msg


# Orders are most of what a node validates, each one on every node, and nearly all
# of them have the same plain shape. Such an order is checked on its wire array as
# it comes out of msgpack, in one pass, and built directly: about half the cost of
# converting it member by member and then running Order.validate. The checks are
# Order._plainly_valid's, on the raw members (the tests hold the two paths to the
# same answers). Anything else, valid or not, goes the generic way, which names
# the field at fault.
_ORDER = int(MessageKind.ORDER)
_SIDES: dict[Any, Side] = dict(Side._value2member_map_)
_NETWORKS: dict[Any, NetworkType] = dict(NetworkType._value2member_map_)
_BENCHMARK_COUNT = len(BENCHMARK_NAMES)
_COUNTRY_MATCH = COUNTRY_CODE.match

# Wire pairs [key, value] of properties seen in an order that passed every check,
# with their Property: the plain path takes only these. Filled by the generic path
# (`_learn_properties`); only pairs of two exact strs get in. Bounded like
# _PROPERTIES: a flood of new properties empties it and takes the generic path.
_PLAIN_PROPERTIES: dict[tuple[str, str], Property] = {}


def _plain_order(top: tuple[Any, ...]) -> Order | None:
    """The Order of a parsed ORDER array of the right length if it is plainly valid
    (every member of its exact type and in range, a 65-byte signature,
    properties already seen valid, no blacklist); else None."""
    (
        _,
        _,
        author,
        side_raw,
        price_raw,
        duration,
        bench,
        network_raw,
        props_raw,
        counterparty,
        blacklist,
        rating,
        geo,
        nonce,
        start,
        end,
        sig,
    ) = top
    if not (
        type(author) is bytes
        and len(author) == 20
        and type(counterparty) is bytes
        and len(counterparty) == 20
        and type(side_raw) is int
        and type(network_raw) is int
        and type(price_raw) is bytes
        and len(price_raw) <= 32
        and price_raw[:1] != b"\x00"
        and type(duration) is int
        and type(rating) is int
        and type(nonce) is int
        and type(start) is int
        and type(end) is int
        and 0 <= duration <= ORDER_MAX_DURATION_SECONDS
        and 0 <= rating <= RATING_MAX
        and 0 <= nonce <= UINT64_MAX
        and 0 <= start < end <= UINT64_MAX
        and end - start <= ORDER_MAX_VALIDITY_SECONDS
        and type(bench) is tuple
        and len(bench) == _BENCHMARK_COUNT
        and type(blacklist) is tuple
        and not blacklist
        and type(geo) is str
        and (not geo or _COUNTRY_MATCH(geo) is not None)
        and type(sig) is bytes
        and len(sig) == 65
        and sig[64] in (27, 28)
        and type(props_raw) is tuple
        and len(props_raw) <= ORDER_MAX_PROPERTIES
    ):
        return None
    side = _SIDES.get(side_raw)
    network = _NETWORKS.get(network_raw)
    if side is None or network is None:
        return None
    for b in bench:
        if type(b) is not int or not 0 <= b <= UINT64_MAX:
            return None
    properties: tuple[Property, ...] = ()
    if props_raw:
        props: list[Property] = []
        previous = ""
        for pair in props_raw:
            prop = _PLAIN_PROPERTIES.get(pair) if type(pair) is tuple else None
            if prop is None or (props and not previous < prop.key):  # sorted, unique
                return None
            previous = prop.key
            props.append(prop)
        properties = tuple(props)
    return _new_order(top, side, network, properties)


def _new_order(
    top: tuple[Any, ...], side: Side, network: NetworkType, properties: tuple[Property, ...]
) -> Order:
    """The Order of a checked ORDER array (members by their wire index), built
    directly: its frozen dataclass's __init__ would set each of 15 fields through
    object.__setattr__."""
    obj: Any = object.__new__(Order)
    object.__setattr__(
        obj,
        "__dict__",
        {
            "author": top[2],
            "side": side,
            "price_per_hour": int.from_bytes(top[4], "big"),
            "duration": top[5],
            "benchmarks": top[6],
            "network": network,
            "properties": properties,
            "counterparty": top[9],
            "blacklist": top[10],
            "min_rating": top[11],
            "geo": top[12],
            "nonce": top[13],
            "valid_from": top[14],
            "valid_until": top[15],
            "signature": top[16],
        },
    )
    return obj


def _accepted_plain_order(top: tuple[Any, ...]) -> Order | None:
    """`_plain_order` for an array whose bytes `decode` accepted elsewhere: its
    members' types and ranges passed there, so only what separates the plain path
    from the generic one is looked at here (no blacklist, properties this process
    has learned). About half the cost of `_plain_order`."""
    if top[10]:
        return None
    props_raw = top[8]
    properties: tuple[Property, ...] = ()
    if props_raw:
        props: list[Property] = []
        for pair in props_raw:
            prop = _PLAIN_PROPERTIES.get(pair)
            if prop is None:
                return None
            props.append(prop)
        properties = tuple(props)
    return _new_order(top, _SIDES[top[3]], _NETWORKS[top[7]], properties)


def _learn_properties(wire: tuple[Any, ...], props: tuple[Property, ...]) -> None:
    """Remember the wire pairs of a fully checked order's properties for the plain path."""
    if len(_PLAIN_PROPERTIES) + len(props) > _PROPERTIES_MAX:
        _PLAIN_PROPERTIES.clear()
    for pair, prop in zip(wire, props, strict=True):
        if type(pair) is tuple and len(pair) == 2 and type(pair[0]) is str and type(pair[1]) is str:
            _PLAIN_PROPERTIES[pair] = prop


def _to_wire(msg: SignedMessage) -> list[Any]:
    kind = KIND_OF_TYPE[type(msg)]
    _, fields = SCHEMAS[kind]
    return [int(kind), PROTOCOL_VERSION, *(f.to_wire(getattr(msg, f.attr)) for f in fields)]


def encode(msg: SignedMessage) -> bytes:
    """The canonical bytes of a signed message. FieldError if it is invalid or unsigned.

    Raised errors here are the local caller's fault (it built the message), so they
    are FieldError, not the RemoteError that decode raises.
    """
    if type(msg) not in KIND_OF_TYPE:
        raise TypeError(f"not an application message: {type(msg).__name__}")
    msg.validate()
    if not msg.signature:
        raise FieldError("signature", "the message must be signed before it is encoded")
    if isinstance(msg, PeerRecord) and not msg.peer_signature:
        raise FieldError("peer_signature", "a peer record needs the peer's signature too")
    data: bytes = msgpack.packb(_to_wire(msg), use_bin_type=True)
    if len(data) > MAX_MESSAGE_BYTES:
        raise FieldError("message", f"encoded size {len(data)} > {MAX_MESSAGE_BYTES} bytes")
    return data


def decode(data: bytes, kinds: frozenset[MessageKind] | None = None) -> SignedMessage:
    """Parse and fully check one message from a peer; MessageDecodeError names the field.

    `kinds` restricts what is acceptable (e.g. the kinds a topic carries). The
    signature is checked for shape only; whether it recovers to the signer is the
    validator's job (gossip/validators.py).
    """
    if type(data) is not bytes:
        raise MessageDecodeError("message", f"bytes expected, got {type(data).__name__}")
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageDecodeError("message", f"{len(data)} bytes > limit {MAX_MESSAGE_BYTES}")
    try:
        top = msgpack.unpackb(
            data, raw=False, use_list=False, strict_map_key=True, **_UNPACK_LIMITS
        )
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise MessageDecodeError("message", f"not valid msgpack ({type(exc).__name__})") from None
    if type(top) is not tuple or len(top) < 2:
        raise MessageDecodeError("message", "an array [kind, version, ...] expected")
    kind_raw, version = top[0], top[1]
    kind = KIND_OF_VALUE.get(kind_raw) if type(kind_raw) is int else None
    if kind is None:
        known = ", ".join(f"{k.value} ({k.name})" for k in MessageKind)
        raise MessageDecodeError("kind", f"one of {known} expected, got {kind_raw!r}")
    if kinds is not None and kind not in kinds:
        allowed = ", ".join(k.name for k in sorted(kinds))
        raise MessageDecodeError("kind", f"{kind.name} not allowed here; allowed: {allowed}")
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise MessageDecodeError("version", f"{PROTOCOL_VERSION} expected, got {version!r}")
    length = _DECODERS[kind_raw][1]
    if len(top) != length:
        raise MessageDecodeError("message", f"{kind.name} has {length} array items, got {len(top)}")
    plain = _plain_order(top) if kind_raw == _ORDER else None
    if plain is not None:
        msg: SignedMessage = plain
    else:
        try:
            msg = _built(kind_raw, top)
            msg.validate()
        except FieldError as exc:
            raise MessageDecodeError(exc.field, exc.problem) from None
        if not msg.signature:
            raise MessageDecodeError("signature", "missing")
        if isinstance(msg, PeerRecord) and not msg.peer_signature:
            raise MessageDecodeError("peer_signature", "missing")
    # Canonical: the parsed array packs back to the same bytes. Every member passed
    # the schema's exact type checks above, and each type has one canonical msgpack
    # form (the smallest), so this is the same test as re-encoding the message
    # (`encode`), at a fraction of the cost.
    if msgpack.packb(top, use_bin_type=True) != data:
        raise MessageDecodeError("message", "not in canonical encoding")
    if plain is None and kind_raw == _ORDER:
        _learn_properties(top[8], msg.properties)  # type: ignore[union-attr]
    return msg


def decode_accepted(data: bytes, kind: MessageKind) -> SignedMessage:
    """The message of bytes that `decode` has already accepted elsewhere (a
    validation worker process), without its checks again: they passed on these
    very bytes, and the objects built are the same. Never for bytes from a peer
    that nothing has checked: use `decode`. An order's properties are learned for
    the plain path here too (`decode` passed them elsewhere), or a process that only
    takes decoded bytes would build every order with properties the generic way.
    The bytes passed decode's size limits there, so msgpack's own are not set again
    (~0.6 µs of keyword arguments a message)."""
    top = msgpack.unpackb(data, use_list=False)
    if top[0] != kind:
        raise MessageDecodeError("kind", f"{kind.name} expected, got {top[0]!r}")
    if kind != _ORDER:
        return _built(top[0], top)
    plain = _accepted_plain_order(top)
    if plain is not None:
        return plain
    msg = _built(top[0], top)
    _learn_properties(top[8], msg.properties)  # type: ignore[union-attr]
    return msg
