"""Validation of application messages before anything is stored or forwarded.

Verdicts (only REJECT costs the sender score, P4):

- REJECT — the sender forwarded something no honest node would: bytes that do not
  decode to a well-formed message of a kind the topic carries (schema, sizes,
  ranges, canonical form), a signature that does not recover, or recovers to an
  address other than the message's own signer field, or a peer record whose peer
  key did not sign it.
- IGNORE — honest nodes can differ here, so drop without blame: a forwarding peer
  over its rate (`PeerRateLimit`; the excess is passed to `on_rate_excess`, which the
  daemon wires to the peer's behaviour penalty, so a persistent flooder is still
  graylisted), a signer over its live-message quota (`AuthorQuota`: only accepted
  messages count, so a forger cannot fill an honest signer's quota), outside the
  validity window (`valid_from - max_clock_skew` .. `valid_until + max_clock_skew`;
  clocks drift), a nonce/sequence already spent for that signer (a replay, or an
  older hub announcement racing a newer one), a hub whose on-chain check is still
  pending or failed (chain views lag; `reject_failed_hubs` makes failure a REJECT).
- ACCEPT — everything above passed; the nonce is now spent.

The cheap checks run first, so that an expired or replayed message costs a decode
and no signature recovery; the replay guard is only written once a message is
accepted, so a forged message cannot burn an honest signer's nonce.

Hub announcements and the chain: `hub_check` is any callable `(announcement, now) ->
HubCheck`. It must answer from what it already knows, at once (it runs inside the
router's synchronous validator): VERIFIED; MARKED (registered but suspected or
punished by the DAO: ACCEPTed so nodes learn of it, with reason "accepted-marked" so
the store can flag it); FAILED; or PENDING while it looks the hub up in the
background (contracts.verify.HubVerifier does the lookup; `HubCheck.from_verdict`
maps its verdicts). PENDING gives IGNORE and does
*not* spend the sequence, so the hub's next periodic re-announcement (or the same
bytes re-validated through the router's asynchronous path) is accepted once the
lookup has landed. Without a `hub_check` every well-signed announcement passes.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from gossip import eip712
from gossip.codec import KIND_OF_TYPE, KIND_OF_VALUE, SignedMessage, decode, decode_accepted
from gossip.eip712 import SignatureError, SigningDomain
from gossip.hubs import HubAnnouncement
from gossip.messages import MessageDecodeError
from gossip.orders import Order, OrderCancel
from gossip.peer_record import PeerRecord
from gossip.quota import AuthorQuota, PeerRateLimit, QuotaParams
from gossip.replay import ReplayGuard, ReplayParams
from gossip.topics import TOPIC_KINDS
from gossip.validation import ValidationResult

RouterValidator = Callable[[str, bytes, bytes], ValidationResult]


class HubCheck(enum.Enum):
    VERIFIED = "verified"  # registered hub wallet of this owner, in good standing
    MARKED = "marked"  # registered, but Suspected/Punished by the DAO: passed on, flagged
    PENDING = "pending"  # not known yet; a lookup is under way
    FAILED = "failed"  # the chain says no (not a factory wallet, not registered, wrong owner)

    @classmethod
    def from_verdict(cls, verdict: str) -> HubCheck:
        """Map contracts.verify.HubVerdict values ("accept", "mark", "reject")."""
        mapping = {"accept": cls.VERIFIED, "mark": cls.MARKED, "reject": cls.FAILED}
        if verdict not in mapping:
            raise ValueError(f"verdict: one of {sorted(mapping)} expected, got {verdict!r}")
        return mapping[verdict]


class HubChainCheck(Protocol):
    def __call__(self, announcement: HubAnnouncement, now: float) -> HubCheck: ...


@dataclass(frozen=True)
class ValidatorParams:
    domain: SigningDomain
    # Clocks of honest nodes drift; a message this far outside its window is still
    # accepted. Kept well under every kind's minimum useful window.
    max_clock_skew: float = 60.0
    reject_failed_hubs: bool = False
    replay: ReplayParams = field(default_factory=ReplayParams)
    quota: QuotaParams = field(default_factory=QuotaParams)
    accepted_cache_size: int = 4096

    def validate(self) -> None:
        self.domain.validate()
        if not 0.0 <= self.max_clock_skew <= 3600.0:
            raise ValueError(f"max_clock_skew: must be in [0, 3600] s, got {self.max_clock_skew}")
        if self.accepted_cache_size < 0:
            raise ValueError(f"accepted_cache_size: must be >= 0, got {self.accepted_cache_size}")
        self.replay.validate()
        self.quota.validate()


class Verdict(NamedTuple):
    """A validation outcome with its reason (for logs and metrics) and, if decoded, the
    message. A named tuple, not a frozen dataclass: one is made for every message,
    and a frozen dataclass costs ~0.8 µs to make against ~0.3."""

    result: ValidationResult
    reason: str
    message: SignedMessage | None = None
    digest: bytes | None = None  # the EIP-712 digest; for orders, the order id


# The verdicts as module names: an enum member read off its class costs ~90 ns more,
# and the stateful steps below read one or two per message.
_ACCEPT = ValidationResult.ACCEPT
_REJECT = ValidationResult.REJECT
_IGNORE = ValidationResult.IGNORE


@dataclass(slots=True)
class ValidationJob:
    """One message on its way through admit -> prepare -> complete.

    `prepare` fills in what it finds: a final `verdict` (decode failure, outside the
    validity window), or the decoded `message`, its `digest` and the recovered
    `signer` (None when the recovery was skipped) or why the signature is bad.
    """

    topic: str
    data: bytes
    now: float
    verdict: Verdict | None = None
    message: SignedMessage | None = None
    digest: bytes | None = None
    signer: bytes | None = None
    bad_signature: str | None = None


@dataclass
class ValidatorCounters:
    by_reason: dict[str, int] = field(default_factory=dict)

    def count(self, reason: str) -> None:
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1


class MessageValidator:
    """Validates the application topics; callable as the router's synchronous validator.

    `clock` returns unix seconds (validity windows are wall-clock times, whatever
    clock the router itself runs on); the simulator passes its virtual clock.
    """

    def __init__(
        self,
        params: ValidatorParams,
        *,
        clock: Callable[[], float],
        hub_check: HubChainCheck | None = None,
        replay: ReplayGuard | None = None,
        extra: Mapping[str, RouterValidator] | None = None,
    ) -> None:
        params.validate()
        self.params = params
        self.clock = clock
        self.hub_check = hub_check
        self.replay = replay if replay is not None else ReplayGuard(params.replay)
        self.extra = dict(extra or {})
        self.counters = ValidatorCounters()
        self._accepted: OrderedDict[bytes, Verdict] = OrderedDict()
        self.quota = AuthorQuota(params.quota)
        self.rate = PeerRateLimit(params.quota)
        # called with a peer's id for every message refused by its rate limit
        self.on_rate_excess: Callable[[bytes], None] | None = None

    def __call__(self, topic: str, data: bytes, from_peer: bytes) -> ValidationResult:
        job = self.admit(topic, data, from_peer)
        if isinstance(job, ValidationResult):
            return job
        self.prepare(job)
        return self.complete(job)

    # The three steps below are __call__ cut where a driver may move the costly,
    # stateless middle (decode, digest, signature recovery) off its event loop:
    # `admit` and `complete` read and write the validator's state and must run on
    # one thread, in the order messages arrived; `prepare` writes nothing but the
    # job it is given, so any thread may run it, and runs of different jobs may
    # overlap. The verdicts are those of running the checks one message at a time.

    def admit(self, topic: str, data: bytes, from_peer: bytes) -> ValidationJob | ValidationResult:
        """The first, stateful step: the peer's rate, and topics with their own
        validator. A ValidationResult is the final verdict; a job goes on to
        `prepare` and then `complete`."""
        now = self.clock()
        if not self.rate.take(from_peer, now):
            self.counters.count("peer-rate")
            if self.on_rate_excess is not None:
                self.on_rate_excess(from_peer)
            return _IGNORE
        handler = self.extra.get(topic)
        if handler is not None:
            return handler(topic, data, from_peer)
        return ValidationJob(topic, data, now)

    def prepare(self, job: ValidationJob) -> None:
        """The stateless step: decode, validity window, EIP-712 digest, signature
        recovery. Writes only `job`. It skips the recovery of a message that the
        replay guard or the author quota will refuse anyway (reading them only as a
        hint: `complete` decides, and recovers after all if the hint was stale)."""
        prepare_job(job, self.params.domain, self.params.max_clock_skew, self._worth_recovering)

    def _worth_recovering(self, msg: SignedMessage) -> bool:
        if self.replay.spent(msg.replay_key, msg.replay_number):
            return False
        kind = _quota_kind(msg)
        return kind is None or not self.quota.full(kind, msg.signer)

    # What a pool that prepares in other processes needs (p2pnode/validation_pool.py,
    # p2pnode/validation_worker.py): the settings `prepare_job` takes, a job as
    # plain values, and the job filled from the fields the other process sent.

    def worker_settings(self) -> list[object]:
        d = self.params.domain
        return [str(d.chain_id), d.name, d.version, self.params.max_clock_skew]

    def job_request(self, job: ValidationJob) -> list[object]:
        return [job.topic, job.now, job.data]

    def apply_prepared(self, job: ValidationJob, fields: PreparedFields) -> None:
        apply_prepared(job, fields)

    def complete(self, job: ValidationJob) -> ValidationResult:
        """The last, stateful step, in arrival order: replay, quota, signer, hub, and
        spending the nonce of what is accepted."""
        return self._finish(job).result

    def pop_accepted(self, data: bytes) -> Verdict | None:
        """The verdict (with the decoded message) of bytes just accepted, so the
        delivery handler need not decode and hash them again."""
        return self._accepted.pop(data, None)

    def check(self, topic: str, data: bytes, now: float) -> Verdict:
        job = ValidationJob(topic, data, now)
        self.prepare(job)
        return self._finish(job)

    def _finish(self, job: ValidationJob) -> Verdict:
        verdict = self._decide(job)
        self.counters.count(verdict.reason)
        if verdict.result is _ACCEPT and self.params.accepted_cache_size:
            accepted = self._accepted
            accepted[job.data] = verdict
            if len(accepted) > self.params.accepted_cache_size:
                accepted.popitem(last=False)
        return verdict

    def _decide(self, job: ValidationJob) -> Verdict:
        """The stateful checks, in `complete`'s order. On every message's path: what
        they read more than once (the replay key, the quota kind) is read once."""
        if job.verdict is not None:
            return job.verdict
        msg, digest, now = job.message, job.digest, job.now
        assert msg is not None and digest is not None
        key, number = msg.replay_key, msg.replay_number
        if self.replay.seen(key, number):
            return Verdict(_IGNORE, "replay", msg)
        kind = _quota_kind(msg)
        signer = msg.signer
        if kind is not None and not self.quota.admits(kind, signer, now):
            return Verdict(_IGNORE, "author-quota", msg)
        if job.signer is None and job.bad_signature is None:
            _recover(job, msg, digest)  # the hint was stale: recover now
        if job.bad_signature is not None:
            return Verdict(_REJECT, job.bad_signature, msg)
        if job.signer != signer:
            return Verdict(_REJECT, "wrong-signer", msg)
        reason = "accepted"
        if self.hub_check is not None and isinstance(msg, HubAnnouncement):
            status = self.hub_check(msg, now)
            if status is HubCheck.PENDING:
                return Verdict(_IGNORE, "hub-pending", msg, digest)
            if status is HubCheck.FAILED:
                result = _REJECT if self.params.reject_failed_hubs else _IGNORE
                return Verdict(result, "hub-failed", msg, digest)
            if status is HubCheck.MARKED:
                reason = "accepted-marked"
        # spend the nonce, and count the message against its signer's quota
        expires = msg.valid_until + self.params.max_clock_skew
        self.replay.record(key, number, expires, monotonic=msg.MONOTONIC, now=now)
        if kind is not None:
            self.quota.record(kind, signer, expires, now)
        return Verdict(_ACCEPT, reason, msg, digest)


def prepare_job(
    job: ValidationJob,
    domain: SigningDomain,
    max_clock_skew: float,
    worth_recovering: Callable[[SignedMessage], bool] | None = None,
) -> None:
    """`MessageValidator.prepare` without the validator: what any thread or process
    holding the signing domain can do. `worth_recovering` (the validator's replay
    and quota hint) may skip the recovery; without it every signature is recovered
    and `complete` decides as always."""
    msg = _decoded(job, max_clock_skew)
    if msg is None:
        return
    job.digest = msg.digest(domain)
    if worth_recovering is not None and not worth_recovering(msg):
        return
    _recover(job, msg, job.digest)


def prepare_jobs(
    jobs: list[ValidationJob], domain: SigningDomain, max_clock_skew: float
) -> list[Exception | None]:
    """`prepare_job` (without the hint) for each job, one step at a time across them
    all: every decode, then every digest, then every recovery. The jobs end as
    prepare_job leaves them; the answer is, per job, what its step raised (None: it
    did not). Why in steps: the validation child takes up to 128 messages at a
    time, and running each step's code over all of them before the next step's
    costs ~7 % less CPU a message than running the three in turn for each (~74
    against ~80 µs for an order, recovery included): the code of one step stays
    in the caches."""
    errors: list[Exception | None] = [None] * len(jobs)
    going: list[tuple[int, ValidationJob, SignedMessage]] = []
    for i, job in enumerate(jobs):
        try:
            msg = _decoded(job, max_clock_skew)
        except Exception as exc:
            errors[i] = exc
            continue
        if msg is not None:
            going.append((i, job, msg))
    digested: list[tuple[int, ValidationJob, SignedMessage, bytes]] = []
    for i, job, msg in going:
        try:
            job.digest = digest = msg.digest(domain)
        except Exception as exc:
            errors[i] = exc
            continue
        digested.append((i, job, msg, digest))
    for i, job, msg, digest in digested:
        try:
            _recover(job, msg, digest)
        except Exception as exc:
            errors[i] = exc
    return errors


def _decoded(job: ValidationJob, max_clock_skew: float) -> SignedMessage | None:
    """The first step: the message, when it goes on to its digest and recovery; None
    when the job's verdict is already final (filled in)."""
    kinds = TOPIC_KINDS.get(job.topic)
    if kinds is None:
        job.verdict = Verdict(_IGNORE, "unknown-topic")
        return None
    try:
        msg = decode(job.data, kinds)
    except MessageDecodeError as exc:
        job.verdict = Verdict(_REJECT, f"schema:{exc.field}")
        return None
    job.message = msg
    if job.now + max_clock_skew < msg.valid_from:
        job.verdict = Verdict(_IGNORE, "not-yet-valid", msg)
        return None
    if job.now - max_clock_skew > msg.valid_until:
        job.verdict = Verdict(_IGNORE, "expired", msg)
        return None
    return msg


