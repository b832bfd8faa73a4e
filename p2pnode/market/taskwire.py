"""The `/sonm/task/1` messages: a deal's consumer hands its task to the hub, reads
its logs and fetches its results.

One stream per request; the first frame says which:

    consumer -> hub   TaskStart       deal N, this spec            (signed by the consumer)
    hub -> consumer   TaskAnswer      accepted / refused, why      (signed by the hub)

    consumer -> hub   LogsRequest     deal N, follow?, tail, since, from offsets
                                                                    (signed by the consumer)
    hub -> consumer   LogRecord*      stdout/stderr bytes at their offsets, then an end
                                      record (or a signed TaskAnswer refusing, why)

    consumer -> hub   ResultsRequest  deal N                        (signed by the consumer)
    hub -> consumer   ResultsHeader   the signed receipt, archive size, then the
                                      archive's raw bytes (or a signed TaskAnswer refusing)

    hub -> consumer   BlobRequest     deal N, sha256                (signed by the hub)
    consumer -> hub   BlobHeader      size, then the blob's raw bytes (or BlobRefused, why)

Framing and checks as on `/sonm/deal/1` (p2pnode/market/dealwire.py): an unsigned
LEB128 length, then one canonical msgpack array `[kind, version, fields...,
signature]`, EIP-712 signed in the orders' domain; size-capped before msgpack sees
a byte, each kind with its own cap. Log records and the archive bytes carry no
signature of their own: the stream is bound to the hub's peer by Noise, and the
receipt the hub signs holds the sha256 of both logs and of the archive, which the
consumer checks. Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

import msgpack

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
from p2pnode.executor.spec import (
    MAX_SPEC_FILE_BYTES,
    BlobInput,
    InputFile,
    TaskSpec,
    TaskSpecError,
)
from p2pnode.signedframes import attrs, struct
from p2pnode.signedframes import digest as digest
from p2pnode.signedframes import sign as sign

PROTOCOL_ID = "/sonm/task/1"
VERSION = 1
MAX_SPEC_BYTES = MAX_SPEC_FILE_BYTES  # the packed spec: inline inputs and the rest
MAX_START_BYTES = MAX_SPEC_BYTES + 256
MAX_SMALL_BYTES = 1024  # requests and answers
MAX_LOG_DATA = 32 * 1024  # one log record's bytes
MAX_RECORD_BYTES = MAX_LOG_DATA + 64
MAX_RECEIPT_BYTES = 4096
MAX_HEADER_BYTES = MAX_RECEIPT_BYTES + 64
MAX_FRAME_BYTES = MAX_START_BYTES  # the largest frame of any kind
MAX_REASON_BYTES = 200
MAX_REQUEST_WINDOW = 120  # seconds a request may stay valid: a replay window
MAX_TAIL = 1_000_000


class TaskWireError(RemoteError):
    """A task frame from a peer is malformed, oversized, unsigned or mis-signed."""


class TaskKind(enum.IntEnum):
    START = 1
    ANSWER = 2
    LOGS = 3
    RESULTS = 4
    RECORD = 5
    HEADER = 6
    BLOB_REQUEST = 7
    BLOB_HEADER = 8
    BLOB_REFUSED = 9


class LogStream(enum.IntEnum):
    STDOUT = 0
    STDERR = 1
    END = 2  # no more records; data is the task's state ("running" when not following)


def task_id_of(deal_id: int) -> str:
    """One task per deal: its id follows from the deal's."""
    return f"deal-{deal_id}"


# -- the spec on the wire ---------------------------------------------------------


def pack_spec(spec: TaskSpec) -> bytes:
    """The spec as canonical msgpack: [image, command, env, working_dir, ports, inputs,
    blobs]."""
    spec.validate()
    return bytes(
        msgpack.packb(
            [
                spec.image,
                list(spec.command),
                [list(p) for p in spec.env],
                spec.working_dir,
                list(spec.exposed_ports),
                [[f.path, f.content, f.mode] for f in spec.inputs],
                [[b.path, b.sha256, b.size, b.mode] for b in spec.blobs],
            ],
            use_bin_type=True,
        )
    )


