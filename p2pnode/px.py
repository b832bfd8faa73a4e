"""Peer exchange wire format, `/sonm/px/1.0.0`: signed peer records, size-capped.

One request/response per stream. The asker sends its own signed peer record and
how many records it wants; the answerer stores the asker's record (after checking
that it is signed by the very peer on the other end of the stream) and answers
with signed records of peers it knows, its own first.

Records are standard libp2p signed envelopes (domain "libp2p-peer-record"), so
they carry their own proof: a record is stored only if the envelope signature is
valid AND the key that signed it is the key of the peer id inside. A peer can
therefore pass records on but cannot forge or alter another peer's addresses.

Frames: unsigned varint length, then a msgpack map. Every size is capped before
anything is decoded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack
from libp2p.peer.envelope import ENVELOPE_DOMAIN, Envelope, consume_envelope, seal_record
from libp2p.peer.id import ID
from libp2p.peer.peer_record import PeerRecord
from multiaddr import Multiaddr

from p2pnode.errors import RemoteError
from p2pnode.signedframes import uvarint as encode_uvarint

PROTOCOL_ID = "/sonm/px/1.0.0"
VERSION = 1
MAX_RECORD_BYTES = 4096
MAX_ADDRS_PER_RECORD = 16
MAX_FRAME_BYTES = 256 * 1024
MAX_WANT = 1024


@dataclass(frozen=True)
class VerifiedRecord:
    peer_id: ID
    addrs: tuple[str, ...]
    seq: int
    envelope: bytes


def make_record(key: Any, peer_id: ID, addrs: list[Multiaddr]) -> bytes:
    """Our own signed record (addresses without the /p2p/ suffix)."""
    clean = [_strip_p2p(a) for a in addrs]
    return seal_record(PeerRecord(peer_id, clean), key).marshal_envelope()


def _strip_p2p(addr: Multiaddr) -> Multiaddr:
    text = str(addr)
    if "/p2p/" in text:
        text = text.split("/p2p/", 1)[0]
    return Multiaddr(text)


def verify_record(envelope: bytes) -> VerifiedRecord:
    """Check signature, signer == peer id, address shape and count; RemoteError if not."""
    if not isinstance(envelope, bytes) or not 0 < len(envelope) <= MAX_RECORD_BYTES:
        raise RemoteError(f"peer record of {len(envelope)} bytes: allowed 1..{MAX_RECORD_BYTES}")
    try:
        env, record = consume_envelope(envelope, ENVELOPE_DOMAIN)
    except Exception as exc:
        raise RemoteError(f"peer record rejected: {type(exc).__name__}") from None
    if not isinstance(env, Envelope) or ID.from_pubkey(env.public_key) != record.peer_id:
        raise RemoteError("peer record signed by a key that is not the record's peer id")
    if not 0 < len(record.addrs) <= MAX_ADDRS_PER_RECORD:
        raise RemoteError(
            f"peer record with {len(record.addrs)} addresses: allowed 1..{MAX_ADDRS_PER_RECORD}"
        )
    addrs = [str(a) for a in record.addrs if _is_tcp(a)]
    if not addrs:
        raise RemoteError("peer record has no /ip4|ip6/.../tcp/... address")
    seq = int(record.seq)
    if not 0 <= seq < 2**64:
        raise RemoteError("peer record seq out of range")
    return VerifiedRecord(record.peer_id, tuple(addrs), seq, envelope)


# -- framing -------------------------------------------------------------------


def frame(payload: dict[str, Any]) -> bytes:
    body = msgpack.packb(payload, use_bin_type=True)
    if len(body) > MAX_FRAME_BYTES:
        raise ValueError(f"px frame of {len(body)} bytes exceeds {MAX_FRAME_BYTES}")
    return encode_uvarint(len(body)) + body


def decode_body(body: bytes) -> dict[str, Any]:
    try:
        obj = msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=True,
            max_bin_len=MAX_RECORD_BYTES,
            max_str_len=64,
            max_array_len=MAX_WANT,
            max_map_len=8,
        )
    except Exception as exc:
        raise RemoteError(f"px frame is not valid msgpack: {type(exc).__name__}") from None
    if not isinstance(obj, dict):
        raise RemoteError("px frame is not a map")
    if obj.get("v") != VERSION:
        raise RemoteError(f"px frame version {obj.get('v')!r}: allowed {VERSION}")
    return obj


ROLES: tuple[str, ...] = ("seed", "supplier", "worker", "consumer")
MAX_ROLE_BYTES = 16  # a role name on the wire; an unknown one is kept as no role


@dataclass(frozen=True)
class Request:
    record: bytes
    want: int
    role: str | None  # what the asker says it runs as (None: not said, or unknown)


@dataclass(frozen=True)
class Response:
    records: list[bytes]
    role: str | None  # what the answerer says it runs as
    # per record, the role its peer told the answerer in their own exchange (hearsay
    # to us: the record is signed, the role beside it is not)
    roles: list[str | None]


def _role(value: Any, what: str) -> str | None:
    """A role as sent: nil or a short string; a name this version does not know is
    no role (a newer node may run as something we cannot show), not an error."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value.encode()) > MAX_ROLE_BYTES:
        raise RemoteError(f"px {what} is not a role name of at most {MAX_ROLE_BYTES} bytes")
    return value if value in ROLES else None