# What a job prepared in another process sends back (`prepared_fields`), so that
# only bytes and small values cross, never the message object: [verdict, reason,
# kind, digest, signer]. verdict is "" while the job goes on to `complete`, else
# the final ValidationResult's value with its reason; reason is then the bad
# signature's, if any. kind is the decoded message's MessageKind (-1: none), digest
# and signer are b"" where there is none.
PreparedFields = tuple[str, str, int, bytes, bytes]


def prepared_fields(job: ValidationJob) -> PreparedFields:
    kind = -1 if job.message is None else int(KIND_OF_TYPE[type(job.message)])
    if job.verdict is not None:
        return (job.verdict.result.value, job.verdict.reason, kind, b"", b"")
    return ("", job.bad_signature or "", kind, job.digest or b"", job.signer or b"")


def apply_prepared(job: ValidationJob, fields: PreparedFields) -> None:
    """Fill `job` as `prepare_job` filled it elsewhere. The message is built again
    here from the same bytes, which the other process found well-formed
    (`decode_accepted`), rather than sent across: that costs less than unpickling
    the object would."""
    verdict, reason, kind, digest, signer = fields
    if kind < 0:
        msg = None
    else:
        message_kind = KIND_OF_VALUE.get(kind)
        if message_kind is None:
            raise ValueError(f"no message kind {kind!r}")
        msg = decode_accepted(job.data, message_kind)
    job.message = msg
    if verdict:
        job.verdict = Verdict(ValidationResult(verdict), reason, msg)
        return
    if msg is None:
        raise ValueError("a job that goes on to complete needs its message")
    job.digest = digest
    job.signer = signer or None
    job.bad_signature = reason or None


