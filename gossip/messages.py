"""What every signed application message shares: kinds, limits, field checks, errors.

The message types themselves live next to their topic (gossip/hubs.py,
gossip/orders.py, gossip/peer_record.py). They are frozen dataclasses whose
`validate()` checks types, ranges and sizes and raises `FieldError` naming the
field and the bound, so the same checks serve a message built from the local API
(the operator's fault, reported as UserError there) and one decoded from the wire
(the peer's fault: gossip/codec.py turns it into `MessageDecodeError`, a
RemoteError).

Types are checked with `type(x) is int` rather than isinstance: msgpack decodes
true/false as bool, a subclass of int, and a bool where a number belongs is
malformed input, not the number 1.
"""

from __future__ import annotations

import enum
import re

from gossip.errors import RemoteError

UINT64_MAX = 2**64 - 1
UINT256_MAX = 2**256 - 1
ADDRESS_LEN = 20
SIGNATURE_LEN = 65
ZERO_ADDRESS = bytes(ADDRESS_LEN)

# Upper bound on any encoded message. Every per-field limit below fits inside it with
# room to spare; the cap exists so that the decoder never looks at more than this.
MAX_MESSAGE_BYTES = 8192
# Longest validity window anyone may ask us to remember a nonce for. Bounded so the
# replay guard's memory is bounded by (message rate x window), not by attacker whim.
MAX_VALIDITY_SECONDS = 31 * 24 * 3600
PROTOCOL_VERSION = 1
# C0 controls, DEL and C1 controls: they move terminal cursors and forge log lines.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class MessageKind(enum.IntEnum):
    """The tag in front of every encoded message; new kinds get new numbers, never reuse."""

    HUB_ANNOUNCEMENT = 1
    ORDER = 2
    ORDER_CANCEL = 3
    PEER_RECORD = 4


class FieldError(ValueError):
    """A message field is out of its type, range or size; `field` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class MessageDecodeError(RemoteError):
    """Bytes from a peer are not a well-formed message; `field` names what was wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"invalid message: {field}: {problem}")
        self.field = field
        self.problem = problem


# --- field checks (each raises FieldError naming the field and the bound) ---------------


def check_uint(field: str, value: object, maximum: int, minimum: int = 0) -> int:
    if type(value) is not int:
        raise FieldError(field, f"integer expected, got {type(value).__name__}")
    if value < minimum or value > maximum:
        raise FieldError(field, f"must be in [{minimum}, {maximum}], got {value}")
    return value


def all_uints(values: tuple[object, ...], maximum: int) -> bool:
    """Whether every item is an int (not a bool) in [0, maximum]: the fast test in
    front of a per-item check_uint loop, which then only runs to name the bad item."""
    return not values or (
        {*map(type, values)} == {int} and min(values) >= 0 and max(values) <= maximum  # type: ignore[type-var,operator]
    )


def check_bytes(field: str, value: object, max_len: int, min_len: int = 0) -> bytes:
    if type(value) is not bytes:
        raise FieldError(field, f"bytes expected, got {type(value).__name__}")
    n = len(value)
    if n < min_len or n > max_len:
        if min_len == max_len:
            raise FieldError(field, f"exactly {max_len} bytes expected, got {n}")
        raise FieldError(field, f"between {min_len} and {max_len} bytes expected, got {n}")
    return value


def check_address(field: str, value: object) -> bytes:
    return check_bytes(field, value, ADDRESS_LEN, ADDRESS_LEN)


def check_str(field: str, value: object, max_bytes: int, *, printable: bool = True) -> str:
    """A UTF-8 string of at most `max_bytes` encoded bytes, without control characters.

    Control characters are refused because these strings end up in terminals and
    logs (hub names, descriptions); a peer must not be able to move the cursor.
    """
    if type(value) is not str:
        raise FieldError(field, f"string expected, got {type(value).__name__}")
    if value.isascii():
        n = len(value)
    else:
        try:
            n = len(value.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise FieldError(field, "not encodable as UTF-8 (lone surrogate)") from exc
    if n > max_bytes:
        raise FieldError(field, f"at most {max_bytes} UTF-8 bytes, got {n}")
    if printable and _CONTROL.search(value):
        raise FieldError(field, "control characters are not allowed")
    return value


def check_tuple(field: str, value: object, max_items: int) -> tuple[object, ...]:
    if type(value) is not tuple:
        raise FieldError(field, f"tuple expected, got {type(value).__name__}")
    if len(value) > max_items:
        raise FieldError(field, f"at most {max_items} items, got {len(value)}")
    return value


def check_signature(field: str, value: object) -> bytes:
    """65 bytes r || s || v with v in {27, 28}; empty means not signed yet."""
    if type(value) is not bytes:
        raise FieldError(field, f"bytes expected, got {type(value).__name__}")
    if value == b"":
        return value
    if len(value) != SIGNATURE_LEN:
        raise FieldError(field, f"exactly {SIGNATURE_LEN} bytes expected, got {len(value)}")
    if value[64] not in (27, 28):
        raise FieldError(field, f"recovery byte v must be 27 or 28, got {value[64]}")
    return value


def check_window(valid_from: object, valid_until: object, max_seconds: int) -> None:
    """The validity window is well formed: from < until, no longer than the kind allows."""
    start = check_uint("valid_from", valid_from, UINT64_MAX)
    end = check_uint("valid_until", valid_until, UINT64_MAX)
    if end <= start:
        raise FieldError("valid_until", f"must be after valid_from ({start}), got {end}")
    if end - start > max_seconds:
        raise FieldError(
            "valid_until", f"window at most {max_seconds} s after valid_from, got {end - start} s"
        )


def check_multiaddrs(field: str, value: object, max_items: int, max_bytes: int) -> None:
    items = check_tuple(field, value, max_items)
    for i, addr in enumerate(items):
        text = check_str(f"{field}[{i}]", addr, max_bytes)
        if not text.startswith("/"):
            raise FieldError(f"{field}[{i}]", "a multiaddr starts with '/'")


def address_hex(address: bytes) -> str:
    """EIP-55 checksummed text form of a 20-byte address, for people and JSON."""
    from eth_utils import to_checksum_address

    return str(to_checksum_address(address))


def parse_address(field: str, text: str) -> bytes:
    """Accept a 0x-prefixed 40-hex-digit address (any case) and return its 20 bytes."""
    if not isinstance(text, str) or not text.startswith(("0x", "0X")) or len(text) != 42:
        raise FieldError(field, "0x followed by 40 hex digits expected")
    try:
        return bytes.fromhex(text[2:])
    except ValueError as exc:
        raise FieldError(field, "0x followed by 40 hex digits expected") from exc