def unpack_spec(data: bytes) -> TaskSpec:
    """A spec from a peer: TaskSpecError (its field named) for anything malformed."""
    if len(data) > MAX_SPEC_BYTES:
        raise TaskSpecError("spec", f"{len(data)} bytes > limit {MAX_SPEC_BYTES}")
    try:
        top = msgpack.unpackb(
            data,
            raw=False,
            use_list=False,
            max_str_len=64 * 1024,
            max_bin_len=MAX_SPEC_BYTES,
            max_array_len=256,
            max_map_len=0,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise TaskSpecError("spec", f"not valid msgpack ({type(exc).__name__})") from None
    if type(top) is not tuple or len(top) != 7:
        raise TaskSpecError("spec", "an array of 7 items expected")
    image, command, env, workdir, ports, inputs, blobs = top
    for name, value in (("command", command), ("env", env), ("exposed_ports", ports)):
        if type(value) is not tuple:
            raise TaskSpecError(name, "an array expected")
    for name, value in (("inputs", inputs), ("blobs", blobs)):
        if type(value) is not tuple:
            raise TaskSpecError(name, "an array expected")
    files = []
    for i, item in enumerate(inputs):
        if type(item) is not tuple or len(item) != 3:
            raise TaskSpecError(f"inputs[{i}]", "[path, content, mode] expected")
        files.append(InputFile(path=item[0], content=item[1], mode=item[2]))
    named = []
    for i, item in enumerate(blobs):
        if type(item) is not tuple or len(item) != 4:
            raise TaskSpecError(f"blobs[{i}]", "[path, sha256, size, mode] expected")
        named.append(BlobInput(path=item[0], sha256=item[1], size=item[2], mode=item[3]))
    spec = TaskSpec(
        image=image,
        command=command,
        env=env,
        working_dir=workdir,
        exposed_ports=ports,
        inputs=tuple(files),
        blobs=tuple(named),
    )
    spec.validate()
    if pack_spec(spec) != data:
        raise TaskSpecError("spec", "not in canonical encoding")
    return spec


# -- signed messages ----------------------------------------------------------------


@dataclass(frozen=True)
class TaskStart:
    """The consumer of deal `deal_id` asks the hub to run `spec` (packed) for it."""

    consumer: bytes  # 20-byte address; signer, the deal's consumer
    deal_id: int
    spec: bytes  # pack_spec()
    valid_until: int
    signature: bytes = b""

    KIND: ClassVar[TaskKind] = TaskKind.START
    SIGNER: ClassVar[str] = "consumer"
    LIMIT: ClassVar[int] = MAX_START_BYTES
    TYPE: ClassVar[StructType] = struct(
        "TaskStart",
        ("consumer", "address", "consumer"),
        ("dealId", "uint64", "deal_id"),
        ("spec", "bytes", "spec"),
        ("validUntil", "uint64", "valid_until"),
    )
    FIELDS: ClassVar[tuple[str, ...]] = attrs(TYPE)

    def validate(self) -> None:
        check_address("consumer", self.consumer)
        check_uint("deal_id", self.deal_id, UINT64_MAX)
        check_bytes("spec", self.spec, MAX_SPEC_BYTES, 1)
        check_uint("valid_until", self.valid_until, UINT64_MAX)
        check_signature("signature", self.signature)


@dataclass(frozen=True)
class TaskAnswer:
    """The hub's answer to any request: `ok` 1 accepted (a start), 0 refused, why."""

    hub: bytes  # 20-byte address; signer, the deal's supplier account
    deal_id: int
    ok: int
    reason: str
    signature: bytes = b""

    KIND: ClassVar[TaskKind] = TaskKind.ANSWER
    SIGNER: ClassVar[str] = "hub"
    LIMIT: ClassVar[int] = MAX_SMALL_BYTES
    TYPE: ClassVar[StructType] = struct(
        "TaskAnswer",
        ("hub", "address", "hub"),
        ("dealId", "uint64", "deal_id"),
        ("ok", "uint8", "ok"),
        ("reason", "string", "reason"),
    )
    FIELDS: ClassVar[tuple[str, ...]] = attrs(TYPE)

    def validate(self) -> None:
        check_address("hub", self.hub)
        check_uint("deal_id", self.deal_id, UINT64_MAX)
        check_uint("ok", self.ok, 1)
        check_str("reason", self.reason, MAX_REASON_BYTES)
        check_signature("signature", self.signature)


@dataclass(frozen=True)
class LogsRequest:
    """The consumer asks for its task's output: of each stream, what was written at or
    after `since_ms` (unix ms; 0: from the start), of that the last `tail` lines (0:
    all), then with `follow` = 1 new output until the task ends. `from_stdout` /
    `from_stderr` > 0 resume at those byte offsets instead (a follower that lost its
    stream asks for exactly what it has not seen)."""

    consumer: bytes
    deal_id: int
    follow: int
    tail: int
    since_ms: int
    from_stdout: int
    from_stderr: int
    valid_until: int
    signature: bytes = b""

    KIND: ClassVar[TaskKind] = TaskKind.LOGS
    SIGNER: ClassVar[str] = "consumer"
    LIMIT: ClassVar[int] = MAX_SMALL_BYTES
    TYPE: ClassVar[StructType] = struct(
        "LogsRequest",
        ("consumer", "address", "consumer"),
        ("dealId", "uint64", "deal_id"),
        ("follow", "uint8", "follow"),
        ("tail", "uint64", "tail"),
        ("sinceMs", "uint64", "since_ms"),
        ("fromStdout", "uint64", "from_stdout"),
        ("fromStderr", "uint64", "from_stderr"),
        ("validUntil", "uint64", "valid_until"),
    )
    FIELDS: ClassVar[tuple[str, ...]] = attrs(TYPE)

    def validate(self) -> None:
        check_address("consumer", self.consumer)
        check_uint("deal_id", self.deal_id, UINT64_MAX)
        check_uint("follow", self.follow, 1)
        check_uint("tail", self.tail, MAX_TAIL)
        check_uint("since_ms", self.since_ms, UINT64_MAX)
        check_uint("from_stdout", self.from_stdout, UINT64_MAX)
        check_uint("from_stderr", self.from_stderr, UINT64_MAX)
        check_uint("valid_until", self.valid_until, UINT64_MAX)
        check_signature("signature", self.signature)


@dataclass(frozen=True)
class ResultsRequest:
    """The consumer asks for its finished task's receipt and results archive."""

    consumer: bytes
    deal_id: int
    valid_until: int
    signature: bytes = b""

    KIND: ClassVar[TaskKind] = TaskKind.RESULTS
    SIGNER: ClassVar[str] = "consumer"
    LIMIT: ClassVar[int] = MAX_SMALL_BYTES
    TYPE: ClassVar[StructType] = struct(
        "ResultsRequest",
        ("consumer", "address", "consumer"),
        ("dealId", "uint64", "deal_id"),
        ("validUntil", "uint64", "valid_until"),
    )
    FIELDS: ClassVar[tuple[str, ...]] = attrs(TYPE)

    def validate(self) -> None:
        check_address("consumer", self.consumer)
        check_uint("deal_id", self.deal_id, UINT64_MAX)
        check_uint("valid_until", self.valid_until, UINT64_MAX)
        check_signature("signature", self.signature)


# -- unsigned records (covered by the signed receipt's hashes) ----------------------------


@dataclass(frozen=True)
class LogRecord:
    """`data` sits at byte `offset` of its stream's log (0 in the end record)."""

    stream: int  # LogStream
    offset: int
    data: bytes

    KIND: ClassVar[TaskKind] = TaskKind.RECORD
    LIMIT: ClassVar[int] = MAX_RECORD_BYTES
    FIELDS: ClassVar[tuple[str, ...]] = ("stream", "offset", "data")

    def validate(self) -> None:
        check_uint("stream", self.stream, max(LogStream))
        check_uint("offset", self.offset, UINT64_MAX)
        check_bytes("data", self.data, MAX_LOG_DATA)


@dataclass(frozen=True)
class ResultsHeader:
    """The receipt (its JSON form, signed by the hub inside) and how many archive
    bytes follow the frame."""

    receipt: bytes  # UTF-8 JSON of Receipt.to_dict()
    size: int

    KIND: ClassVar[TaskKind] = TaskKind.HEADER
    LIMIT: ClassVar[int] = MAX_HEADER_BYTES
    FIELDS: ClassVar[tuple[str, ...]] = ("receipt", "size")

    def validate(self) -> None:
        check_bytes("receipt", self.receipt, MAX_RECEIPT_BYTES, 2)
        check_uint("size", self.size, UINT64_MAX)


@dataclass(frozen=True)
class BlobRequest:
    """The hub of deal `deal_id` asks its consumer for an input blob its task names."""

    hub: bytes  # 20-byte address; signer, the deal's supplier account
    deal_id: int
    sha256: bytes
    valid_until: int
    signature: bytes = b""

    KIND: ClassVar[TaskKind] = TaskKind.BLOB_REQUEST
    SIGNER: ClassVar[str] = "hub"
    LIMIT: ClassVar[int] = MAX_SMALL_BYTES
    TYPE: ClassVar[StructType] = struct(
        "BlobRequest",
        ("hub", "address", "hub"),
        ("dealId", "uint64", "deal_id"),
        ("sha256", "bytes32", "sha256"),
        ("validUntil", "uint64", "valid_until"),
    )
    FIELDS: ClassVar[tuple[str, ...]] = attrs(TYPE)

    def validate(self) -> None:
        check_address("hub", self.hub)
        check_uint("deal_id", self.deal_id, UINT64_MAX)
        check_bytes("sha256", self.sha256, 32, 32)
        check_uint("valid_until", self.valid_until, UINT64_MAX)
        check_signature("signature", self.signature)


@dataclass(frozen=True)
class BlobHeader:
    """How many raw bytes of the blob follow the frame (its size as the spec named it)."""

    size: int

    KIND: ClassVar[TaskKind] = TaskKind.BLOB_HEADER
    LIMIT: ClassVar[int] = 64
    FIELDS: ClassVar[tuple[str, ...]] = ("size",)

    def validate(self) -> None:
        check_uint("size", self.size, UINT64_MAX)


@dataclass(frozen=True)
class BlobRefused:
    """The consumer will not serve that blob, and why (the hub refuses the start)."""

    reason: str

    KIND: ClassVar[TaskKind] = TaskKind.BLOB_REFUSED
    LIMIT: ClassVar[int] = MAX_SMALL_BYTES
    FIELDS: ClassVar[tuple[str, ...]] = ("reason",)

    def validate(self) -> None:
        check_str("reason", self.reason, MAX_REASON_BYTES)


SignedMessage: TypeAlias = TaskStart | TaskAnswer | LogsRequest | ResultsRequest | BlobRequest
TaskMessage: TypeAlias = SignedMessage | LogRecord | ResultsHeader | BlobHeader | BlobRefused
_FRAMES = signedframes.SignedFrames(
    error=TaskWireError,
    version=VERSION,
    kinds=(
        TaskStart,
        TaskAnswer,
        LogsRequest,
        ResultsRequest,
        LogRecord,
        ResultsHeader,
        BlobRequest,
        BlobHeader,
        BlobRefused,
    ),
    noun="task",
    max_frame=MAX_FRAME_BYTES,
    max_str=MAX_REASON_BYTES * 4,
)
_CLASSES: dict[int, type[Any]] = _FRAMES.classes
encode = _FRAMES.encode
frame = _FRAMES.frame


class FrameReader(signedframes.FrameReader):
    """Task frames up to `max_frame`, oversized ones refused unbuffered; what follows
    the frames taken with `at_most` stays for `pending()` (a results archive's raw
    bytes follow their header frame on the same stream)."""

    def __init__(self, max_frame: int = MAX_FRAME_BYTES) -> None:
        super().__init__(max_frame, TaskWireError)


def reader() -> FrameReader:
    """Frames of any kind up to the largest (a start); each kind's own cap is checked
    again by `decode` before msgpack parses it."""
    return FrameReader(MAX_FRAME_BYTES)


def decode(data: bytes, domain: SigningDomain, *, expect: tuple[type[Any], ...]) -> Any:
    """Parse and check one payload from a peer, of one of the `expect`ed kinds; a
    signed kind's signature must recover to its own signer field. TaskWireError
    says what was wrong."""
    return _FRAMES.decode(data, domain, expect)


def check_window(valid_until: int, now: float) -> str | None:
    """Why a request's validity window is unacceptable at `now`; None when fine."""
    return signedframes.check_window(valid_until, now, MAX_REQUEST_WINDOW)
