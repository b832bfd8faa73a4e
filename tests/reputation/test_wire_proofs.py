"""A missed first payday proven over the wire: the hub-countersigned agreement rides
with the worker's signed "BAD", and a node that gives the worker no weight checks it
itself (countersignature, the wallet's owner, the wallet's transfers)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gossip.eip712 import address_of_key
from p2pnode.reputation.store import ReputationStore
from p2pnode.storage import Storage
from p2pnode.worker import wire
from reputation import messages
from reputation.agreement import AgreementProof
from reputation.core import ReputationCore
from reputation.errors import TrustMessageDecodeError, TrustSignatureError
from reputation.evidence import Agreement, Verdict
from reputation.messages import MAX_TRUST_MESSAGE_BYTES, TrustAnswer
from tests.reputation.helpers import DAY, DOMAIN, HOUR, PERIOD, RATE, addr, key, node

OWNER_KEY = key(900)
OWNER = address_of_key(OWNER_KEY)
WALLET = bytes.fromhex("cc" * 20)


def _countersigned(worker_key: bytes, at: int, *, owner_key: bytes = OWNER_KEY) -> AgreementProof:
    """The agreement exactly as /sonm/worker/1 makes it: the worker's signed join, the
    hub owner's yes naming its digest."""
    worker, owner = address_of_key(worker_key), address_of_key(owner_key)
    join = wire.sign(
        wire.JoinRequest(
            worker, owner, WALLET, "/ip4/127.0.0.1/tcp/4100", b'{"cpu": "x"}' * 50,
            RATE, PERIOD, 7, at + 60,
        ),
        DOMAIN,
        worker_key,
    )  # fmt: skip
    yes = wire.sign(
        wire.HubAnswer(owner, worker, wire.digest(DOMAIN, join), 1, at, "joined"),
        DOMAIN,
        owner_key,
    )
    return AgreementProof.of(join, yes)


def _stiffed(n: int, start: float) -> tuple[ReputationCore, AgreementProof]:
    """A worker that joined WALLET at `start` with its countersigned agreement."""
    core = node(n)
    proof = _countersigned(key(n), int(start))
    core.hub_announced(WALLET, True, start)
    core.add_agreement(Agreement(core.address, WALLET, RATE, PERIOD, start), proof)
    return core, proof


def _checker(
    n: int, *, paid: dict[bytes, float] | None = None, since: float = 0.0
) -> ReputationCore:
    core = node(n)
    core.hub_announced(WALLET, True, 0.0)
    core.set_hub_owners({WALLET: OWNER})
    core.set_chain_last_paid({WALLET: dict(paid or {})}, {WALLET: since})
    return core


def test_the_compact_proof_recomputes_the_join_digest_the_hub_signed() -> None:
    proof = _countersigned(key(1), 1000)
    worker = node(1).address
    assert proof.countersigned(DOMAIN, worker, WALLET)
    assert not proof.countersigned(DOMAIN, worker, bytes(20))  # another wallet's terms
    assert not proof.countersigned(DOMAIN, addr(5), WALLET)  # another worker's
    for field, value in (("pay_per_hour", RATE + 1), ("payout_period", 1), ("at", 999)):
        assert not dataclasses.replace(proof, **{field: value}).countersigned(
            DOMAIN, worker, WALLET
        )
    assert AgreementProof.from_bytes(proof.to_bytes()) == proof
    assert proof.agreement(worker, WALLET) == Agreement(worker, WALLET, RATE, PERIOD, 1000.0)


