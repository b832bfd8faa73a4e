"""Signed, canonical msgpack messages in length-prefixed frames, as the direct
streams `/sonm/deal/1`, `/sonm/task/1` and `/sonm/worker/1` carry them.

A frame is an unsigned LEB128 length, then one canonical msgpack array
`[kind, version, field_1, ..., field_n, signature]` (no signature for the few
unsigned kinds). A protocol module declares its messages as frozen dataclasses with

    KIND     the IntEnum member that is the array's first item
    FIELDS   the attribute names in wire order (`attrs(TYPE)` for a signed kind:
             the order it is signed in)
    TYPE     the EIP-712 struct signed (signed kinds only; its absence means unsigned)
    SIGNER   the attribute that holds the signing account (signed kinds only)
    LIMIT    the kind's payload cap (optional: the protocol's `max_frame` otherwise)
    BIG      names of uint256 fields, sent as big-endian bytes (optional)
    validate()  raising FieldError that names the field

and one `SignedFrames` that says what is common to its kinds. Each protocol keeps
its own error class, so a bad frame is reported as that protocol's peer's fault.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack

from gossip import eip712
from gossip.codec import _uint256_in, _uint256_out
from gossip.eip712 import FieldSpec, SigningDomain, StructType
from gossip.messages import FieldError
from p2pnode.errors import RemoteError

MAX_PREFIX = 4  # LEB128 bytes of a frame's length: frames stay far below 256 MiB


def struct(name: str, *fields: tuple[str, str, str]) -> StructType:
    """An EIP-712 struct from (type field name, type, attribute) triples."""
    return StructType(name, tuple(FieldSpec(n, t, a) for n, t, a in fields))


def attrs(struct_type: StructType) -> tuple[str, ...]:
    """The attributes a struct signs, in its order: a signed kind's wire order."""
    return tuple(f.attr for f in struct_type.fields)


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def is_signed(cls: type[Any]) -> bool:
    return getattr(cls, "TYPE", None) is not None


def signer(msg: Any) -> bytes:
    """The account a signed message speaks for."""
    return bytes(getattr(msg, type(msg).SIGNER))


def digest(domain: SigningDomain, msg: Any) -> bytes:
    return eip712.digest(domain, msg.TYPE, msg)


def sign(msg: Any, domain: SigningDomain, private_key: bytes) -> Any:
    """The message with its EIP-712 signature (same type as given)."""
    return dataclasses.replace(msg, signature=eip712.sign_digest(digest(domain, msg), private_key))


def check_window(valid_until: int, now: float, max_window: int) -> str | None:
    """Why a request's validity window is unacceptable at `now`; None when fine. The
    caller passes the clock's reading: this module reads none."""
    if valid_until < now:
        return "request expired"
    if valid_until > now + max_window:
        return f"request valid for more than {max_window} s"
    return None


def _to_wire(msg: Any, version: int) -> list[Any]:
    big = getattr(msg, "BIG", ())
    values = []
    for name in msg.FIELDS:
        value = getattr(msg, name)
        if name in big:
            value = _uint256_out(value)
        elif isinstance(value, tuple):
            value = list(value)
        values.append(value)
    tail = [msg.signature] if is_signed(type(msg)) else []
    return [int(msg.KIND), version, *values, *tail]


