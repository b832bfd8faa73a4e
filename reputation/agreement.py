"""A worker's agreement with a hub, in a form anyone can check: the proof that goes
with a "BAD" about a first payday the hub missed.

The agreement is made on `/sonm/worker/1` (p2pnode/worker/wire.py): the worker signs
a `WorkerJoin` (its address, the hub owner's, the wallet, its multiaddr, its
hardware record, the pay per hour, the payout period, a nonce and a deadline), and
the hub's owner countersigns that request's EIP-712 digest in a `WorkerHubAnswer`
(`ref`), with `ok = 1` and the time the agreement starts (`at`). The two struct
types live here, not in the daemon, because the core checks such proofs and must
not import the daemon; the wire module uses these very types.

A whole join is up to 17 KiB (the hardware record), far more than a trust answer
may carry. But EIP-712 hashes every dynamic member (`string`, `bytes`) to one
word before hashing the struct, so the request's digest can be recomputed from
the keccak of its multiaddr and of its hardware record instead of the values
themselves. The proof carries those two hashes, the fixed-size members, the
start, the keccak of the hub's reason string and the hub's signature: about
230 bytes, and checking it needs no trust in who sent it:

- recompute the join's digest (the hub's `ref`) from the proof and the answer it
  rides with (the worker is the answerer, the wallet is the hub asked about);
- recompute the hub answer's digest and recover its signer: it must be the
  proof's `owner`, and the receiver must know that owner as the wallet's owner
  (from its announcement, checked on chain), or the proof proves nothing.

What a proof shows is then only a matter of the chain: the agreement's first
payday and grace have passed and the wallet has paid that worker nothing since
the start (`ReputationCore.check_proof`).

Wire form, the 14th item of an ANSWER (reputation/messages.py):

    [owner, addr_hash, hardware_hash, pay_per_hour, payout_period, nonce,
     valid_until, at, reason_hash, hub_signature]

owner bin 20; the three hashes bin 32; pay_per_hour a uint256 as bin of its
minimal big-endian bytes; the four numbers msgpack ints in their smallest form
(each at most 2^64 - 1); hub_signature bin 65.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from gossip import eip712
from gossip.eip712 import FieldSpec, SignatureError, SigningDomain, StructType, keccak
from reputation.evidence import Agreement

UINT64_MAX = 2**64 - 1
UINT256_MAX = 2**256 - 1
PROOF_ITEMS = 10


def _struct(name: str, *fields: tuple[str, str, str]) -> StructType:
    return StructType(name, tuple(FieldSpec(n, t, a) for n, t, a in fields))


JOIN_TYPE = _struct(
    "WorkerJoin",
    ("worker", "address", "worker"),
    ("hub", "address", "hub"),
    ("wallet", "address", "wallet"),
    ("addr", "string", "addr"),
    ("hardware", "bytes", "hardware"),
    ("payPerHour", "uint256", "pay_per_hour"),
    ("payoutPeriod", "uint64", "payout_period"),
    ("nonce", "uint64", "nonce"),
    ("validUntil", "uint64", "valid_until"),
)
HUB_ANSWER_TYPE = _struct(
    "WorkerHubAnswer",
    ("hub", "address", "hub"),
    ("worker", "address", "worker"),
    ("ref", "bytes32", "ref"),
    ("ok", "uint8", "ok"),
    ("at", "uint64", "at"),
    ("reason", "string", "reason"),
)


class ProofError(ValueError):
    """A proof's field is out of its type or range; `field` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"proof.{field}: {problem}")
        self.field = f"proof.{field}"
        self.problem = problem


def _address(v: bytes) -> bytes:
    return bytes(12) + v


def _uint(v: int) -> bytes:
    return v.to_bytes(32, "big")


