"""The relay path a gossip topic needs (`admit` in the validator, `deliver` after it):
answers to another node's question are forwarded but not stored, the rate limit is
per signer, nothing is stored before the signature is checked."""

from __future__ import annotations

import pytest

from reputation import messages
from reputation.errors import PeerRateLimited, TrustMessageDecodeError, TrustSignatureError
from reputation.evidence import Verdict
from reputation.messages import KeySigner, TrustAnswer
from reputation.params import PollParams, ReputationParams
from reputation.state import HubStatus
from tests.reputation.helpers import DOMAIN, HUB, PERIOD, RATE, key, node, pay, work_for

T0 = 1_800_000_000.0


def _answer_to(qid: bytes, n: int, now: float) -> bytes:
    signer = KeySigner(key(n))
    a = TrustAnswer(
        signer.address, HUB, qid, Verdict.GOOD, 1, RATE * 24, PERIOD, int(now), int(now),
        int(now) + 600,
    )  # fmt: skip
    return messages.encode(messages.sign(a, DOMAIN, signer))


def test_answers_to_others_pass_the_relay_and_only_the_asker_stores_them() -> None:
    asker, relay, witness = node(1), node(2), node(3)
    for n in (asker, relay, witness):
        n.hub_announced(HUB, True, T0)
    work_for(witness, HUB, T0)
    pay(witness, HUB, RATE * 24, T0 + PERIOD - 10)
    witness.on_timer(T0 + PERIOD + 3601)
    now = T0 + PERIOD + 4000
    asker.poll(now)
    (q_frame,) = asker.drain()
    # the relay admits the question, delivers it (no evidence: no answer), forwards it
    q = relay.admit(q_frame, now)
    assert q is not None
    relay.deliver(q, now)
    assert relay.drain() == []
    # the witness answers
    q2 = witness.admit(q_frame, now)
    assert q2 is not None
    witness.deliver(q2, now)
    (a_frame,) = witness.drain()
    # the relay forwards the answer (it must reach the asker) and does not store it
    a = relay.admit(a_frame, now)
    assert a is not None
    relay.deliver(a, now)
    assert relay.counters["dropped_unsolicited"] == 1 and relay.answers == {}
    # the asker stores it; seen twice, the second is dropped before any work
    a2 = asker.admit(a_frame, now)
    assert a2 is not None
    asker.deliver(a2, now)
    assert set(asker.answers[HUB]) == {witness.address}
    assert asker.admit(a_frame, now) is None
    assert asker.counters["dropped_duplicate"] == 1
    assert asker.status(HUB) is HubStatus.UNVERIFIED  # one answer of no weight moves nothing


def test_admit_refuses_before_storing_and_limits_per_signer() -> None:
    params = ReputationParams(poll=PollParams(answers_per_window=2))
    asker = node(1, params)
    asker.hub_announced(HUB, True, T0)
    asker.poll(T0)
    (q_frame,) = asker.drain()
    qid = messages.decode(q_frame).question_id(DOMAIN)  # type: ignore[union-attr]
    with pytest.raises(TrustMessageDecodeError):
        asker.admit(b"\x92\x11\x01", T0)
    forged = bytearray(_answer_to(qid, 5, T0))
    forged[-30] ^= 0x01
    with pytest.raises((TrustSignatureError, TrustMessageDecodeError)):
        asker.admit(bytes(forged), T0)
    assert asker.answers == {}
    # two answers per window from signer 5 (whoever forwards them); the third is refused
    frames = [_answer_to(qid, 5, T0 + i) for i in range(3)]
    assert asker.admit(frames[0], T0) is not None
    assert asker.admit(frames[1], T0) is not None
    with pytest.raises(PeerRateLimited):
        asker.admit(frames[2], T0)
    assert asker.admit(_answer_to(qid, 6, T0), T0) is not None  # another signer is not charged
    # expired: dropped without error
    assert asker.admit(_answer_to(qid, 7, T0), T0 + 10_000) is None
    assert asker.counters["dropped_expired"] == 1
