"""The libp2p pubsub RPC codec (protobuf, proto2) and its length-prefixed framing.

Hand-written rather than generated: the router needs (a) a decode that turns any
bytes into either a value or one clean `WireError`, (b) the raw bytes of every
received message kept so forwarding costs a copy instead of a re-encode, and
(c) cheap exact sizes for the simulator. benchmarks/gossip_cpu.py measures this
codec against the protobuf package (upb) in the same run.

Schema (field numbers as in go-libp2p-pubsub pb/rpc.proto):

    RPC            { repeated SubOpts subscriptions = 1; repeated Message publish = 2;
                     optional ControlMessage control = 3; }
    SubOpts        { optional bool subscribe = 1; optional string topicid = 2; }
    Message        { optional bytes from = 1; optional bytes data = 2; optional bytes seqno = 3;
                     required string topic = 4; optional bytes signature = 5;
                     optional bytes key = 6; }
    ControlMessage { repeated ControlIHave ihave = 1; repeated ControlIWant iwant = 2;
                     repeated ControlGraft graft = 3; repeated ControlPrune prune = 4;
                     repeated ControlIDontWant idontwant = 5; }
    ControlIHave   { optional string topicID = 1; repeated bytes messageIDs = 2; }
    ControlIWant   { repeated bytes messageIDs = 1; }
    ControlGraft   { optional string topicID = 1; }
    ControlPrune   { optional string topicID = 1; repeated PeerInfo peers = 2;
                     optional uint64 backoff = 3; }
    PeerInfo       { optional bytes peerID = 1; optional bytes signedPeerRecord = 2; }
    ControlIDontWant { repeated bytes messageIDs = 1; }

Unknown fields are skipped (newer peers may add extensions); a known field with
the wrong wire type, a truncated value, bad UTF-8 in a topic or a missing
required topic is an error. Each RPC travels prefixed by its length as an
unsigned varint.
"""

from __future__ import annotations

import hashlib

from gossip.errors import RemoteError


class WireError(RemoteError):
    """A peer sent bytes that are not a valid pubsub RPC (or too large)."""


# ---------------------------------------------------------------- varints

_VARINT_CACHE = [bytes([i]) for i in range(128)]


def uvarint(n: int) -> bytes:
    if n < 128:
        return _VARINT_CACHE[n]
    if n < 16384:
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def uvarint_size(n: int) -> int:
    if n < 0x80:
        return 1
    if n < 0x4000:
        return 2
    size = 3
    n >>= 21
    while n:
        n >>= 7
        size += 1
    return size


def _read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise WireError("truncated varint")
    b = buf[pos]
    pos += 1
    if b < 0x80:
        return b, pos
    result = b & 0x7F
    shift = 7
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise WireError("varint longer than 64 bits")


def _read_len(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    n, pos = _read_varint(buf, pos, end)
    stop = pos + n
    if stop > end:
        raise WireError("length-delimited field runs past its container")
    return pos, stop


def _skip(buf: bytes, pos: int, end: int, wire_type: int) -> int:
    if wire_type == 0:
        return _read_varint(buf, pos, end)[1]
    if wire_type == 2:
        return _read_len(buf, pos, end)[1]
    if wire_type == 1:
        pos += 8
    elif wire_type == 5:
        pos += 4
    else:
        raise WireError(f"unsupported wire type {wire_type}")
    if pos > end:
        raise WireError("truncated fixed-width field")
    return pos


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError("topic is not valid UTF-8") from exc


def _ld(tag: bytes, payload: bytes) -> bytes:
    return tag + uvarint(len(payload)) + payload


def _ld_size(payload_len: int) -> int:
    # every tag used in this schema fits in one byte
    if payload_len < 0x80:
        return 2 + payload_len
    return 1 + uvarint_size(payload_len) + payload_len


def _str_len(s: str) -> int:
    """UTF-8 length without encoding in the common (ASCII) case."""
    return len(s) if s.isascii() else len(s.encode())


def _ids_size(ids: list[bytes]) -> int:
    """Size of `ids` as repeated one-byte-tag bytes fields."""
    size = 0
    for i in ids:
        n = len(i)
        size += n + 2 if n < 0x80 else _ld_size(n)
    return size


# ---------------------------------------------------------------- types


class SubOpts:
    __slots__ = ("subscribe", "topic")

    def __init__(self, subscribe: bool, topic: str) -> None:
        self.subscribe = subscribe
        self.topic = topic

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SubOpts)
            and self.subscribe == other.subscribe
            and self.topic == other.topic
        )

    def __repr__(self) -> str:
        return f"SubOpts({self.subscribe!r}, {self.topic!r})"

    def encode(self) -> bytes:
        # subscribe is always written, as go-libp2p-pubsub does (false is explicit)
        return (b"\x08\x01" if self.subscribe else b"\x08\x00") + _ld(b"\x12", self.topic.encode())

    def encoded_size(self) -> int:
        t = self.topic
        n = len(t) if t.isascii() else len(t.encode())
        return n + 4 if n < 0x80 else 2 + _ld_size(n)


