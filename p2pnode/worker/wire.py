"""The `/sonm/worker/1` messages: what a worker and its hub say to each other.

One stream per request; the first frame says which, and one signed answer follows:

    worker -> hub   OfferRequest   "what do you pay?"                  (signed by the worker)
    hub -> worker   Offer          pay per hour, payout period, open?  (signed by the hub)

    worker -> hub   JoinRequest    hardware record, pay per hour       (signed by the worker)
    hub -> worker   HubAnswer      joined at T / no, why               (signed by the hub)
    worker -> hub   LeaveNotice    "I leave"                           (signed by the worker)
    hub -> worker   HubAnswer      left at T                           (signed by the hub)

    hub -> worker   TaskOrder      deal N, this spec, these limits     (signed by the hub)
    hub -> worker   LogsOrder      deal N, follow?, tail               (signed by the hub)
    hub -> worker   ResultsOrder   deal N                              (signed by the hub)
    hub -> worker   StopOrder      deal N                              (signed by the hub)
    worker -> hub   WorkerAnswer   ok / refused, why                   (signed by the worker)

After a `WorkerAnswer` that says yes to a `LogsOrder` the worker sends the task's
output as `/sonm/task/1` LogRecord frames (p2pnode/market/taskwire.py), so the hub
relays them to the consumer unchanged; after one to a `ResultsOrder`, a
`/sonm/task/1` ResultsHeader (the worker's signed receipt) and the archive's bytes.

The agreement is the pair (JoinRequest, HubAnswer with ok = 1): the worker signs
its hardware record and the pay per hour, and the hub countersigns the request's
EIP-712 digest (`ref`), so each side holds the other's signature over the same terms.

Framing as on `/sonm/deal/1` and `/sonm/task/1`: an unsigned LEB128 length, then one
canonical msgpack array `[kind, version, fields..., signature]`, EIP-712 signed in
the orders' domain; each kind has its own size cap, checked before msgpack sees a
byte; amounts (uint256) are big-endian bytes without leading zeros, as in gossip.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

from gossip.eip712 import SigningDomain, StructType
from gossip.messages import (
    UINT64_MAX,
    UINT256_MAX,
    FieldError,
    check_address,
    check_bytes,
    check_signature,
    check_str,
    check_uint,
)
from p2pnode import signedframes
from p2pnode.errors import RemoteError
from p2pnode.market import taskwire
from p2pnode.signedframes import attrs, struct
from p2pnode.signedframes import digest as digest
from p2pnode.signedframes import sign as sign
from p2pnode.signedframes import signer as signer
from reputation.agreement import HUB_ANSWER_TYPE, JOIN_TYPE

PROTOCOL_ID = "/sonm/worker/1"
VERSION = 1
MAX_HARDWARE_BYTES = 16 * 1024  # a record's JSON: CPU flags and 8 GPUs fit in ~6 KiB
MAX_JOIN_BYTES = MAX_HARDWARE_BYTES + 1024
MAX_TASK_BYTES = taskwire.MAX_SPEC_BYTES + 2048
MAX_SMALL_BYTES = 1024
MAX_FRAME_BYTES = MAX_TASK_BYTES
MAX_REASON_BYTES = 200
MAX_ADDR_BYTES = 256
MAX_GPUS = 16
MAX_GPU_UUID_BYTES = 96
MAX_REQUEST_WINDOW = 120  # seconds a request may stay valid: a replay window


class WorkerWireError(RemoteError):
    """A worker frame from a peer is malformed, oversized, unsigned or mis-signed."""


class WorkerKind(enum.IntEnum):
    OFFER_REQUEST = 1
    OFFER = 2
    JOIN = 3
    LEAVE = 4
    HUB_ANSWER = 5
    TASK = 6
    LOGS = 7
    RESULTS = 8
    STOP = 9
    WORKER_ANSWER = 10


@dataclass(frozen=True)
class OfferRequest:
    """A worker asks a hub what it pays before choosing one."""

    worker: bytes
    nonce: int
    valid_until: int
    signature: bytes = b""

    KIND: ClassVar[WorkerKind] = WorkerKind.OFFER_REQUEST
    LIMIT: ClassVar[int] = MAX_SMALL_BYTES
    SIGNER: ClassVar[str] = "worker"
    TYPE: ClassVar[StructType] = struct(
        "WorkerOfferRequest",
        ("worker", "address", "worker"),
        ("nonce", "uint64", "nonce"),
        ("validUntil", "uint64", "valid_until"),
    )
    FIELDS: ClassVar[tuple[str, ...]] = attrs(TYPE)

    def validate(self) -> None:
        check_address("worker", self.worker)
        check_uint("nonce", self.nonce, UINT64_MAX)
        check_uint("valid_until", self.valid_until, UINT64_MAX)
        check_signature("signature", self.signature)


@dataclass(frozen=True)
class Offer:
    """The hub's terms for workers now: `open` = 0 when it takes none (full, or no pay
    set), with the reason."""

    hub: bytes  # the hub owner's account: signer
    wallet: bytes  # the hub wallet that pays
    worker: bytes  # who asked
    pay_per_hour: int  # token wei per hour joined
    payout_period: int  # seconds between payouts
    open: int
    reason: str
    signature: bytes = b""

    KIND: ClassVar[WorkerKind] = WorkerKind.OFFER
    LIMIT: ClassVar[int] = MAX_SMALL_BYTES
    SIGNER: ClassVar[str] = "hub"
    BIG: ClassVar[frozenset[str]] = frozenset({"pay_per_hour"})
    TYPE: ClassVar[StructType] = struct(
        "WorkerOffer",
        ("hub", "address", "hub"),
        ("wallet", "address", "wallet"),
        ("worker", "address", "worker"),
        ("payPerHour", "uint256", "pay_per_hour"),
        ("payoutPeriod", "uint64", "payout_period"),
        ("open", "uint8", "open"),
        ("reason", "string", "reason"),
    )
    FIELDS: ClassVar[tuple[str, ...]] = attrs(TYPE)

    def validate(self) -> None:
        check_address("hub", self.hub)
        check_address("wallet", self.wallet)
        check_address("worker", self.worker)
        check_uint("pay_per_hour", self.pay_per_hour, UINT256_MAX)
        check_uint("payout_period", self.payout_period, UINT64_MAX, 1)
        check_uint("open", self.open, 1)
        check_str("reason", self.reason, MAX_REASON_BYTES)
        check_signature("signature", self.signature)


@dataclass(frozen=True)
class JoinRequest:
    """The worker's side of the agreement: its machine, the pay it takes, where the
    hub reaches it."""

    worker: bytes
    hub: bytes
    wallet: bytes
    addr: str  # the worker's multiaddr (without /p2p): where the hub sends tasks
    hardware: bytes  # canonical JSON of p2pnode.hardware.record.HardwareRecord
    pay_per_hour: int
    payout_period: int
    nonce: int
    valid_until: int
    signature: bytes = b""

    KIND: ClassVar[WorkerKind] = WorkerKind.JOIN
    LIMIT: ClassVar[int] = MAX_JOIN_BYTES
    SIGNER: ClassVar[str] = "worker"
    BIG: ClassVar[frozenset[str]] = frozenset({"pay_per_hour"})
    TYPE: ClassVar[StructType] = JOIN_TYPE  # shared with the proofs the core checks
    FIELDS: ClassVar[tuple[str, ...]] = attrs(TYPE)

    def validate(self) -> None:
        check_address("worker", self.worker)
        check_address("hub", self.hub)
        check_address("wallet", self.wallet)
        check_str("addr", self.addr, MAX_ADDR_BYTES)
        check_bytes("hardware", self.hardware, MAX_HARDWARE_BYTES, 2)
        check_uint("pay_per_hour", self.pay_per_hour, UINT256_MAX, 1)
        check_uint("payout_period", self.payout_period, UINT64_MAX, 1)
        check_uint("nonce", self.nonce, UINT64_MAX)
        check_uint("valid_until", self.valid_until, UINT64_MAX)
        check_signature("signature", self.signature)


@dataclass(frozen=True)
class LeaveNotice:
    """The worker ends its agreement (its tasks have ended)."""

    worker: bytes
    hub: bytes
    wallet: bytes
    nonce: int
    valid_until: int
    signature: bytes = b""

    KIND: ClassVar[WorkerKind] = WorkerKind.LEAVE
    LIMIT: ClassVar[int] = MAX_SMALL_BYTES
    SIGNER: ClassVar[str] = "worker"
    TYPE: ClassVar[StructType] = struct(
        "WorkerLeave",
        ("worker", "address", "worker"),
        ("hub", "address", "hub"),
        ("wallet", "address", "wallet"),
        ("nonce", "uint64", "nonce"),
        ("validUntil", "uint64", "valid_until"),
    )
    FIELDS: ClassVar[tuple[str, ...]] = attrs(TYPE)

    def validate(self) -> None:
        check_address("worker", self.worker)
        check_address("hub", self.hub)
        check_address("wallet", self.wallet)
        check_uint("nonce", self.nonce, UINT64_MAX)
        check_uint("valid_until", self.valid_until, UINT64_MAX)
        check_signature("signature", self.signature)


@dataclass(frozen=True)
class HubAnswer:
    """The hub's answer to a join or leave: `ref` is the request's EIP-712 digest, so a
    yes to a join is the hub's countersignature of the worker's terms."""

    hub: bytes
    worker: bytes
    ref: bytes  # 32
    ok: int
    at: int  # unix seconds the agreement starts (join) or ends (leave); 0 when refused
    reason: str
    signature: bytes = b""

    KIND: ClassVar[WorkerKind] = WorkerKind.HUB_ANSWER
    LIMIT: ClassVar[int] = MAX_SMALL_BYTES
    SIGNER: ClassVar[str] = "hub"
    TYPE: ClassVar[StructType] = HUB_ANSWER_TYPE  # shared with the proofs the core checks
    FIELDS: ClassVar[tuple[str, ...]] = attrs(TYPE)

    def validate(self) -> None:
        check_address("hub", self.hub)
        check_address("worker", self.worker)
        check_bytes("ref", self.ref, 32, 32)
        check_uint("ok", self.ok, 1)
        check_uint("at", self.at, UINT64_MAX)
        check_str("reason", self.reason, MAX_REASON_BYTES)
        check_signature("signature", self.signature)


@dataclass(frozen=True)
class TaskOrder:
    """The hub hands a deal's task to the worker that holds the deal's slot, with the
    slot's limits and the deal's end; `consumer` names who may read its output."""

    hub: bytes
    worker: bytes
    deal_id: int
    consumer: bytes
    spec: bytes  # taskwire.pack_spec()
    cpu_cores: int
    ram_bytes: int
    storage_bytes: int
    network: int
    gpu_uuids: tuple[str, ...]
    ends_at: int
    valid_until: int
    signature: bytes = b""

    KIND: ClassVar[WorkerKind] = WorkerKind.TASK
    LIMIT: ClassVar[int] = MAX_TASK_BYTES
    SIGNER: ClassVar[str] = "hub"
    TYPE: ClassVar[StructType] = struct(
        "WorkerTask",
        ("hub", "address", "hub"),
        ("worker", "address", "worker"),
        ("dealId", "uint64", "deal_id"),
        ("consumer", "address", "consumer"),
        ("spec", "bytes", "spec"),
        ("cpuCores", "uint32", "cpu_cores"),
        ("ramBytes", "uint64", "ram_bytes"),
        ("storageBytes", "uint64", "storage_bytes"),
        ("network", "uint8", "network"),
        ("gpuUuids", "string[]", "gpu_uuids"),
        ("endsAt", "uint64", "ends_at"),
        ("validUntil", "uint64", "valid_until"),
    )
    FIELDS: ClassVar[tuple[str, ...]] = attrs(TYPE)

    def validate(self) -> None:
        check_address("hub", self.hub)
        check_address("worker", self.worker)
        check_uint("deal_id", self.deal_id, UINT64_MAX)
        check_address("consumer", self.consumer)
        check_bytes("spec", self.spec, taskwire.MAX_SPEC_BYTES, 1)
        check_uint("cpu_cores", self.cpu_cores, 2**16, 1)
        check_uint("ram_bytes", self.ram_bytes, UINT64_MAX, 1)
        check_uint("storage_bytes", self.storage_bytes, UINT64_MAX)
        check_uint("network", self.network, 3)
        if type(self.gpu_uuids) is not tuple or len(self.gpu_uuids) > MAX_GPUS:
            raise FieldError("gpu_uuids", f"a list of at most {MAX_GPUS} expected")
        for i, uuid in enumerate(self.gpu_uuids):
            check_str(f"gpu_uuids[{i}]", uuid, MAX_GPU_UUID_BYTES)
        check_uint("ends_at", self.ends_at, UINT64_MAX)
        check_uint("valid_until", self.valid_until, UINT64_MAX)
        check_signature("signature", self.signature)


def _deal_request(name: str, kind: WorkerKind, *extra: tuple[str, str, str]) -> Any:
    """LogsOrder, ResultsOrder and StopOrder share hub, worker, deal, window."""
    fields = (
        ("hub", "address", "hub"),
        ("worker", "address", "worker"),
        ("dealId", "uint64", "deal_id"),
        *extra,
        ("validUntil", "uint64", "valid_until"),
    )
    return struct(name, *fields)


@dataclass(frozen=True)
class LogsOrder:
    """The hub asks for a task's output on behalf of the deal's consumer."""

    hub: bytes
    worker: bytes
    deal_id: int
    follow: int
    tail: int
    valid_until: int
    signature: bytes = b""

    KIND: ClassVar[WorkerKind] = WorkerKind.LOGS
    LIMIT: ClassVar[int] = MAX_SMALL_BYTES
    SIGNER: ClassVar[str] = "hub"
    TYPE: ClassVar[StructType] = _deal_request(
        "WorkerLogs", WorkerKind.LOGS, ("follow", "uint8", "follow"), ("tail", "uint64", "tail")
    )
    FIELDS: ClassVar[tuple[str, ...]] = attrs(TYPE)

    def validate(self) -> None:
        check_address("hub", self.hub)
        check_address("worker", self.worker)
        check_uint("deal_id", self.deal_id, UINT64_MAX)
        check_uint("follow", self.follow, 1)
        check_uint("tail", self.tail, taskwire.MAX_TAIL)
        check_uint("valid_until", self.valid_until, UINT64_MAX)
        check_signature("signature", self.signature)


@dataclass(frozen=True)
class ResultsOrder:
    """The hub fetches a finished task's receipt and archive."""

    hub: bytes
    worker: bytes
    deal_id: int
    valid_until: int
    signature: bytes = b""

    KIND: ClassVar[WorkerKind] = WorkerKind.RESULTS
    LIMIT: ClassVar[int] = MAX_SMALL_BYTES
    SIGNER: ClassVar[str] = "hub"
    TYPE: ClassVar[StructType] = _deal_request("WorkerResults", WorkerKind.RESULTS)
    FIELDS: ClassVar[tuple[str, ...]] = attrs(TYPE)

    def validate(self) -> None:
        check_address("hub", self.hub)
        check_address("worker", self.worker)
        check_uint("deal_id", self.deal_id, UINT64_MAX)
        check_uint("valid_until", self.valid_until, UINT64_MAX)
        check_signature("signature", self.signature)


