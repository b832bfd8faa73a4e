"""Trust polling messages: a signed question about a hub, and signed answers to it.

Both are EIP-712 typed data signed with the Ethereum key (the same machinery
as orders and hub announcements: gossip/eip712.py), so an answer is
attributable to the address that has (or claims) an agreement with the hub,
and a liar's answers are its own, provably.

Wire form (msgpack, canonical, at most MAX_TRUST_MESSAGE_BYTES):

    question: [16, 1, asker, hub, nonce, valid_from, valid_until, signature]
    answer:   [17, 1, answerer, hub, question_id, verdict, payments_seen,
               avg_reward, period_s, last_seen, valid_from, valid_until, signature
               (, proof)]
    row:      [18, 1, truster, seq, peers, weights, hubs, verdicts, valid_from,
               valid_until, signature]

addresses are bin 20, question_id bin 32 (the question's EIP-712 digest),
avg_reward a uint256 as bin of its minimal big-endian bytes (zero: empty),
every other number a msgpack int in its smallest form, signature bin 65.
A row is a node's local trust (the peers its own evidence found honest, with
weights 1..65535 relative to its most trusted) and its own verdicts on hubs
(what receivers weigh its row by: EigenTrust++ credibility), at most
MAX_ROW_ENTRIES of each, as parallel arrays; `seq` orders one truster's rows.
`proof`, only on a "BAD" about a first payday missed, is the answerer's agreement
with the hub as the hub countersigned it (reputation/agreement.py): outside the
answer's signature, it speaks for itself through the hub's. A node dedupes an
answer by its digest and the proof's bytes together, so a relay that strips the
proof cannot keep the proven copy from anyone.
`decode` checks size, types, ranges and the canonical form (it re-encodes and
compares), then `verify` checks that the signature recovers to the named
signer. Nothing is stored before both passed.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgpack

from gossip import eip712
from gossip.eip712 import FieldSpec, SignatureError, SigningDomain, StructType, keccak
from reputation.agreement import AgreementProof, ProofError
from reputation.errors import TrustMessageDecodeError, TrustSignatureError
from reputation.evidence import Verdict

# the largest answer with a proof, every number at its maximum, is 482 bytes
MAX_TRUST_MESSAGE_BYTES = 512
# a row with every array full and every number at its maximum is 706 bytes
MAX_TRUST_ROW_BYTES = 768
MAX_ROW_ENTRIES = 12
UINT16_MAX = 2**16 - 1
PROTOCOL_VERSION = 1
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
UINT256_MAX = 2**256 - 1
MAX_WINDOW_S = 24 * 3600  # a question or answer is valid for at most a day
MAX_PERIOD_S = 366 * 24 * 3600
# the `question` of an answer nobody asked for: an alert a worker publishes when a
# hub it works for misses (or short-pays) its payday; only the hub's other workers
# keep it (ReputationCore.accept_alert)
ALERT_QUESTION = bytes(32)


class TrustKind(enum.IntEnum):
    """Tags in front of the trust messages; distinct from gossip.messages.MessageKind's."""

    QUESTION = 16
    ANSWER = 17
    ROW = 18


QUESTION_TYPE = StructType(
    "TrustQuestion",
    (
        FieldSpec("asker", "address", "asker"),
        FieldSpec("hub", "address", "hub"),
        FieldSpec("nonce", "uint64", "nonce"),
        FieldSpec("validFrom", "uint64", "valid_from"),
        FieldSpec("validUntil", "uint64", "valid_until"),
    ),
)
ANSWER_TYPE = StructType(
    "TrustAnswer",
    (
        FieldSpec("answerer", "address", "answerer"),
        FieldSpec("hub", "address", "hub"),
        FieldSpec("question", "bytes32", "question"),
        FieldSpec("verdict", "uint8", "verdict"),
        FieldSpec("paymentsSeen", "uint32", "payments_seen"),
        FieldSpec("avgReward", "uint256", "avg_reward"),
        FieldSpec("period", "uint64", "period_s"),
        FieldSpec("lastSeen", "uint64", "last_seen"),
        FieldSpec("validFrom", "uint64", "valid_from"),
        FieldSpec("validUntil", "uint64", "valid_until"),
    ),
)