class Message:
    """One pubsub message. `raw` caches its encoding so forwarding never re-encodes."""

    __slots__ = ("_sha", "data", "from_", "key", "raw", "seqno", "signature", "topic")

    def __init__(
        self,
        topic: str,
        data: bytes,
        from_: bytes | None = None,
        seqno: bytes | None = None,
        signature: bytes | None = None,
        key: bytes | None = None,
        raw: bytes | None = None,
    ) -> None:
        self.topic = topic
        self.data = data
        self.from_ = from_
        self.seqno = seqno
        self.signature = signature
        self.key = key
        self.raw = raw
        self._sha: bytes | None = None

    def payload_sha256(self) -> bytes:
        """sha256(data), computed once per object: the simulator hands one Message
        object to every router, which would otherwise each hash it again."""
        h = self._sha
        if h is None:
            h = self._sha = hashlib.sha256(self.data).digest()
        return h

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def _fields(self) -> tuple[object, ...]:
        return (self.topic, self.data, self.from_, self.seqno, self.signature, self.key)

    def __repr__(self) -> str:
        return (
            f"Message(topic={self.topic!r}, data={self.data[:16]!r}.., from_={self.from_!r}, "
            f"seqno={self.seqno!r}, signed={self.signature is not None})"
        )

    def encode_unsigned(self) -> bytes:
        """The encoding without signature and key: what StrictSign signs."""
        parts: list[bytes] = []
        if self.from_ is not None:
            parts.append(_ld(b"\x0a", self.from_))
        parts.append(_ld(b"\x12", self.data))
        if self.seqno is not None:
            parts.append(_ld(b"\x1a", self.seqno))
        parts.append(_ld(b"\x22", self.topic.encode()))
        return b"".join(parts)

    def encode(self) -> bytes:
        raw = self.raw
        if raw is None:
            raw = self.encode_unsigned()
            if self.signature is not None:
                raw += _ld(b"\x2a", self.signature)
            if self.key is not None:
                raw += _ld(b"\x32", self.key)
            self.raw = raw
        return raw


class PeerInfo:
    __slots__ = ("peer_id", "signed_record")

    def __init__(self, peer_id: bytes | None, signed_record: bytes | None = None) -> None:
        self.peer_id = peer_id
        self.signed_record = signed_record

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, PeerInfo)
            and self.peer_id == other.peer_id
            and self.signed_record == other.signed_record
        )

    def __repr__(self) -> str:
        return f"PeerInfo({self.peer_id!r}, record={self.signed_record is not None})"

    def encode(self) -> bytes:
        out = b""
        if self.peer_id is not None:
            out += _ld(b"\x0a", self.peer_id)
        if self.signed_record is not None:
            out += _ld(b"\x12", self.signed_record)
        return out

    def encoded_size(self) -> int:
        size = 0
        if self.peer_id is not None:
            size += _ld_size(len(self.peer_id))
        if self.signed_record is not None:
            size += _ld_size(len(self.signed_record))
        return size