@dataclass(frozen=True)
class StopOrder:
    """The deal closed: the worker stops its task."""

    hub: bytes
    worker: bytes
    deal_id: int
    valid_until: int
    signature: bytes = b""

    KIND: ClassVar[WorkerKind] = WorkerKind.STOP
    LIMIT: ClassVar[int] = MAX_SMALL_BYTES
    SIGNER: ClassVar[str] = "hub"
    TYPE: ClassVar[StructType] = _deal_request("WorkerStop", WorkerKind.STOP)
    FIELDS: ClassVar[tuple[str, ...]] = attrs(TYPE)

    def validate(self) -> None:
        ResultsOrder.validate(self)  # type: ignore[arg-type]


@dataclass(frozen=True)
class WorkerAnswer:
    """The worker's answer to any order from its hub."""

    worker: bytes
    hub: bytes
    deal_id: int
    ok: int
    reason: str
    signature: bytes = b""

    KIND: ClassVar[WorkerKind] = WorkerKind.WORKER_ANSWER
    LIMIT: ClassVar[int] = MAX_SMALL_BYTES
    SIGNER: ClassVar[str] = "worker"
    TYPE: ClassVar[StructType] = struct(
        "WorkerAnswer",
        ("worker", "address", "worker"),
        ("hub", "address", "hub"),
        ("dealId", "uint64", "deal_id"),
        ("ok", "uint8", "ok"),
        ("reason", "string", "reason"),
    )
    FIELDS: ClassVar[tuple[str, ...]] = attrs(TYPE)

    def validate(self) -> None:
        check_address("worker", self.worker)
        check_address("hub", self.hub)
        check_uint("deal_id", self.deal_id, UINT64_MAX)
        check_uint("ok", self.ok, 1)
        check_str("reason", self.reason, MAX_REASON_BYTES)
        check_signature("signature", self.signature)