ROW_TYPE = StructType(
    "TrustRow",
    (
        FieldSpec("truster", "address", "truster"),
        FieldSpec("seq", "uint64", "seq"),
        FieldSpec("peers", "address[]", "peers"),
        FieldSpec("weights", "uint16[]", "weights"),
        FieldSpec("hubs", "address[]", "hubs"),
        FieldSpec("verdicts", "uint8[]", "verdicts"),
        FieldSpec("validFrom", "uint64", "valid_from"),
        FieldSpec("validUntil", "uint64", "valid_until"),
    ),
)


class FieldProblem(ValueError):
    """A field is out of its type or range (raised by validate; decode re-raises it as remote)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _uint(field: str, v: object, maximum: int, minimum: int = 0) -> None:
    if type(v) is not int:
        raise FieldProblem(field, f"integer expected, got {type(v).__name__}")
    if not minimum <= v <= maximum:
        raise FieldProblem(field, f"must be in [{minimum}, {maximum}], got {v}")


def _bytes(field: str, v: object, n: int) -> None:
    if type(v) is not bytes:
        raise FieldProblem(field, f"bytes expected, got {type(v).__name__}")
    if len(v) != n:
        raise FieldProblem(field, f"exactly {n} bytes expected, got {len(v)}")


def _signature(v: object) -> None:
    if type(v) is not bytes:
        raise FieldProblem("signature", f"bytes expected, got {type(v).__name__}")
    if v == b"":
        return
    if len(v) != 65:
        raise FieldProblem("signature", f"exactly 65 bytes expected, got {len(v)}")
    if v[64] not in (27, 28):
        raise FieldProblem("signature", f"recovery byte v must be 27 or 28, got {v[64]}")


def _window(valid_from: object, valid_until: object) -> None:
    _uint("valid_from", valid_from, UINT64_MAX)
    _uint("valid_until", valid_until, UINT64_MAX)
    assert isinstance(valid_from, int) and isinstance(valid_until, int)
    if valid_until <= valid_from:
        raise FieldProblem("valid_until", f"must be after valid_from ({valid_from})")
    if valid_until - valid_from > MAX_WINDOW_S:
        raise FieldProblem("valid_until", f"window at most {MAX_WINDOW_S} s")


@dataclass(frozen=True)
class TrustQuestion:
    """ "Does hub `hub` pay?", asked by `asker` (the signer)."""

    asker: bytes
    hub: bytes  # the hub wallet's address
    nonce: int
    valid_from: int
    valid_until: int
    signature: bytes = b""

    KIND: ClassVar[TrustKind] = TrustKind.QUESTION

    def validate(self) -> None:
        _bytes("asker", self.asker, 20)
        _bytes("hub", self.hub, 20)
        _uint("nonce", self.nonce, UINT64_MAX)
        _window(self.valid_from, self.valid_until)
        _signature(self.signature)

    @property
    def signer(self) -> bytes:
        return self.asker

    def digest(self, domain: SigningDomain) -> bytes:
        return eip712.digest(domain, QUESTION_TYPE, self)

    def question_id(self, domain: SigningDomain) -> bytes:
        """What answers name: the question's EIP-712 digest (unforgeable, unique per nonce)."""
        return self.digest(domain)