class Prune:
    __slots__ = ("backoff", "peers", "topic")

    def __init__(
        self, topic: str, peers: list[PeerInfo] | None = None, backoff: int | None = None
    ) -> None:
        self.topic = topic
        self.peers = peers if peers is not None else []
        self.backoff = backoff

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Prune)
            and self.topic == other.topic
            and self.peers == other.peers
            and self.backoff == other.backoff
        )

    def __repr__(self) -> str:
        return f"Prune({self.topic!r}, peers={self.peers!r}, backoff={self.backoff!r})"

    def encode(self) -> bytes:
        out = _ld(b"\x0a", self.topic.encode())
        for p in self.peers:
            out += _ld(b"\x12", p.encode())
        if self.backoff is not None:
            out += b"\x18" + uvarint(self.backoff)
        return out

    def encoded_size(self) -> int:
        size = _ld_size(_str_len(self.topic))
        for p in self.peers:
            size += _ld_size(p.encoded_size())
        if self.backoff is not None:
            size += 1 + uvarint_size(self.backoff)
        return size


class Control:
    """ControlMessage. IHAVE is kept as (topic, ids) pairs; IWANT/IDONTWANT as flat id lists.

    Each of the five lists is created on first use: a control message usually
    carries one kind (a GRAFT, a PRUNE, IHAVEs), and routers make one per peer
    per heartbeat. Reading a field through its property creates it (so
    `Control().graft.append(t)` works); code in gossip/ that only looks reads the
    `_field` slots, which stay None while unused.
    """

    __slots__ = ("_graft", "_idontwant", "_ihave", "_iwant", "_prune")

    def __init__(
        self,
        ihave: list[tuple[str, list[bytes]]] | None = None,
        iwant: list[bytes] | None = None,
        graft: list[str] | None = None,
        prune: list[Prune] | None = None,
        idontwant: list[bytes] | None = None,
    ) -> None:
        self._ihave = ihave
        self._iwant = iwant
        self._graft = graft
        self._prune = prune
        self._idontwant = idontwant

    @property
    def ihave(self) -> list[tuple[str, list[bytes]]]:
        v = self._ihave
        if v is None:
            v = self._ihave = []
        return v

    @ihave.setter
    def ihave(self, value: list[tuple[str, list[bytes]]]) -> None:
        self._ihave = value

    @property
    def iwant(self) -> list[bytes]:
        v = self._iwant
        if v is None:
            v = self._iwant = []
        return v

    @iwant.setter
    def iwant(self, value: list[bytes]) -> None:
        self._iwant = value

    @property
    def graft(self) -> list[str]:
        v = self._graft
        if v is None:
            v = self._graft = []
        return v

    @graft.setter
    def graft(self, value: list[str]) -> None:
        self._graft = value

    @property
    def prune(self) -> list[Prune]:
        v = self._prune
        if v is None:
            v = self._prune = []
        return v

    @prune.setter
    def prune(self, value: list[Prune]) -> None:
        self._prune = value

    @property
    def idontwant(self) -> list[bytes]:
        v = self._idontwant
        if v is None:
            v = self._idontwant = []
        return v

    @idontwant.setter
    def idontwant(self, value: list[bytes]) -> None:
        self._idontwant = value

    def __bool__(self) -> bool:
        return bool(self._ihave or self._iwant or self._graft or self._prune or self._idontwant)

    def __eq__(self, other: object) -> bool:
        # an absent list equals an empty one
        return (
            isinstance(other, Control)
            and (self._ihave or []) == (other._ihave or [])
            and (self._iwant or []) == (other._iwant or [])
            and (self._graft or []) == (other._graft or [])
            and (self._prune or []) == (other._prune or [])
            and (self._idontwant or []) == (other._idontwant or [])
        )

    def __repr__(self) -> str:
        return (
            f"Control(ihave={self._ihave or []!r}, iwant={self._iwant or []!r}, "
            f"graft={self._graft or []!r}, prune={self._prune or []!r}, "
            f"idontwant={self._idontwant or []!r})"
        )

    def encode(self) -> bytes:
        parts: list[bytes] = []
        if self._ihave:
            for topic, ids in self._ihave:
                body = _ld(b"\x0a", topic.encode()) + b"".join([_ld(b"\x12", i) for i in ids])
                parts.append(_ld(b"\x0a", body))
        if self._iwant:
            parts.append(_ld(b"\x12", b"".join([_ld(b"\x0a", i) for i in self._iwant])))
        if self._graft:
            for topic in self._graft:
                parts.append(_ld(b"\x1a", _ld(b"\x0a", topic.encode())))
        if self._prune:
            for pr in self._prune:
                parts.append(_ld(b"\x22", pr.encode()))
        if self._idontwant:
            parts.append(_ld(b"\x2a", b"".join([_ld(b"\x0a", i) for i in self._idontwant])))
        return b"".join(parts)

    def encoded_size(self) -> int:
        """len(self.encode()), by arithmetic: the simulator sizes every RPC it sends."""
        size = 0
        if self._ihave:
            for topic, ids in self._ihave:
                n = len(topic) if topic.isascii() else len(topic.encode())
                n = (n + 2 if n < 0x80 else _ld_size(n)) + _ids_size(ids)
                size += n + 2 if n < 0x80 else _ld_size(n)
        if self._graft:
            for topic in self._graft:
                n = len(topic) if topic.isascii() else len(topic.encode())
                size += n + 4 if n < 0x7E else _ld_size(_ld_size(n))
        if self._prune:
            for pr in self._prune:
                size += _ld_size(pr.encoded_size())
        if self._iwant:
            size += _ld_size(_ids_size(self._iwant))
        if self._idontwant:
            size += _ld_size(_ids_size(self._idontwant))
        return size