def test_the_largest_answer_with_a_proof_fits_the_cap_and_round_trips() -> None:
    top = 2**64 - 1
    proof = AgreementProof(
        OWNER, b"\x01" * 32, b"\x02" * 32, 2**256 - 1, top, top, top, top, b"\x03" * 32,
        b"\x04" * 65,
    )  # fmt: skip
    signer = messages.KeySigner(key(3))
    a = TrustAnswer(
        signer.address, WALLET, b"\x05" * 32, Verdict.BAD, messages.UINT32_MAX, 2**256 - 1,
        messages.MAX_PERIOD_S, top, top - messages.MAX_WINDOW_S, top, proof=proof,
    )  # fmt: skip
    data = messages.encode(messages.sign(a, DOMAIN, signer))
    assert len(data) <= MAX_TRUST_MESSAGE_BYTES
    back = messages.decode(data)
    assert isinstance(back, TrustAnswer) and back.proof == proof


@pytest.mark.parametrize(
    ("mangle", "field"),
    [
        (lambda p: p[:-1], "proof.items"),
        (lambda p: [p[0][:19], *p[1:]], "proof.owner"),
        (lambda p: [*p[:3], b"\x00\x01", *p[4:]], "proof.pay_per_hour"),
        (lambda p: [*p[:4], 0, *p[5:]], "proof.payout_period"),
        (lambda p: [*p[:9], b"\x00" * 64], "proof.hub_signature"),
    ],
)
def test_a_malformed_proof_is_refused_naming_its_field(mangle: object, field: str) -> None:
    import msgpack

    core, _ = _stiffed(1, 0.0)
    core.on_timer(DAY + 2 * HOUR)
    frame = next(f for f in core.drain() if messages.decode(f).proof is not None)  # type: ignore[union-attr]
    top = list(msgpack.unpackb(frame))
    top[-1] = mangle(top[-1])  # type: ignore[operator]
    with pytest.raises(TrustMessageDecodeError) as exc:
        messages.decode(msgpack.packb(top, use_bin_type=True))
    assert exc.value.field == field


def test_a_good_answer_cannot_carry_a_proof() -> None:
    signer = messages.KeySigner(key(3))
    a = TrustAnswer(
        signer.address, WALLET, bytes(32), Verdict.GOOD, 1, 1, PERIOD, 1, 1, 2,
        proof=_countersigned(key(3), 0),
    )  # fmt: skip
    with pytest.raises(messages.FieldProblem, match="only a BAD"):
        messages.encode(messages.sign(a, DOMAIN, signer))


def test_a_stiffed_worker_alerts_with_its_proof_and_an_untrusting_colleague_heeds_it() -> None:
    now = DAY + 2 * HOUR
    stiffed, _ = _stiffed(1, 0.0)
    stiffed.on_timer(now)  # the first payday and its grace passed: nothing paid
    (frame,) = stiffed.drain()
    assert stiffed.counters["proofs_sent"] == 1
    colleague = _checker(2)
    colleague.add_agreement(Agreement(colleague.address, WALLET, RATE, PERIOD, 0.0))
    assert colleague.weight(stiffed.address) == 0.0  # nobody vouches for it
    msg = colleague.admit(frame, now)
    assert isinstance(msg, TrustAnswer) and msg.proof is not None
    colleague.deliver(msg, now)
    assert colleague.counters["alerts_accepted"] == 1
    assert colleague.warning(WALLET, now) == colleague.params.status.proof_weight
    # without the proof the same alert is dropped: no weight, nothing checked
    bare = _checker(3)
    bare.add_agreement(Agreement(bare.address, WALLET, RATE, PERIOD, 0.0))
    stripped = dataclasses.replace(msg, proof=None)
    bare.deliver(stripped, now)
    assert bare.counters["alerts_accepted"] == 0 and bare.warning(WALLET, now) == 0.0


