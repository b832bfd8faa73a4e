"""The `/sonm/deal/1` messages: what a consumer's node and a hub's node say to make a deal.

One stream per attempt, four frames at most:

    consumer -> hub   DealRequest   "I want ASK X for BID Y"          (signed by the consumer)
    hub -> consumer   DealReply     yes (reserved until T) / no, why  (signed by the hub)
    consumer -> hub   DealProposed  "deal N on the registry is it"    (signed by the consumer)
    hub -> consumer   DealVerdict   accepted / refused, why           (signed by the hub)

Each frame is an unsigned LEB128 length, then one canonical msgpack array
`[kind, version, field_1, ..., field_n, signature]` (docs/market.md has the byte
layout). Signatures are EIP-712 over the same domain as the orders, so each message
is attributable to an Ethereum account: the request to the BID's author, the reply
to the ASK's author. Decoding is size-capped before msgpack sees a byte, every field
is type- and range-checked, and the bytes must be the canonical encoding. Pure: no
I/O, no clock (the caller passes `now`).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

import msgpack

from gossip import eip712
from gossip.eip712 import FieldSpec, SigningDomain, StructType
from gossip.messages import (
    UINT64_MAX,
    FieldError,
    check_address,
    check_bytes,
    check_signature,
    check_str,
    check_uint,
)
from p2pnode.errors import RemoteError

PROTOCOL_ID = "/sonm/deal/1"
VERSION = 1
MAX_FRAME_BYTES = 1024  # the largest message (a reply with a 200-byte reason) is ~400
MAX_REASON_BYTES = 200
MAX_REQUEST_WINDOW = 120  # seconds a request may stay valid: a replay window, not a lease


class DealWireError(RemoteError):
    """A deal frame from a peer is malformed, oversized, unsigned or mis-signed."""


class DealKind(enum.IntEnum):
    REQUEST = 1
    REPLY = 2
    PROPOSED = 3
    VERDICT = 4


def _struct(name: str, *fields: tuple[str, str, str]) -> StructType:
    return StructType(name, tuple(FieldSpec(n, t, a) for n, t, a in fields))


@dataclass(frozen=True)
class DealRequest:
    """The consumer asks the hub to reserve ASK `ask_id` for its BID `bid_id`."""

    consumer: bytes  # 20-byte address; signer, the BID's author
    ask_id: bytes  # 32
    bid_id: bytes  # 32
    nonce: int
    valid_until: int  # unix seconds; refused when past or more than MAX_REQUEST_WINDOW ahead
    signature: bytes = b""

    KIND: ClassVar[DealKind] = DealKind.REQUEST
    TYPE: ClassVar[StructType] = _struct(
        "DealRequest",
        ("consumer", "address", "consumer"),
        ("askId", "bytes32", "ask_id"),
        ("bidId", "bytes32", "bid_id"),
        ("nonce", "uint64", "nonce"),
        ("validUntil", "uint64", "valid_until"),
    )
    FIELDS: ClassVar[tuple[str, ...]] = ("consumer", "ask_id", "bid_id", "nonce", "valid_until")

    @property
    def signer(self) -> bytes:
        return self.consumer

    def validate(self) -> None:
        check_address("consumer", self.consumer)
        check_bytes("ask_id", self.ask_id, 32, 32)
        check_bytes("bid_id", self.bid_id, 32, 32)
        check_uint("nonce", self.nonce, UINT64_MAX)
        check_uint("valid_until", self.valid_until, UINT64_MAX)
        check_signature("signature", self.signature)


@dataclass(frozen=True)
class DealReply:
    """The hub's answer: `ok` with the reservation's end, or the reason it said no."""

    hub: bytes  # 20-byte address; signer, the ASK's author
    ask_id: bytes
    consumer: bytes
    ok: int  # 1 yes, 0 no (an int on the wire: msgpack bools are not in our encoding)
    reserved_until: int  # unix seconds; 0 when refused
    reason: str
    signature: bytes = b""

    KIND: ClassVar[DealKind] = DealKind.REPLY
    TYPE: ClassVar[StructType] = _struct(
        "DealReply",
        ("hub", "address", "hub"),
        ("askId", "bytes32", "ask_id"),
        ("consumer", "address", "consumer"),
        ("ok", "uint8", "ok"),
        ("reservedUntil", "uint64", "reserved_until"),
        ("reason", "string", "reason"),
    )
    FIELDS: ClassVar[tuple[str, ...]] = (
        "hub",
        "ask_id",
        "consumer",
        "ok",
        "reserved_until",
        "reason",
    )

    @property
    def signer(self) -> bytes:
        return self.hub

    def validate(self) -> None:
        check_address("hub", self.hub)
        check_bytes("ask_id", self.ask_id, 32, 32)
        check_address("consumer", self.consumer)
        check_uint("ok", self.ok, 1)
        check_uint("reserved_until", self.reserved_until, UINT64_MAX)
        check_str("reason", self.reason, MAX_REASON_BYTES)
        check_signature("signature", self.signature)


@dataclass(frozen=True)
class DealProposed:
    """The consumer names the registry deal it proposed for the reserved ASK."""

    consumer: bytes
    ask_id: bytes
    deal_id: int
    signature: bytes = b""

    KIND: ClassVar[DealKind] = DealKind.PROPOSED
    TYPE: ClassVar[StructType] = _struct(
        "DealProposed",
        ("consumer", "address", "consumer"),
        ("askId", "bytes32", "ask_id"),
        ("dealId", "uint64", "deal_id"),
    )
    FIELDS: ClassVar[tuple[str, ...]] = ("consumer", "ask_id", "deal_id")

    @property
    def signer(self) -> bytes:
        return self.consumer

    def validate(self) -> None:
        check_address("consumer", self.consumer)
        check_bytes("ask_id", self.ask_id, 32, 32)
        check_uint("deal_id", self.deal_id, UINT64_MAX)
        check_signature("signature", self.signature)


@dataclass(frozen=True)
class DealVerdict:
    """The hub accepted deal `deal_id` on chain (`accepted` = 1), or says why not."""

    hub: bytes
    deal_id: int
    accepted: int
    reason: str
    signature: bytes = b""

    KIND: ClassVar[DealKind] = DealKind.VERDICT
    TYPE: ClassVar[StructType] = _struct(
        "DealVerdict",
        ("hub", "address", "hub"),
        ("dealId", "uint64", "deal_id"),
        ("accepted", "uint8", "accepted"),
        ("reason", "string", "reason"),
    )
    FIELDS: ClassVar[tuple[str, ...]] = ("hub", "deal_id", "accepted", "reason")

    @property
    def signer(self) -> bytes:
        return self.hub

    def validate(self) -> None:
        check_address("hub", self.hub)
        check_uint("deal_id", self.deal_id, UINT64_MAX)
        check_uint("accepted", self.accepted, 1)
        check_str("reason", self.reason, MAX_REASON_BYTES)
        check_signature("signature", self.signature)


DealMessage: TypeAlias = DealRequest | DealReply | DealProposed | DealVerdict
_CLASSES: dict[int, type[Any]] = {
    int(c.KIND): c for c in (DealRequest, DealReply, DealProposed, DealVerdict)
}


def digest(domain: SigningDomain, msg: DealMessage) -> bytes:
    return eip712.digest(domain, msg.TYPE, msg)


def sign(msg: DealMessage, domain: SigningDomain, private_key: bytes) -> Any:
    """The message with its EIP-712 signature (same type as given)."""
    return dataclasses.replace(msg, signature=eip712.sign_digest(digest(domain, msg), private_key))


def _to_wire(msg: DealMessage) -> list[Any]:
    return [int(msg.KIND), VERSION, *(getattr(msg, f) for f in msg.FIELDS), msg.signature]


def encode(msg: DealMessage) -> bytes:
    """The payload (no length prefix). FieldError when our own message is invalid."""
    msg.validate()
    if not msg.signature:
        raise FieldError("signature", "a deal message must be signed before it is sent")
    data: bytes = msgpack.packb(_to_wire(msg), use_bin_type=True)
    if len(data) > MAX_FRAME_BYTES:
        raise FieldError("message", f"{len(data)} bytes > {MAX_FRAME_BYTES}")
    return data


def frame(msg: DealMessage) -> bytes:
    """Length-prefixed payload, ready for the stream."""
    data = encode(msg)
    return _uvarint(len(data)) + data


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def decode(data: bytes, domain: SigningDomain, *, expect: type[Any] | None = None) -> Any:
    """Parse, check and verify one payload from a peer; DealWireError says what was wrong.

    The signature must recover to the message's own signer field, so a message can
    only speak for the account that signed it."""
    if type(data) is not bytes:
        raise DealWireError(f"message: bytes expected, got {type(data).__name__}")
    if len(data) > MAX_FRAME_BYTES:
        raise DealWireError(f"message: {len(data)} bytes > limit {MAX_FRAME_BYTES}")
    try:
        top = msgpack.unpackb(
            data,
            raw=False,
            use_list=False,
            strict_map_key=True,
            max_str_len=MAX_REASON_BYTES * 4,
            max_bin_len=128,
            max_array_len=16,
            max_map_len=0,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise DealWireError(f"message: not valid msgpack ({type(exc).__name__})") from None
    if type(top) is not tuple or len(top) < 2:
        raise DealWireError("message: an array [kind, version, ...] expected")
    kind, version = top[0], top[1]
    cls = _CLASSES.get(kind) if type(kind) is int else None
    if cls is None:
        raise DealWireError(f"kind: one of {sorted(_CLASSES)} expected, got {kind!r}")
    if expect is not None and cls is not expect:
        raise DealWireError(f"kind: {expect.KIND.name} expected here, got {cls.KIND.name}")
    if type(version) is not int or version != VERSION:
        raise DealWireError(f"version: {VERSION} expected, got {version!r}")
    if len(top) != 3 + len(cls.FIELDS):
        raise DealWireError(
            f"message: {cls.KIND.name} has {3 + len(cls.FIELDS)} items, got {len(top)}"
        )
    try:
        msg = cls(**dict(zip(cls.FIELDS, top[2:-1], strict=True)), signature=top[-1])
        msg.validate()
    except FieldError as exc:
        raise DealWireError(f"{exc.field}: {exc.problem}") from None
    if not msg.signature:
        raise DealWireError("signature: missing")
    if msgpack.packb(_to_wire(msg), use_bin_type=True) != data:
        raise DealWireError("message: not in canonical encoding")
    try:
        signer = eip712.recover_address(digest(domain, msg), msg.signature)
    except eip712.SignatureError as exc:
        raise DealWireError(f"signature: {exc}") from None
    if signer != msg.signer:
        raise DealWireError("signature: not made by the message's signer")
    return msg


def check_request_window(req: DealRequest, now: float) -> str | None:
    """Why a request's validity window is unacceptable at `now`; None when fine."""
    if req.valid_until < now:
        return "request expired"
    if req.valid_until > now + MAX_REQUEST_WINDOW:
        return f"request valid for more than {MAX_REQUEST_WINDOW} s"
    return None


class FrameReader:
    """Collects length-prefixed frames from stream chunks, refusing oversized ones
    before buffering them (sans-IO: the caller feeds bytes, takes payloads)."""

    def __init__(self, max_frame: int = MAX_FRAME_BYTES) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buf.extend(chunk)
        out: list[bytes] = []
        while True:
            length, used = 0, 0
            for i, b in enumerate(self._buf[:4]):
                length |= (b & 0x7F) << (7 * i)
                if not b & 0x80:
                    used = i + 1
                    break
            else:
                if len(self._buf) >= 4:
                    raise DealWireError("frame: length prefix longer than 4 bytes")
                return out
            if length > self.max_frame:
                raise DealWireError(f"frame: {length} bytes > limit {self.max_frame}")
            if len(self._buf) < used + length:
                return out
            out.append(bytes(self._buf[used : used + length]))
            del self._buf[: used + length]