# The keys (field number << 3 | wire type 2) of the RPC's three fields.
RPC_SUBSCRIPTIONS = b"\x0a"
RPC_PUBLISH = b"\x12"
RPC_CONTROL = b"\x1a"


class RPC:
    __slots__ = ("control", "publish", "subscriptions")

    def __init__(
        self,
        subscriptions: list[SubOpts] | None = None,
        publish: list[Message] | None = None,
        control: Control | None = None,
    ) -> None:
        self.subscriptions = subscriptions if subscriptions is not None else []
        self.publish = publish if publish is not None else []
        self.control = control

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RPC):
            return False
        mine = self.control if self.control else None
        theirs = other.control if other.control else None
        return (
            self.subscriptions == other.subscriptions
            and self.publish == other.publish
            and mine == theirs
        )

    def __repr__(self) -> str:
        return f"RPC(subs={self.subscriptions!r}, publish={self.publish!r}, ctl={self.control!r})"

    def encode(self) -> bytes:
        parts: list[bytes] = [_ld(RPC_SUBSCRIPTIONS, s.encode()) for s in self.subscriptions]
        for m in self.publish:
            parts.append(_ld(RPC_PUBLISH, m.encode()))
        if self.control:
            parts.append(_ld(RPC_CONTROL, self.control.encode()))
        return b"".join(parts)

    def encoded_size(self) -> int:
        """Exact encoded size (without the length prefix), computed without encoding
        anything but messages, whose encoding is cached on them anyway."""
        # (n + 2 if n < 0x80 else _ld_size(n)) is _ld_size(n), without a call for short fields
        size = 0
        for s in self.subscriptions:
            n = s.encoded_size()
            size += n + 2 if n < 0x80 else _ld_size(n)
        for m in self.publish:
            raw = m.raw
            size += _ld_size(len(raw) if raw is not None else len(m.encode()))
        ctl = self.control
        if ctl is not None:
            n = ctl.encoded_size()
            if n:
                size += n + 2 if n < 0x80 else _ld_size(n)
        return size