@dataclass(frozen=True)
class TrustAnswer:
    """`answerer`'s evidence about `hub`, in reply to question `question`."""

    answerer: bytes
    hub: bytes
    question: bytes  # 32-byte question id
    verdict: Verdict
    payments_seen: int
    avg_reward: int  # token base units per payment
    period_s: int  # payout period of the answerer's agreement
    last_seen: int  # unix seconds of the answerer's latest evidence about the hub
    valid_from: int
    valid_until: int
    signature: bytes = b""
    # the hub-countersigned agreement behind a "BAD" about a missed first payday:
    # not signed by the answerer, not part of the digest (see the module's header)
    proof: AgreementProof | None = field(default=None, compare=False)

    KIND: ClassVar[TrustKind] = TrustKind.ANSWER

    def validate(self) -> None:
        _bytes("answerer", self.answerer, 20)
        _bytes("hub", self.hub, 20)
        _bytes("question", self.question, 32)
        if not isinstance(self.verdict, Verdict):
            raise FieldProblem("verdict", f"1 (GOOD) or 2 (BAD) expected, got {self.verdict!r}")
        _uint("payments_seen", self.payments_seen, UINT32_MAX)
        _uint("avg_reward", self.avg_reward, UINT256_MAX)
        _uint("period_s", self.period_s, MAX_PERIOD_S)
        _uint("last_seen", self.last_seen, UINT64_MAX)
        _window(self.valid_from, self.valid_until)
        _signature(self.signature)
        if self.proof is not None:
            if self.verdict is not Verdict.BAD:
                raise FieldProblem("proof", "only a BAD answer carries a proof")
            try:
                self.proof.validate()
            except ProofError as exc:
                raise FieldProblem(exc.field, exc.problem) from None

    @property
    def signer(self) -> bytes:
        return self.answerer

    def digest(self, domain: SigningDomain) -> bytes:
        return eip712.digest(domain, ANSWER_TYPE, self)


@dataclass(frozen=True)
class TrustRow:
    """`truster`'s local trust row and its own verdicts on hubs, published for the
    network's global trust (reputation/eigentrust.py)."""

    truster: bytes
    seq: int  # newer rows of one truster have larger seq (its clock when made)
    peers: tuple[bytes, ...]
    weights: tuple[int, ...]  # 1..65535, relative to the row's largest
    hubs: tuple[bytes, ...]
    verdicts: tuple[Verdict, ...]
    valid_from: int
    valid_until: int
    signature: bytes = b""

    KIND: ClassVar[TrustKind] = TrustKind.ROW

    def validate(self) -> None:
        _bytes("truster", self.truster, 20)
        _uint("seq", self.seq, UINT64_MAX)
        for name, items, other in (
            ("peers", self.peers, self.weights),
            ("hubs", self.hubs, self.verdicts),
        ):
            if type(items) is not tuple or type(other) is not tuple:
                raise FieldProblem(name, "an array expected")
            if len(items) > MAX_ROW_ENTRIES:
                raise FieldProblem(name, f"at most {MAX_ROW_ENTRIES} entries, got {len(items)}")
            if len(items) != len(other):
                raise FieldProblem(name, f"{len(items)} entries but {len(other)} values")
            for i, a in enumerate(items):
                _bytes(f"{name}[{i}]", a, 20)
            if len(set(items)) != len(items):
                raise FieldProblem(name, "an address appears twice")
        if self.truster in self.peers:
            raise FieldProblem("peers", "a row does not rate its own truster")
        for i, w in enumerate(self.weights):
            _uint(f"weights[{i}]", w, UINT16_MAX, 1)
        for i, v in enumerate(self.verdicts):
            if not isinstance(v, Verdict):
                raise FieldProblem(f"verdicts[{i}]", f"1 (GOOD) or 2 (BAD) expected, got {v!r}")
        _window(self.valid_from, self.valid_until)
        _signature(self.signature)

    @property
    def signer(self) -> bytes:
        return self.truster

    def digest(self, domain: SigningDomain) -> bytes:
        return eip712.digest(domain, ROW_TYPE, self)

    def trusted(self) -> dict[bytes, float]:
        return dict(zip(self.peers, (float(w) for w in self.weights), strict=True))

    def claims(self) -> dict[bytes, Verdict]:
        return dict(zip(self.hubs, self.verdicts, strict=True))