def encode_request(own_record: bytes, want: int, role: str | None = None) -> bytes:
    payload: dict[str, Any] = {"v": VERSION, "record": own_record, "want": want}
    if role is not None:
        payload["role"] = role
    return frame(payload)


def read_request(body: bytes) -> Request:
    obj = decode_body(body)
    record, want = obj.get("record"), obj.get("want")
    if not isinstance(record, bytes):
        raise RemoteError("px request without a record")
    if not isinstance(want, int) or isinstance(want, bool) or not 0 <= want <= MAX_WANT:
        raise RemoteError(f"px request want={want!r}: allowed 0..{MAX_WANT}")
    return Request(record, want, _role(obj.get("role"), "request role"))


def parse_request(body: bytes) -> tuple[bytes, int]:
    req = read_request(body)
    return req.record, req.want


def encode_response(
    records: list[bytes], role: str | None = None, roles: list[str | None] | None = None
) -> bytes:
    """Records up to the frame cap; `role` is ours, `roles[i]` that of records[i]'s
    peer as we know it (sent only when given, cut to the records sent)."""
    out: list[bytes] = []
    size = 16 + (MAX_ROLE_BYTES + 2) * (len(roles) + 1 if roles is not None else 1)
    for r in records:
        size += len(r) + 5
        if size > MAX_FRAME_BYTES:
            break
        out.append(r)
    payload: dict[str, Any] = {"v": VERSION, "records": out}
    if role is not None:
        payload["role"] = role
    if roles is not None:
        payload["roles"] = list(roles[: len(out)])
    return frame(payload)


def read_response(body: bytes) -> Response:
    obj = decode_body(body)
    records = obj.get("records")
    if not isinstance(records, list) or not all(isinstance(r, bytes) for r in records):
        raise RemoteError("px response without a list of records")
    raw_roles = obj.get("roles", [])
    if not isinstance(raw_roles, list) or len(raw_roles) > len(records):
        raise RemoteError("px response roles: a list no longer than the records")
    roles = [_role(r, "record role") for r in raw_roles]
    roles += [None] * (len(records) - len(roles))
    return Response(records, _role(obj.get("role"), "response role"), roles)


def parse_response(body: bytes) -> list[bytes]:
    return read_response(body).records


def _is_tcp(addr: Multiaddr) -> bool:
    """We dial TCP only; other transports are skipped, not fatal."""
    names = [p.name for p in addr.protocols()]
    return len(names) == 2 and names[0] in ("ip4", "ip6") and names[1] == "tcp"


def dialable_addrs(texts: Iterable[str]) -> tuple[str, ...]:
    """The `/ip4|ip6/…/tcp/…` addresses among `texts`, as canonical strings.

    For addresses that arrive outside a peer-exchange envelope (the peers topic):
    anything that does not parse is dropped here, so the dialer never meets it.
    """
    out: list[str] = []
    for text in texts:
        try:
            addr = Multiaddr(text)
        except Exception:
            continue
        if _is_tcp(addr):
            out.append(str(addr))
    return tuple(out)