def frame(body: bytes) -> bytes:
    """Prefix one encoded RPC with its unsigned-varint length."""
    return uvarint(len(body)) + body


def encode_frames(
    subs: list[SubOpts], msgs: list[Message], ctl: Control | None, max_size: int
) -> list[bytes]:
    """Everything queued for one peer as length-prefixed RPC frames, as few as fit:
    subscriptions and control lead the first frame, messages follow, and a new
    frame starts only where the next message would take a frame over `max_size`
    (a message larger than that alone still goes, in a frame of its own).

    Each frame decodes to the RPC of its parts (fields in the order subscriptions,
    control, messages: protobuf takes any order). No RPC object is built, and
    messages keep their cached encoding (forwarding costs a copy, not a
    re-encode)."""
    parts: list[bytes] = []
    size = 0
    for s in subs:
        b = s.encode()
        parts.append(RPC_SUBSCRIPTIONS + uvarint(len(b)) + b)
        size += len(parts[-1])
    if ctl:
        b = ctl.encode()
        parts.append(RPC_CONTROL + uvarint(len(b)) + b)
        size += len(parts[-1])
    frames: list[bytes] = []
    for msg in msgs:
        raw = msg.encode()
        hdr = RPC_PUBLISH + uvarint(len(raw))
        n = len(hdr) + len(raw)
        if size and size + n > max_size:
            frames.append(uvarint(size) + b"".join(parts))
            parts = []
            size = 0
        parts.append(hdr)
        parts.append(raw)
        size += n
    if parts:
        frames.append(uvarint(size) + b"".join(parts))
    return frames


# ---------------------------------------------------------------- decoding


def _decode_subopts(buf: bytes, pos: int, end: int) -> SubOpts:
    subscribe = False
    topic: str | None = None
    while pos < end:
        key = buf[pos]
        if key == 0x08:
            v, pos = _read_varint(buf, pos + 1, end)
            subscribe = v != 0
        elif key == 0x12:
            s, pos = _read_len(buf, pos + 1, end)
            topic = _text(buf[s:pos])
        else:
            k, pos = _read_varint(buf, pos, end)
            if k >> 3 in (1, 2):
                raise WireError(f"SubOpts field {k >> 3} has wire type {k & 7}")
            pos = _skip(buf, pos, end, k & 7)
    if topic is None:
        raise WireError("SubOpts without a topic")
    return SubOpts(subscribe, topic)


def _decode_message(buf: bytes, pos: int, end: int) -> Message:
    start = pos
    from_ = seqno = signature = key_ = None
    data = b""
    topic: str | None = None
    while pos < end:
        k = buf[pos]
        if k < 0x80 and (k & 7) == 2 and 1 <= (k >> 3) <= 6:
            n = buf[pos + 1] if pos + 1 < end else 0x80
            if n < 0x80:  # one-byte length: the common case for all but data
                s = pos + 2
                pos = s + n
                if pos > end:
                    raise WireError("length-delimited field runs past its container")
            else:
                s, pos = _read_len(buf, pos + 1, end)
            field = k >> 3
            if field == 2:
                data = buf[s:pos]
            elif field == 4:
                topic = _text(buf[s:pos])
            elif field == 1:
                from_ = buf[s:pos]
            elif field == 3:
                seqno = buf[s:pos]
            elif field == 5:
                signature = buf[s:pos]
            else:
                key_ = buf[s:pos]
        else:
            k2, pos = _read_varint(buf, pos, end)
            if 1 <= (k2 >> 3) <= 6:
                raise WireError(f"Message field {k2 >> 3} has wire type {k2 & 7}")
            pos = _skip(buf, pos, end, k2 & 7)
    if topic is None:
        raise WireError("Message without its required topic")
    return Message(topic, data, from_, seqno, signature, key_, buf[start:end])


