"""The supplier's signed account of a finished task, and the consumer's check of it.

Signed as EIP-712 typed data with the supplier's Ethereum account, in the same
domain as the gossip messages (gossip/eip712.py), so it is attributable to the
account the deal was made with and a wallet can display it. It binds the deal,
the task, the exact image (its content digest), how the task ended, what it used,
and the sha256 of the results archive and of both logs: the consumer re-hashes
what it downloaded and refuses a mismatch.
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gossip import eip712
from gossip.eip712 import FieldSpec, SigningDomain, StructType
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
from p2pnode.errors import RemoteError

REASONS = ("exited", "failed", "oom-killed", "deadline", "closed", "storage-exceeded", "lost")

RECEIPT_TYPE = StructType(
    "TaskReceipt",
    (
        FieldSpec("supplier", "address", "supplier"),
        FieldSpec("dealId", "uint256", "deal_id"),
        FieldSpec("taskId", "string", "task_id"),
        FieldSpec("imageDigest", "string", "image_digest"),
        FieldSpec("exitCode", "uint16", "exit_code"),
        FieldSpec("reason", "string", "reason"),
        FieldSpec("startedAtMs", "uint64", "started_at_ms"),
        FieldSpec("endedAtMs", "uint64", "ended_at_ms"),
        FieldSpec("cpuTimeNs", "uint64", "cpu_time_ns"),
        FieldSpec("peakMemoryBytes", "uint64", "peak_memory_bytes"),
        FieldSpec("resultsSha256", "bytes32", "results_sha256"),
        FieldSpec("resultsBytes", "uint64", "results_bytes"),
        FieldSpec("stdoutSha256", "bytes32", "stdout_sha256"),
        FieldSpec("stdoutBytes", "uint64", "stdout_bytes"),
        FieldSpec("stderrSha256", "bytes32", "stderr_sha256"),
        FieldSpec("stderrBytes", "uint64", "stderr_bytes"),
        FieldSpec("logBytesDropped", "uint64", "log_bytes_dropped"),
    ),
)


class ReceiptError(RemoteError):
    """A receipt does not verify: bad signature, wrong signer or deal, hash mismatch."""


@dataclass(frozen=True)
class Receipt:
    supplier: bytes  # 20-byte address; the signer
    deal_id: int
    task_id: str
    image_digest: str  # the image's content id, sha256:...
    exit_code: int  # 0..255 from the process; 137 after SIGKILL (OOM, stop)
    reason: str  # one of REASONS
    started_at_ms: int
    ended_at_ms: int
    cpu_time_ns: int
    peak_memory_bytes: int
    results_sha256: bytes  # of the archive as served
    results_bytes: int
    stdout_sha256: bytes
    stdout_bytes: int
    stderr_sha256: bytes
    stderr_bytes: int
    log_bytes_dropped: int  # output past the log cap, not stored and not hashed
    signature: bytes = b""

    def validate(self) -> None:
        check_address("supplier", self.supplier)
        check_uint("deal_id", self.deal_id, UINT256_MAX)
        check_str("task_id", self.task_id, 64)
        check_str("image_digest", self.image_digest, 255)
        check_uint("exit_code", self.exit_code, 65535)
        if self.reason not in REASONS:
            raise FieldError("reason", f"one of {', '.join(REASONS)} expected, got {self.reason!r}")
        check_uint("started_at_ms", self.started_at_ms, UINT64_MAX)
        check_uint("ended_at_ms", self.ended_at_ms, UINT64_MAX, self.started_at_ms)
        for name in ("cpu_time_ns", "peak_memory_bytes", "results_bytes", "stdout_bytes",
                     "stderr_bytes", "log_bytes_dropped"):  # fmt: skip
            check_uint(name, getattr(self, name), UINT64_MAX)
        for name in ("results_sha256", "stdout_sha256", "stderr_sha256"):
            check_bytes(name, getattr(self, name), 32, 32)
        check_signature("signature", self.signature)

    def digest(self, domain: SigningDomain) -> bytes:
        return eip712.digest(domain, RECEIPT_TYPE, self)

    def signed(self, domain: SigningDomain, private_key: bytes) -> Receipt:
        if eip712.address_of_key(private_key) != self.supplier:
            raise ValueError("the signing key is not the supplier's account")
        return dataclasses.replace(
            self, signature=eip712.sign_digest(self.digest(domain), private_key)
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bytes):
                value = "0x" + value.hex()
            elif f.name == "deal_id":
                value = str(value)  # uint256 does not fit a JSON number everywhere
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Receipt:
        """The JSON form back, validated; malformed input is the sender's fault."""
        try:
            kwargs: dict[str, Any] = {}
            for f in dataclasses.fields(cls):
                value = data[f.name]
                if f.type == "bytes":
                    if not isinstance(value, str) or not value.startswith("0x"):
                        raise FieldError(f.name, "0x-prefixed hex expected")
                    value = bytes.fromhex(value[2:])
                elif f.name == "deal_id":
                    if not isinstance(value, str) or not value.isdigit() or len(value) > 78:
                        raise FieldError(f.name, "a decimal string expected")
                    value = int(value)
                kwargs[f.name] = value
            receipt = cls(**kwargs)
            receipt.validate()
        except KeyError as exc:
            raise ReceiptError(f"receipt: {exc.args[0]}: missing") from None
        except FieldError as exc:
            raise ReceiptError(f"receipt: {exc}") from None
        except ValueError as exc:
            raise ReceiptError(f"receipt: malformed: {exc}") from None
        return receipt


def verify_receipt(
    receipt: Receipt,
    *,
    domain: SigningDomain,
    supplier: bytes,
    deal_id: int,
    results_sha256: bytes | None = None,
    stdout_sha256: bytes | None = None,
    stderr_sha256: bytes | None = None,
) -> None:
    """What the consumer runs on a receipt and the files it downloaded: raises
    ReceiptError unless the deal's supplier signed this receipt for this deal and every
    given hash (computed by the consumer over what it received) matches."""
    try:
        receipt.validate()
    except FieldError as exc:
        raise ReceiptError(f"receipt: {exc}") from None
    if receipt.deal_id != deal_id:
        raise ReceiptError(f"receipt is for deal {receipt.deal_id}, not {deal_id}")
    if receipt.supplier != supplier:
        raise ReceiptError("receipt names another supplier than the deal's")
    if not receipt.signature:
        raise ReceiptError("receipt is not signed")
    try:
        signer = eip712.recover_address(receipt.digest(domain), receipt.signature)
    except eip712.SignatureError as exc:
        raise ReceiptError(f"receipt signature: {exc}") from None
    if signer != supplier:
        raise ReceiptError("receipt signature is not the supplier's (content or signer changed)")
    for name, got in (
        ("results archive", results_sha256),
        ("stdout", stdout_sha256),
        ("stderr", stderr_sha256),
    ):
        want = getattr(receipt, name.split()[0] + "_sha256")
        if got is not None and not hmac.compare_digest(got, want):
            raise ReceiptError(
                f"{name} does not match the receipt's sha256 (tampered or truncated)"
            )
