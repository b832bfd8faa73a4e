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

import enum
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

from gossip.eip712 import SigningDomain, StructType
from gossip.messages import (
    UINT64_MAX,
    check_address,
    check_bytes,
    check_signature,
    check_str,
    check_uint,
)
from p2pnode import signedframes
from p2pnode.errors import RemoteError
from p2pnode.signedframes import attrs, struct
from p2pnode.signedframes import digest as digest
from p2pnode.signedframes import sign as sign

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
    SIGNER: ClassVar[str] = "consumer"
    TYPE: ClassVar[StructType] = struct(
        "DealRequest",
        ("consumer", "address", "consumer"),
        ("askId", "bytes32", "ask_id"),
        ("bidId", "bytes32", "bid_id"),
        ("nonce", "uint64", "nonce"),
        ("validUntil", "uint64", "valid_until"),
    )
    FIELDS: ClassVar[tuple[str, ...]] = attrs(TYPE)

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
    SIGNER: ClassVar[str] = "hub"
    TYPE: ClassVar[StructType] = struct(
        "DealReply",
        ("hub", "address", "hub"),
        ("askId", "bytes32", "ask_id"),
        ("consumer", "address", "consumer"),
        ("ok", "uint8", "ok"),
        ("reservedUntil", "uint64", "reserved_until"),
        ("reason", "string", "reason"),
    )
    FIELDS: ClassVar[tuple[str, ...]] = attrs(TYPE)

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
    SIGNER: ClassVar[str] = "consumer"
    TYPE: ClassVar[StructType] = struct(
        "DealProposed",
        ("consumer", "address", "consumer"),
        ("askId", "bytes32", "ask_id"),
        ("dealId", "uint64", "deal_id"),
    )
    FIELDS: ClassVar[tuple[str, ...]] = attrs(TYPE)

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
    SIGNER: ClassVar[str] = "hub"
    TYPE: ClassVar[StructType] = struct(
        "DealVerdict",
        ("hub", "address", "hub"),
        ("dealId", "uint64", "deal_id"),
        ("accepted", "uint8", "accepted"),
        ("reason", "string", "reason"),
    )
    FIELDS: ClassVar[tuple[str, ...]] = attrs(TYPE)

    def validate(self) -> None:
        check_address("hub", self.hub)
        check_uint("deal_id", self.deal_id, UINT64_MAX)
        check_uint("accepted", self.accepted, 1)
        check_str("reason", self.reason, MAX_REASON_BYTES)
        check_signature("signature", self.signature)


DealMessage: TypeAlias = DealRequest | DealReply | DealProposed | DealVerdict


_FRAMES = signedframes.SignedFrames(
    error=DealWireError,
    version=VERSION,
    kinds=(DealRequest, DealReply, DealProposed, DealVerdict),
    noun="deal",
    max_frame=MAX_FRAME_BYTES,
    max_str=MAX_REASON_BYTES * 4,
    max_bin=128,
    unsigned_first=True,
)
_CLASSES: dict[int, type[Any]] = _FRAMES.classes
encode = _FRAMES.encode
frame = _FRAMES.frame


def decode(data: bytes, domain: SigningDomain, *, expect: type[Any] | None = None) -> Any:
    """Parse, check and verify one payload from a peer; DealWireError says what was wrong.

    The signature must recover to the message's own signer field, so a message can
    only speak for the account that signed it."""
    return _FRAMES.decode(data, domain, None if expect is None else (expect,))


def check_request_window(req: DealRequest, now: float) -> str | None:
    """Why a request's validity window is unacceptable at `now`; None when fine."""
    return signedframes.check_window(req.valid_until, now, MAX_REQUEST_WINDOW)


class FrameReader(signedframes.FrameReader):
    """Deal frames up to the largest deal message, oversized ones refused unbuffered."""

    def __init__(self, max_frame: int = MAX_FRAME_BYTES) -> None:
        super().__init__(max_frame, DealWireError)