TrustMessage = TrustQuestion | TrustAnswer | TrustRow


class KeySigner:
    """Signs with one secp256k1 key; the daemon gives it the unlocked keystore key."""

    def __init__(self, private_key: bytes) -> None:
        self._key = private_key
        self.address = eip712.address_of_key(private_key)

    def sign(self, digest: bytes) -> bytes:
        return eip712.sign_digest(digest, self._key)


def sign(msg: TrustMessage, domain: SigningDomain, signer: KeySigner) -> TrustMessage:
    if msg.signer != signer.address:
        raise ValueError("the signer's address must be the message's asker/answerer")
    return dataclasses.replace(msg, signature=signer.sign(msg.digest(domain)))


def seen_key(msg: TrustMessage, domain: SigningDomain) -> bytes:
    """What a node dedupes a message by: its digest, and its proof's bytes if any."""
    d = msg.digest(domain)
    if isinstance(msg, TrustAnswer) and msg.proof is not None:
        return keccak(d + msgpack.packb(msg.proof.to_wire(), use_bin_type=True))
    return d


def verify(msg: TrustMessage, domain: SigningDomain) -> None:
    """TrustSignatureError unless the signature recovers to the message's signer."""
    try:
        who = eip712.recover_address(msg.digest(domain), msg.signature)
    except SignatureError as exc:
        raise TrustSignatureError(f"{msg.KIND.name.lower()}: {exc}") from None
    if who != msg.signer:
        raise TrustSignatureError(
            f"{msg.KIND.name.lower()} signed by 0x{who.hex()}, not by 0x{msg.signer.hex()}"
        )


# --- wire ------------------------------------------------------------------------------

_UNPACK_LIMITS: dict[str, Any] = {
    "max_str_len": 0,
    "max_bin_len": 65,
    "max_array_len": 16,
    "max_map_len": 0,
    "max_ext_len": 0,
}