@dataclass(frozen=True)
class SignedFrames:
    """What one protocol's kinds share: its error class, version, the kinds, the name
    its own-message errors use, and the decoder's caps."""

    error: type[RemoteError]
    version: int
    kinds: tuple[type[Any], ...]
    noun: str  # "a <noun> message must be signed before it is sent"
    max_frame: int  # the cap of a kind without its own LIMIT
    max_array: int = 16
    max_str: int = 800
    max_bin: int | None = None  # None: the frame's cap
    unsigned_first: bool = False  # "signature: missing" before the canonical check

    @functools.cached_property
    def classes(self) -> dict[int, type[Any]]:
        return {int(c.KIND): c for c in self.kinds}

    def limit(self, cls: type[Any]) -> int:
        return int(getattr(cls, "LIMIT", self.max_frame))

    def encode(self, msg: Any) -> bytes:
        """The payload (no length prefix). FieldError when our own message is invalid."""
        msg.validate()
        if is_signed(type(msg)) and not msg.signature:
            raise FieldError("signature", f"a {self.noun} message must be signed before it is sent")
        data: bytes = msgpack.packb(_to_wire(msg, self.version), use_bin_type=True)
        limit = self.limit(type(msg))
        if len(data) > limit:
            raise FieldError("message", f"{len(data)} bytes > {limit}")
        return data

    def frame(self, msg: Any) -> bytes:
        """Length-prefixed payload, ready for the stream."""
        data = self.encode(msg)
        return uvarint(len(data)) + data

    def decode(self, data: bytes, domain: SigningDomain, expect: Iterable[type[Any]] | None) -> Any:
        """Parse and check one payload from a peer, of one of the `expect`ed kinds
        (None: any); a signed kind's signature must recover to its own signer field,
        so a message can only speak for the account that signed it."""
        err = self.error
        classes = self.classes
        wanted = tuple(classes.values()) if expect is None else tuple(expect)
        if type(data) is not bytes:
            raise err(f"message: bytes expected, got {type(data).__name__}")
        limit = max(self.limit(c) for c in wanted)
        if len(data) > limit:
            raise err(f"message: {len(data)} bytes > limit {limit}")
        try:
            top = msgpack.unpackb(
                data,
                raw=False,
                use_list=False,
                strict_map_key=True,
                max_str_len=self.max_str,
                max_bin_len=limit if self.max_bin is None else self.max_bin,
                max_array_len=self.max_array,
                max_map_len=0,
                max_ext_len=0,
            )
        except Exception as exc:  # msgpack raises several unrelated types for bad input
            raise err(f"message: not valid msgpack ({type(exc).__name__})") from None
        if type(top) is not tuple or len(top) < 2:
            raise err("message: an array [kind, version, ...] expected")
        kind, version = top[0], top[1]
        cls = classes.get(kind) if type(kind) is int else None
        if cls is None:
            raise err(f"kind: one of {sorted(classes)} expected, got {kind!r}")
        if cls not in wanted:
            names = " or ".join(c.KIND.name for c in wanted)
            raise err(f"kind: {names} expected here, got {cls.KIND.name}")
        if len(data) > self.limit(cls):
            raise err(f"message: {len(data)} bytes > limit {self.limit(cls)} for {cls.KIND.name}")
        if type(version) is not int or version != self.version:
            raise err(f"version: {self.version} expected, got {version!r}")
        signed = is_signed(cls)
        want = 2 + len(cls.FIELDS) + (1 if signed else 0)
        if len(top) != want:
            raise err(f"message: {cls.KIND.name} has {want} items, got {len(top)}")
        values = dict(zip(cls.FIELDS, top[2 : 2 + len(cls.FIELDS)], strict=True))
        try:
            for name in getattr(cls, "BIG", ()):
                values[name] = _uint256_in(name, values[name])
            msg = cls(**values, signature=top[-1]) if signed else cls(**values)
            msg.validate()
        except FieldError as exc:
            raise err(f"{exc.field}: {exc.problem}") from None
        if signed and self.unsigned_first and not msg.signature:
            raise err("signature: missing")
        if msgpack.packb(_to_wire(msg, self.version), use_bin_type=True) != data:
            raise err("message: not in canonical encoding")
        if not signed:
            return msg
        if not msg.signature:
            raise err("signature: missing")
        try:
            recovered = eip712.recover_address(digest(domain, msg), msg.signature)
        except eip712.SignatureError as exc:
            raise err(f"signature: {exc}") from None
        if recovered != signer(msg):
            raise err("signature: not made by the message's signer")
        return msg


class FrameReader:
    """Collects length-prefixed frames from stream chunks, refusing oversized ones
    before buffering them (sans-IO: the caller feeds bytes, takes payloads). With
    `at_most`, what follows the frames taken stays buffered for `pending()`: raw
    bytes (a results archive, a blob) may follow their header frame on a stream."""

    def __init__(self, max_frame: int, error: type[RemoteError]) -> None:
        self.max_frame = max_frame
        self.error = error
        self._buf = bytearray()

    def pending(self) -> bytes:
        """The buffered bytes past the frames taken (and forget them)."""
        out = bytes(self._buf)
        self._buf.clear()
        return out

    def feed(self, chunk: bytes, *, at_most: int | None = None) -> list[bytes]:
        self._buf.extend(chunk)
        out: list[bytes] = []
        while at_most is None or len(out) < at_most:
            length, used = 0, 0
            for i, b in enumerate(self._buf[:MAX_PREFIX]):
                length |= (b & 0x7F) << (7 * i)
                if not b & 0x80:
                    used = i + 1
                    break
            else:
                if len(self._buf) >= MAX_PREFIX:
                    raise self.error(f"frame: length prefix longer than {MAX_PREFIX} bytes")
                return out
            if length > self.max_frame:
                raise self.error(f"frame: {length} bytes > limit {self.max_frame}")
            if len(self._buf) < used + length:
                return out
            out.append(bytes(self._buf[used : used + length]))
            del self._buf[: used + length]
        return out