def _recover(job: ValidationJob, msg: SignedMessage, digest: bytes) -> None:
    """Who signed: fills `job.signer`, or `job.bad_signature` with the reason.
    A peer record's own (Ed25519) signature is checked here too: it is as costly
    and as stateless as the recovery."""
    try:
        job.signer = eip712.recover_address(digest, msg.signature)
    except SignatureError:
        job.bad_signature = "bad-signature"
        return
    if (
        job.signer == msg.signer
        and isinstance(msg, PeerRecord)
        and not msg.peer_signature_valid(digest)
    ):
        job.bad_signature = "bad-peer-signature"


def _quota_kind(msg: SignedMessage) -> str | None:
    """Orders and cancels are quota'd per signer; announcements and peer records
    replace their signer's previous one, so one signer has one live of each."""
    if isinstance(msg, Order):
        return "order"
    if isinstance(msg, OrderCancel):
        return "cancel"
    return None


def make_validator(
    domain: SigningDomain,
    *,
    clock: Callable[[], float],
    hub_check: HubChainCheck | None = None,
    extra: Mapping[str, RouterValidator] | None = None,
    max_clock_skew: float = 60.0,
    reject_failed_hubs: bool = False,
    replay: ReplayGuard | None = None,
    quota: QuotaParams | None = None,
) -> MessageValidator:
    """The router's `validator(topic, data, from_peer)` for every application topic.

    `extra` maps other topics (e.g. the trust-poll topic) to their own validators, so
    the router gets one callable dispatching by topic.
    """
    return MessageValidator(
        ValidatorParams(
            domain=domain,
            max_clock_skew=max_clock_skew,
            reject_failed_hubs=reject_failed_hubs,
            quota=quota or QuotaParams(),
        ),
        clock=clock,
        hub_check=hub_check,
        extra=extra,
        replay=replay,
    )