def test_a_proof_counts_only_with_the_owner_the_chain_check_named_and_no_payment() -> None:
    now = DAY + 2 * HOUR
    stiffed, _ = _stiffed(1, HOUR)
    stiffed.on_timer(now + HOUR)
    (frame,) = stiffed.drain()
    msg = messages.decode(frame)
    assert isinstance(msg, TrustAnswer)
    later = now + HOUR

    def warned(core: ReputationCore) -> float:
        core.add_agreement(Agreement(core.address, WALLET, RATE, PERIOD, 0.0))
        core.deliver(msg, later)
        return core.warning(WALLET, later)

    assert warned(_checker(2)) == 1.0
    unowned = _checker(3)
    unowned.set_hub_owners({WALLET: addr(77)})  # the announcement named another owner
    assert warned(unowned) == 0.0 and unowned.counters["proofs_unowned"] == 1
    # the wallet paid the worker after the agreement began: no proof
    assert warned(_checker(4, paid={stiffed.address: 2 * HOUR})) == 0.0
    # a payment before the agreement says nothing about it
    assert warned(_checker(5, paid={stiffed.address: HOUR / 2})) == 1.0
    # the wallet's events were read only from after the start: unknown, no proof
    assert warned(_checker(6, since=2 * HOUR)) == 0.0


def test_a_forged_countersignature_is_refused_before_it_is_forwarded() -> None:
    now = DAY + 2 * HOUR
    stiffed, _ = _stiffed(1, 0.0)
    # the worker signs the hub's part itself: a hub that never took it on
    forged = _countersigned(key(1), 0, owner_key=key(1))
    stiffed.own_proofs[(WALLET, stiffed.address)] = dataclasses.replace(forged, owner=OWNER)
    stiffed.on_timer(now)
    (frame,) = stiffed.drain()
    relay = _checker(2)
    with pytest.raises(TrustSignatureError, match="countersigned"):
        relay.admit(frame, now)
    assert relay.counters["proofs_rejected"] == 1


def test_a_proven_answer_to_our_question_is_held_and_its_stripped_copy_is_not_a_duplicate() -> None:
    now = DAY + 2 * HOUR
    stiffed, _ = _stiffed(1, 0.0)
    stiffed.on_timer(now)
    stiffed.drain()
    asker = _checker(2)
    q, _ = asker.make_question(WALLET, now)
    frame = stiffed.answer_for(WALLET, q.question_id(DOMAIN), now)
    assert frame is not None and frame.proof is not None
    data = messages.encode(frame)
    stripped = messages.encode(dataclasses.replace(frame, proof=None))
    # a relay that strips the proof and forwards first does not shadow the proven copy
    first = asker.admit(stripped, now)
    second = asker.admit(data, now)
    assert first is not None and second is not None
    asker.deliver(first, now)
    assert asker.warning(WALLET, now) == 0.0  # no weight, no proof
    asker.deliver(second, now)
    assert asker.answers[WALLET][stiffed.address].proof_start == 0.0
    assert asker.counters["proofs_held"] == 1
    assert asker.warning(WALLET, now) == 1.0


def test_a_restart_keeps_our_proofs_and_the_proven_answers(tmp_path: Path) -> None:
    """Both sides in SQLite: the worker still sends its proof after a restart, and the
    checker still counts the proven answer it held."""
    now = DAY + 2 * HOUR
    stiffed, proof = _stiffed(1, 0.0)
    checker = _checker(2)
    checker.add_agreement(Agreement(checker.address, WALLET, RATE, PERIOD, 0.0))
    stiffed.on_timer(now)
    (frame,) = stiffed.drain()
    msg = checker.admit(frame, now)
    assert msg is not None
    checker.deliver(msg, now)
    for n, core in ((1, stiffed), (2, checker)):
        ReputationStore(Storage(tmp_path / f"{n}.db")).save(core, [WALLET], {})

    again = node(1)
    ReputationStore(Storage(tmp_path / "1.db")).load_into(again)
    assert again.own_proofs == {(WALLET, again.address): proof}
    answer = again.answer_for(WALLET, bytes(32), now)
    assert answer is not None and answer.proof == proof
    back = _checker(2)
    ReputationStore(Storage(tmp_path / "2.db")).load_into(back)
    assert back.answers[WALLET][stiffed.address].proof_start == 0.0
    assert stiffed.address not in back._untrusted[WALLET]
    assert back.warning(WALLET, now) == 1.0