@dataclass(frozen=True)
class AgreementProof:
    """The hub-countersigned terms of one worker's agreement, compacted (see above).

    The worker and the wallet are not in it: they are the answer's answerer and
    hub, so a proof cannot be moved to another worker's or another hub's answer."""

    owner: bytes  # the hub owner's account: who countersigned
    addr_hash: bytes  # keccak of the join's multiaddr string (UTF-8)
    hardware_hash: bytes  # keccak of the join's hardware record bytes
    pay_per_hour: int
    payout_period: int
    nonce: int
    valid_until: int
    at: int  # the start the hub countersigned
    reason_hash: bytes  # keccak of the hub answer's reason string (UTF-8)
    hub_signature: bytes

    def validate(self) -> None:
        for name, n in (
            ("owner", 20),
            ("addr_hash", 32),
            ("hardware_hash", 32),
            ("reason_hash", 32),
            ("hub_signature", 65),
        ):
            v = getattr(self, name)
            if type(v) is not bytes or len(v) != n:
                raise ProofError(name, f"exactly {n} bytes expected")
        for name, top, low in (
            ("pay_per_hour", UINT256_MAX, 1),
            ("payout_period", UINT64_MAX, 1),
            ("nonce", UINT64_MAX, 0),
            ("valid_until", UINT64_MAX, 0),
            ("at", UINT64_MAX, 0),
        ):
            v = getattr(self, name)
            if type(v) is not int or not low <= v <= top:
                raise ProofError(name, f"an integer in [{low}, {top}] expected")

    @classmethod
    def of(cls, join: Any, answer: Any) -> AgreementProof:
        """From the join request a worker sent and the hub's yes to it (wire.JoinRequest
        and wire.HubAnswer, or anything with their attributes)."""
        return cls(
            owner=bytes(answer.hub),
            addr_hash=keccak(str(join.addr).encode()),
            hardware_hash=keccak(bytes(join.hardware)),
            pay_per_hour=int(join.pay_per_hour),
            payout_period=int(join.payout_period),
            nonce=int(join.nonce),
            valid_until=int(join.valid_until),
            at=int(answer.at),
            reason_hash=keccak(str(answer.reason).encode()),
            hub_signature=bytes(answer.signature),
        )

    def join_digest(self, domain: SigningDomain, worker: bytes, wallet: bytes) -> bytes:
        """The join request's EIP-712 digest (what the hub's answer names as `ref`)."""
        words = (
            JOIN_TYPE.type_hash,
            _address(worker),
            _address(self.owner),
            _address(wallet),
            self.addr_hash,
            self.hardware_hash,
            _uint(self.pay_per_hour),
            _uint(self.payout_period),
            _uint(self.nonce),
            _uint(self.valid_until),
        )
        return keccak(b"\x19\x01" + domain.separator + keccak(b"".join(words)))

    def answer_digest(self, domain: SigningDomain, worker: bytes, wallet: bytes) -> bytes:
        """The digest the hub's owner signed: its yes (`ok = 1`) to that join."""
        words = (
            HUB_ANSWER_TYPE.type_hash,
            _address(self.owner),
            _address(worker),
            self.join_digest(domain, worker, wallet),
            _uint(1),
            _uint(self.at),
            self.reason_hash,
        )
        return keccak(b"\x19\x01" + domain.separator + keccak(b"".join(words)))

    def countersigned(self, domain: SigningDomain, worker: bytes, wallet: bytes) -> bool:
        """Did `owner` sign a yes to this worker's join with this wallet's terms?"""
        try:
            who = eip712.recover_address(
                self.answer_digest(domain, worker, wallet), self.hub_signature
            )
        except SignatureError:
            return False
        return who == self.owner

    def agreement(self, worker: bytes, wallet: bytes) -> Agreement:
        """The terms the core judges (what `check_proof` reads)."""
        return Agreement(worker, wallet, self.pay_per_hour, self.payout_period, float(self.at))

    # -- wire ------------------------------------------------------------------------------

    def to_wire(self) -> list[Any]:
        return [
            self.owner,
            self.addr_hash,
            self.hardware_hash,
            self.pay_per_hour.to_bytes((self.pay_per_hour.bit_length() + 7) // 8, "big"),
            self.payout_period,
            self.nonce,
            self.valid_until,
            self.at,
            self.reason_hash,
            self.hub_signature,
        ]

    @classmethod
    def from_wire(cls, items: object) -> AgreementProof:
        """ProofError names the field of a malformed proof (the sender's fault)."""
        if type(items) is not tuple or len(items) != PROOF_ITEMS:
            raise ProofError("items", f"an array of {PROOF_ITEMS} expected")
        pay = items[3]
        if type(pay) is not bytes or not 1 <= len(pay) <= 32 or pay[:1] == b"\x00":
            raise ProofError("pay_per_hour", "1 to 32 big-endian bytes, no leading zero")
        proof = cls(
            items[0],
            items[1],
            items[2],
            int.from_bytes(pay, "big"),
            items[4],
            items[5],
            items[6],
            items[7],
            items[8],
            items[9],
        )
        proof.validate()
        return proof

    def to_bytes(self) -> bytes:
        """Standalone bytes (the store keeps a worker's own proofs in this form)."""
        data: bytes = msgpack.packb(self.to_wire(), use_bin_type=True)
        return data

    @classmethod
    def from_bytes(cls, data: bytes) -> AgreementProof:
        items = msgpack.unpackb(
            data, raw=False, use_list=False, max_bin_len=256, max_str_len=0, max_array_len=16
        )
        return cls.from_wire(items)