def _decode_id_list(buf: bytes, pos: int, end: int, field: int, out: list[bytes]) -> None:
    want = (field << 3) | 2
    while pos < end:
        k, pos = _read_varint(buf, pos, end)
        if k == want:
            s, pos = _read_len(buf, pos, end)
            out.append(buf[s:pos])
        elif k >> 3 == field:
            raise WireError(f"message id field has wire type {k & 7}")
        else:
            pos = _skip(buf, pos, end, k & 7)


def _decode_topic_only(buf: bytes, pos: int, end: int) -> str:
    topic = ""
    while pos < end:
        k, pos = _read_varint(buf, pos, end)
        if k == 0x0A:
            s, pos = _read_len(buf, pos, end)
            topic = _text(buf[s:pos])
        elif k >> 3 == 1:
            raise WireError(f"topicID has wire type {k & 7}")
        else:
            pos = _skip(buf, pos, end, k & 7)
    return topic


def _decode_ihave(buf: bytes, pos: int, end: int) -> tuple[str, list[bytes]]:
    topic = ""
    ids: list[bytes] = []
    while pos < end:
        k, pos = _read_varint(buf, pos, end)
        if k == 0x12:
            s, pos = _read_len(buf, pos, end)
            ids.append(buf[s:pos])
        elif k == 0x0A:
            s, pos = _read_len(buf, pos, end)
            topic = _text(buf[s:pos])
        elif k >> 3 in (1, 2):
            raise WireError(f"ControlIHave field {k >> 3} has wire type {k & 7}")
        else:
            pos = _skip(buf, pos, end, k & 7)
    return topic, ids


def _decode_peerinfo(buf: bytes, pos: int, end: int) -> PeerInfo:
    pid = rec = None
    while pos < end:
        k, pos = _read_varint(buf, pos, end)
        if k == 0x0A:
            s, pos = _read_len(buf, pos, end)
            pid = buf[s:pos]
        elif k == 0x12:
            s, pos = _read_len(buf, pos, end)
            rec = buf[s:pos]
        elif k >> 3 in (1, 2):
            raise WireError(f"PeerInfo field {k >> 3} has wire type {k & 7}")
        else:
            pos = _skip(buf, pos, end, k & 7)
    return PeerInfo(pid, rec)


def _decode_prune(buf: bytes, pos: int, end: int) -> Prune:
    topic = ""
    peers: list[PeerInfo] = []
    backoff: int | None = None
    while pos < end:
        k, pos = _read_varint(buf, pos, end)
        if k == 0x0A:
            s, pos = _read_len(buf, pos, end)
            topic = _text(buf[s:pos])
        elif k == 0x12:
            s, pos = _read_len(buf, pos, end)
            peers.append(_decode_peerinfo(buf, s, pos))
        elif k == 0x18:
            backoff, pos = _read_varint(buf, pos, end)
        elif k >> 3 in (1, 2, 3):
            raise WireError(f"ControlPrune field {k >> 3} has wire type {k & 7}")
        else:
            pos = _skip(buf, pos, end, k & 7)
    return Prune(topic, peers, backoff)


def _decode_control(buf: bytes, pos: int, end: int) -> Control:
    c = Control()
    while pos < end:
        k, pos = _read_varint(buf, pos, end)
        if k & 7 != 2:
            if 1 <= k >> 3 <= 5:
                raise WireError(f"ControlMessage field {k >> 3} has wire type {k & 7}")
            pos = _skip(buf, pos, end, k & 7)
            continue
        s, pos = _read_len(buf, pos, end)
        field = k >> 3
        if field == 1:
            c.ihave.append(_decode_ihave(buf, s, pos))
        elif field == 2:
            _decode_id_list(buf, s, pos, 1, c.iwant)
        elif field == 3:
            c.graft.append(_decode_topic_only(buf, s, pos))
        elif field == 4:
            c.prune.append(_decode_prune(buf, s, pos))
        elif field == 5:
            _decode_id_list(buf, s, pos, 1, c.idontwant)
    return c