WorkerMessage: TypeAlias = (
    OfferRequest
    | Offer
    | JoinRequest
    | LeaveNotice
    | HubAnswer
    | TaskOrder
    | LogsOrder
    | ResultsOrder
    | StopOrder
    | WorkerAnswer
)
HUB_REQUESTS = (OfferRequest, JoinRequest, LeaveNotice)
WORKER_ORDERS = (TaskOrder, LogsOrder, ResultsOrder, StopOrder)
_FRAMES = signedframes.SignedFrames(
    error=WorkerWireError,
    version=VERSION,
    kinds=(*HUB_REQUESTS, Offer, HubAnswer, *WORKER_ORDERS, WorkerAnswer),
    noun="worker",
    max_frame=MAX_FRAME_BYTES,
    max_array=MAX_GPUS + 16,
    max_str=MAX_REASON_BYTES * 4,
)
_CLASSES: dict[int, type[Any]] = _FRAMES.classes
encode = _FRAMES.encode
frame = _FRAMES.frame


def reader(expect: tuple[type[Any], ...] | None = None) -> taskwire.FrameReader:
    """Frames up to the largest of the `expect`ed kinds (default: any, a task order
    being the largest), refused before they are buffered; each kind's own cap is
    checked again by `decode`. Log records and results headers that follow an
    answer are `/sonm/task/1` frames and fit the default reader."""
    if expect is not None:
        return taskwire.FrameReader(max(c.LIMIT for c in expect))
    return taskwire.FrameReader(max(MAX_FRAME_BYTES, taskwire.MAX_FRAME_BYTES))


def decode(data: bytes, domain: SigningDomain, *, expect: tuple[type[Any], ...]) -> Any:
    """Parse, check and verify one payload from a peer, of one of the `expect`ed
    kinds; the signature must recover to the message's own signer field.
    WorkerWireError says what was wrong."""
    return _FRAMES.decode(data, domain, expect)


def check_window(valid_until: int, now: float) -> str | None:
    """Why a request's validity window is unacceptable at `now`; None when fine."""
    return signedframes.check_window(valid_until, now, MAX_REQUEST_WINDOW)


def reason_text(text: str) -> str:
    """A reason as the wire takes it: one printable line within the cap."""
    flat = "".join(c if c.isprintable() else " " for c in text)
    return flat.encode("utf-8", "replace")[:MAX_REASON_BYTES].decode("utf-8", "ignore")