def _u256_out(v: int) -> bytes:
    return v.to_bytes((v.bit_length() + 7) // 8, "big")


def _u256_in(field: str, v: object) -> int:
    if type(v) is not bytes:
        raise FieldProblem(field, f"bytes expected, got {type(v).__name__}")
    if len(v) > 32:
        raise FieldProblem(field, f"uint256 is at most 32 bytes, got {len(v)}")
    if v[:1] == b"\x00":
        raise FieldProblem(field, "uint256 must not have leading zero bytes")
    return int.from_bytes(v, "big")


def _to_wire(msg: TrustMessage) -> list[Any]:
    if isinstance(msg, TrustQuestion):
        body: list[Any] = [msg.asker, msg.hub, msg.nonce, msg.valid_from, msg.valid_until]
    elif isinstance(msg, TrustRow):
        body = [
            msg.truster,
            msg.seq,
            list(msg.peers),
            list(msg.weights),
            list(msg.hubs),
            [int(v) for v in msg.verdicts],
            msg.valid_from,
            msg.valid_until,
        ]
    else:
        body = [
            msg.answerer,
            msg.hub,
            msg.question,
            int(msg.verdict),
            msg.payments_seen,
            _u256_out(msg.avg_reward),
            msg.period_s,
            msg.last_seen,
            msg.valid_from,
            msg.valid_until,
        ]
    proof = msg.proof if isinstance(msg, TrustAnswer) else None
    tail = [proof.to_wire()] if proof is not None else []
    return [int(msg.KIND), PROTOCOL_VERSION, *body, msg.signature, *tail]


def encode(msg: TrustMessage) -> bytes:
    """Canonical bytes of a signed message; FieldProblem (our caller's fault) if invalid."""
    msg.validate()
    if not msg.signature:
        raise FieldProblem("signature", "the message must be signed before it is encoded")
    data: bytes = msgpack.packb(_to_wire(msg), use_bin_type=True)
    return data


def _from_wire(kind: TrustKind, items: tuple[Any, ...]) -> TrustMessage:
    if kind is TrustKind.QUESTION:
        if len(items) != 6:
            raise FieldProblem("message", f"QUESTION has 8 array items, got {len(items) + 2}")
        return TrustQuestion(*items)
    if kind is TrustKind.ROW:
        if len(items) != 9:
            raise FieldProblem("message", f"ROW has 11 array items, got {len(items) + 2}")
        verdicts = items[5]
        if type(verdicts) is not tuple:
            raise FieldProblem("verdicts", "an array expected")
        for i, v in enumerate(verdicts):
            if type(v) is not int or v not in (1, 2):
                raise FieldProblem(f"verdicts[{i}]", f"1 (GOOD) or 2 (BAD) expected, got {v!r}")
        return TrustRow(
            items[0],
            items[1],
            items[2],
            items[3],
            items[4],
            tuple(Verdict(v) for v in verdicts),
            items[6],
            items[7],
            items[8],
        )
    if len(items) not in (11, 12):
        raise FieldProblem("message", f"ANSWER has 13 or 14 array items, got {len(items) + 2}")
    verdict_raw = items[3]
    if type(verdict_raw) is not int or verdict_raw not in (1, 2):
        raise FieldProblem("verdict", f"1 (GOOD) or 2 (BAD) expected, got {verdict_raw!r}")
    return TrustAnswer(
        items[0],
        items[1],
        items[2],
        Verdict(verdict_raw),
        items[4],
        _u256_in("avg_reward", items[5]),
        items[6],
        items[7],
        items[8],
        items[9],
        items[10],
        _proof_in(items[11]) if len(items) == 12 else None,
    )


def _proof_in(items: object) -> AgreementProof:
    try:
        return AgreementProof.from_wire(items)
    except ProofError as exc:
        raise FieldProblem(exc.field, exc.problem) from None


def decode(data: bytes) -> TrustMessage:
    """Parse and check one message from a peer; TrustMessageDecodeError names the field.

    The signature is checked for shape here; `verify` checks who signed it.
    """
    if type(data) is not bytes:
        raise TrustMessageDecodeError("message", f"bytes expected, got {type(data).__name__}")
    if len(data) > MAX_TRUST_ROW_BYTES:
        raise TrustMessageDecodeError("message", f"{len(data)} bytes > limit {MAX_TRUST_ROW_BYTES}")
    try:
        top = msgpack.unpackb(data, raw=False, use_list=False, **_UNPACK_LIMITS)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise TrustMessageDecodeError(
            "message", f"not valid msgpack ({type(exc).__name__})"
        ) from None
    if type(top) is not tuple or len(top) < 2:
        raise TrustMessageDecodeError("message", "an array [kind, version, ...] expected")
    kind_raw, version = top[0], top[1]
    if type(kind_raw) is not int or kind_raw not in (16, 17, 18):
        raise TrustMessageDecodeError(
            "kind", f"16 (QUESTION), 17 (ANSWER) or 18 (ROW) expected, got {kind_raw!r}"
        )
    if kind_raw != TrustKind.ROW and len(data) > MAX_TRUST_MESSAGE_BYTES:
        raise TrustMessageDecodeError(
            "message", f"{len(data)} bytes > limit {MAX_TRUST_MESSAGE_BYTES}"
        )
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise TrustMessageDecodeError("version", f"{PROTOCOL_VERSION} expected, got {version!r}")
    try:
        msg = _from_wire(TrustKind(kind_raw), top[2:])
        msg.validate()
    except FieldProblem as exc:
        raise TrustMessageDecodeError(exc.field, exc.problem) from None
    if not msg.signature:
        raise TrustMessageDecodeError("signature", "missing")
    if msgpack.packb(_to_wire(msg), use_bin_type=True) != data:
        raise TrustMessageDecodeError("message", "not in canonical encoding")
    return msg