def decode_rpc(buf: bytes) -> RPC:
    """Decode one RPC body (no length prefix). Raises WireError on anything malformed."""
    if not isinstance(buf, bytes):
        buf = bytes(buf)
    rpc = RPC()
    pos = 0
    end = len(buf)
    try:
        while pos < end:
            k = buf[pos]
            if k == 0x12:
                s, pos = _read_len(buf, pos + 1, end)
                rpc.publish.append(_decode_message(buf, s, pos))
            elif k == 0x0A:
                s, pos = _read_len(buf, pos + 1, end)
                rpc.subscriptions.append(_decode_subopts(buf, s, pos))
            elif k == 0x1A:
                s, pos = _read_len(buf, pos + 1, end)
                ctl = _decode_control(buf, s, pos)
                if rpc.control is None:
                    rpc.control = ctl
                else:  # proto2 merges repeated occurrences of a message field
                    rpc.control.ihave += ctl.ihave
                    rpc.control.iwant += ctl.iwant
                    rpc.control.graft += ctl.graft
                    rpc.control.prune += ctl.prune
                    rpc.control.idontwant += ctl.idontwant
            else:
                k2, pos = _read_varint(buf, pos, end)
                if 1 <= k2 >> 3 <= 3:
                    raise WireError(f"RPC field {k2 >> 3} has wire type {k2 & 7}")
                pos = _skip(buf, pos, end, k2 & 7)
    except (IndexError, RecursionError) as exc:  # defensive: never leak a crash
        raise WireError(f"malformed RPC: {exc}") from exc
    return rpc


def split_frames(buf: bytes, max_size: int) -> tuple[list[bytes], int]:
    """Split whole length-prefixed frames off the front of `buf`.

    Returns the frame bodies and how many bytes they consumed; a trailing partial
    frame is left for the caller to complete. A declared length above `max_size`
    raises WireError (the stream cannot be resynchronised after that).
    """
    used = frames_end(buf, max_size)
    out: list[bytes] = []
    pos = 0
    while pos < used:
        n, body = _read_varint(buf, pos, used)
        out.append(buf[body : body + n])
        pos = body + n
    return out, used


def frames_end(buf: bytes | bytearray, max_size: int) -> int:
    """How many leading bytes of `buf` are whole length-prefixed frames (no copy of
    a frame's body: the driver's read loop uses it to hand complete frames to the router at once).
    A declared length above `max_size` raises WireError."""
    pos = 0
    end = len(buf)
    while pos < end:
        try:
            # a varint is at most 10 bytes: read it from a copy of those, as bytes
            # (the buffer may be a bytearray), so the reader stays typed for bytes
            n, used = _read_varint(bytes(buf[pos : pos + 10]), 0, min(10, end - pos))
            body = pos + used
        except WireError:
            if end - pos >= 10:
                raise
            break
        if n > max_size:
            raise WireError(f"frame of {n} bytes exceeds the {max_size}-byte limit")
        if body + n > end:
            break
        pos = body + n
    return pos


class FrameBuffer:
    """Reassembles a byte stream into runs of whole frames (the driver's read loop).

    `feed(chunk)` returns the complete frames now available, as one bytes object
    for `router.receive`, or b"" when a frame is still partial. In the common case
    (a chunk holding only whole frames) the chunk itself is returned, uncopied.
    """

    __slots__ = ("_max", "_pending")

    def __init__(self, max_size: int) -> None:
        self._max = max_size
        self._pending = bytearray()

    def feed(self, chunk: bytes) -> bytes:
        pending = self._pending
        if pending:
            pending += chunk
            used = frames_end(pending, self._max)
            out = bytes(pending[:used])
            del pending[:used]
            return out
        used = frames_end(chunk, self._max)
        if used < len(chunk):
            pending += chunk[used:]
            return chunk[:used]
        return chunk

    def __len__(self) -> int:
        return len(self._pending)
