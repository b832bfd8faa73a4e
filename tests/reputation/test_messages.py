"""Trust messages on the wire: layout, signatures, decode fuzzing, and the receive path's
rate limits, dedupe and caps."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reputation.errors import (
    PeerRateLimited,
    RemoteTrustError,
    TrustMessageDecodeError,
    TrustSignatureError,
    UnsolicitedAnswer,
)
from reputation.evidence import Verdict
from reputation.messages import (
    ALERT_QUESTION,
    MAX_TRUST_MESSAGE_BYTES,
    MAX_TRUST_ROW_BYTES,
    KeySigner,
    TrustAnswer,
    TrustQuestion,
    decode,
    encode,
    sign,
    verify,
)
from reputation.params import PollParams, ReputationParams
from reputation.state import HubStatus
from tests.reputation.helpers import DAY, DOMAIN, HOUR, HUB, RATE, key, node, pay, work_for

ASKER = KeySigner(key(1))
ANSWERER = KeySigner(key(2))
NOW = 1_700_000_000


def question(nonce: int = 1) -> TrustQuestion:
    q = TrustQuestion(ASKER.address, HUB, nonce, NOW, NOW + 600)
    return sign(q, DOMAIN, ASKER)  # type: ignore[return-value]


def reply(q: TrustQuestion, signer: KeySigner = ANSWERER, **kw: object) -> TrustAnswer:
    a = TrustAnswer(
        signer.address,
        HUB,
        q.question_id(DOMAIN),
        Verdict.GOOD,
        3,
        24 * RATE,
        int(DAY),
        NOW - 100,
        NOW,
        NOW + 600,
    )
    a = dataclasses.replace(a, **kw)  # type: ignore[arg-type]
    return sign(a, DOMAIN, signer)  # type: ignore[return-value]


def test_question_layout_is_the_documented_array() -> None:
    q = question()
    data = encode(q)
    top = msgpack.unpackb(data, raw=False)
    assert top[:2] == [16, 1]
    assert top[2:7] == [ASKER.address, HUB, 1, NOW, NOW + 600]
    assert len(top[7]) == 65
    assert decode(data) == q
    assert len(data) <= MAX_TRUST_MESSAGE_BYTES


def test_answer_layout_and_uint256_as_minimal_bytes() -> None:
    a = reply(question(), avg_reward=0)
    top = msgpack.unpackb(encode(a), raw=False)
    assert top[:2] == [17, 1]
    assert top[5] == 1 and top[7] == b""  # verdict GOOD; zero reward is empty bytes
    assert len(top) == 13
    assert decode(encode(a)) == a
    big = reply(question(), avg_reward=2**256 - 1)
    assert decode(encode(big)).avg_reward == 2**256 - 1


def test_signatures_are_checked() -> None:
    q = question()
    verify(q, DOMAIN)
    forged = dataclasses.replace(q, hub=bytes(20))
    with pytest.raises(TrustSignatureError, match="not by"):
        verify(forged, DOMAIN)
    other_chain = dataclasses.replace(DOMAIN, chain_id=1)
    with pytest.raises(TrustSignatureError):
        verify(q, other_chain)
    with pytest.raises(ValueError, match="signer"):
        sign(TrustQuestion(ANSWERER.address, HUB, 1, NOW, NOW + 1), DOMAIN, ASKER)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda t: [19, *t[1:]], "kind"),
        (lambda t: [t[0], 2, *t[2:]], "version"),
        (lambda t: t[:-1], "message"),
        (lambda t: [*t[:2], b"\x01" * 19, *t[3:]], "asker"),
        (lambda t: [*t[:4], -1, *t[5:]], "nonce"),
        (lambda t: [*t[:4], True, *t[5:]], "nonce"),
        (lambda t: [*t[:5], NOW + 600, NOW, t[7]], "valid_until"),
        (lambda t: [*t[:5], NOW, NOW + 2 * 86400, t[7]], "valid_until"),
        (lambda t: [*t[:7], b"\x00" * 64], "signature"),
        (lambda t: [*t[:7], b""], "signature"),
    ],
)
def test_bad_questions_name_the_field(mutate: object, field: str) -> None:
    top = msgpack.unpackb(encode(question()), raw=False)
    data = msgpack.packb(mutate(top), use_bin_type=True)  # type: ignore[operator]
    with pytest.raises(TrustMessageDecodeError) as exc:
        decode(data)
    assert exc.value.field == field


def test_bad_answers_name_the_field() -> None:
    top = msgpack.unpackb(encode(reply(question())), raw=False)
    for i, value, field in [
        (5, 3, "verdict"),
        (6, 2**32, "payments_seen"),
        (7, b"\x00\x01", "avg_reward"),
        (7, b"\x01" * 33, "avg_reward"),
        (8, 400 * 86400, "period_s"),
        (4, b"\x00" * 31, "question"),
    ]:
        bad = list(top)
        bad[i] = value
        with pytest.raises(TrustMessageDecodeError) as exc:
            decode(msgpack.packb(bad, use_bin_type=True))
        assert exc.value.field == field


def test_non_canonical_and_oversized_input_is_refused() -> None:
    data = encode(question())
    top = msgpack.unpackb(data, raw=False)
    # the nonce as a 64-bit int instead of a fixint: same value, other bytes
    longer = data.replace(b"\x01\xce", b"\xcf\x00\x00\x00\x00\x00\x00\x00\x01\xce", 1)
    assert msgpack.unpackb(longer, raw=False) == top
    with pytest.raises(TrustMessageDecodeError, match="canonical"):
        decode(longer)
    with pytest.raises(TrustMessageDecodeError, match="limit"):
        decode(b"\x91" + b"\x00" * MAX_TRUST_ROW_BYTES)  # the largest kind's cap
    with pytest.raises(TrustMessageDecodeError, match="bytes expected"):
        decode(bytearray(data))  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_random_bytes_give_only_named_errors(data: bytes) -> None:
    try:
        msg = decode(data)
    except TrustMessageDecodeError as exc:
        assert exc.field
        return
    assert encode(msg) == data  # anything accepted is canonical


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_fuzz_mutated_messages_give_named_errors_or_verify(data: st.DataObject) -> None:
    good = encode(reply(question()))
    raw = bytearray(good)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    try:
        msg = decode(bytes(raw))
    except TrustMessageDecodeError:
        return
    try:
        verify(msg, DOMAIN)
    except TrustSignatureError:
        return
    assert bytes(raw) == good  # only the original survives both checks


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.integers(-(2**70), 2**70), st.binary(max_size=40), st.booleans(), st.none()),
        min_size=0,
        max_size=14,
    )
)
def test_fuzz_well_formed_msgpack_of_wrong_shape(items: list[object]) -> None:
    for kind in (16, 17):
        try:
            data = msgpack.packb([kind, 1, *items], use_bin_type=True)
        except OverflowError:
            return
        try:
            decode(data)
        except TrustMessageDecodeError as exc:
            assert exc.field


# -- the receive path ------------------------------------------------------------------


def _worker_with_evidence() -> object:
    core = node(2)
    core.hub_announced(HUB, True, 0.0)
    work_for(core, HUB, start=NOW - 2 * DAY)
    pay(core, HUB, 24 * RATE, NOW - DAY)
    core.on_timer(NOW - DAY + HOUR)
    return core


def test_question_answer_round_trip_over_frames() -> None:
    asker, answerer = node(1), _worker_with_evidence()
    asker.hub_announced(HUB, True, NOW)
    asker.set_global_trust({answerer.address: 1.0})  # type: ignore[attr-defined]
    asker.poll(float(NOW))
    (frame,) = asker.drain()
    answerer.receive(b"peer-asker", frame, float(NOW))  # type: ignore[attr-defined]
    (ans,) = answerer.drain()  # type: ignore[attr-defined]
    a = decode(ans)
    assert isinstance(a, TrustAnswer) and a.verdict is Verdict.GOOD and a.payments_seen == 1
    asker.receive(b"peer-answerer", ans, float(NOW))
    assert asker.answers[HUB][answerer.address].verdict is Verdict.GOOD  # type: ignore[attr-defined]
    # the same answer again is a duplicate: nothing changes
    asker.receive(b"peer-answerer", ans, float(NOW))
    assert asker.counters["dropped_duplicate"] == 1
    # an answerer with no evidence stays silent
    silent = node(3)
    silent.receive(b"peer-asker", frame, float(NOW))
    assert silent.drain() == []


def test_a_question_asked_out_of_turn_is_answered_and_its_answer_kept() -> None:
    # what a worker does before it joins a hub: one question about that hub now,
    # whatever the poll rounds would pick; its answer is solicited like a poll's
    asker, answerer = node(1), _worker_with_evidence()
    asker.hub_announced(HUB, True, NOW)
    q, qid = asker.ask(HUB, float(NOW))  # type: ignore[attr-defined]
    assert qid == q.question_id(DOMAIN)
    assert q.hub == HUB and q.asker == asker.address  # type: ignore[attr-defined]
    (frame,) = asker.drain()
    assert decode(frame) == q
    assert asker.counters["questions_asked"] == 1 and asker.counters["questions_sent"] == 1
    answerer.receive(b"peer-asker", frame, float(NOW))  # type: ignore[attr-defined]
    (ans,) = answerer.drain()  # type: ignore[attr-defined]
    asker.receive(b"peer-answerer", ans, float(NOW))
    assert asker.answers[HUB][answerer.address].verdict is Verdict.GOOD  # type: ignore[attr-defined]


def test_answers_to_questions_never_asked_are_refused_before_storing() -> None:
    asker = node(1)
    asker.hub_announced(HUB, True, NOW)
    stranger_q = TrustQuestion(ANSWERER.address, HUB, 9, NOW, NOW + 600)
    a = reply(sign(stranger_q, DOMAIN, ANSWERER))  # type: ignore[arg-type]
    with pytest.raises(UnsolicitedAnswer):
        asker.receive(b"p", encode(a), float(NOW))
    assert asker.answers == {}


def test_a_forged_answer_is_refused_before_storing() -> None:
    asker = node(1)
    asker.hub_announced(HUB, True, NOW)
    ((q, _),) = asker.poll(float(NOW))
    a = reply(q)  # signed by ANSWERER
    forged = dataclasses.replace(a, answerer=KeySigner(key(9)).address)
    with pytest.raises(TrustSignatureError):
        asker.receive(b"p", encode(forged), float(NOW))
    assert asker.answers == {}
    asker.receive(b"p", encode(a), float(NOW))  # the genuine one is not shadowed
    assert ANSWERER.address in asker.answers[HUB]


def test_expired_messages_are_dropped() -> None:
    asker = node(1)
    q = question()
    asker.receive(b"p", encode(q), float(NOW + 601))
    assert asker.counters["dropped_expired"] == 1


def test_questions_are_rate_limited_per_peer() -> None:
    params = ReputationParams(poll=PollParams(questions_per_window=3, window_s=60.0))
    answerer = node(2, params)
    for n in range(3):
        answerer.receive(b"noisy", encode(question(n)), float(NOW))
    with pytest.raises(PeerRateLimited, match="more than 3 questions"):
        answerer.receive(b"noisy", encode(question(3)), float(NOW))
    answerer.receive(b"quiet", encode(question(4)), float(NOW))  # others are unaffected
    answerer.receive(b"noisy", encode(question(5)), float(NOW + 60))  # a new window
    assert answerer.counters["dropped_rate_limited"] == 1


def test_every_table_a_peer_can_grow_is_capped() -> None:
    params = ReputationParams(
        poll=PollParams(
            max_tracked_peers=5,
            max_seen=10,
            max_outstanding=4,
            max_answers_per_question=6,
            max_untrusted_answers_per_question=2,
        )
    )
    core = node(1, params)
    core.hub_announced(HUB, True, NOW)
    for n in range(40):  # 40 peers, 40 distinct questions
        core.receive(bytes([n]), encode(question(100 + n)), float(NOW))
    assert len(core._rate) == 5
    assert len(core._seen) == 10
    for _ in range(10):
        core.make_question(HUB, float(NOW))
    assert len(core._outstanding) == 4
    ((q, _),) = core.poll(float(NOW))
    signers = [KeySigner(key(50 + i)) for i in range(8)]
    core.set_global_trust({signers[0].address: 1.0, signers[1].address: 1.0})
    for s in signers:
        try:
            core.receive(s.address, encode(reply(q, s)), float(NOW))
        except RemoteTrustError:
            pytest.fail("an answer within the rate limits must not raise")
    # two trusted answers plus the untrusted quota of two; the rest dropped
    assert len(core.answers[HUB]) == 4
    assert core.counters["dropped_table_full"] == 4
    assert core.status(HUB) is HubStatus.CHECKED


def test_each_verdict_has_its_own_answer_quota_per_question() -> None:
    """A crowd of past workers' "it paid me" fills the positive quota; the one fresh
    "it stopped paying me" still gets in (and the other way round)."""
    params = ReputationParams(
        poll=PollParams(max_answers_per_question=3, max_untrusted_answers_per_question=1)
    )
    core = node(1, params)
    core.hub_announced(HUB, True, NOW)
    ((q, _),) = core.poll(float(NOW))
    signers = [KeySigner(key(60 + i)) for i in range(9)]
    core.set_global_trust({s.address: 1.0 for s in signers})
    for s in signers[:5]:
        core.receive(s.address, encode(reply(q, s)), float(NOW))
    assert core.counters["dropped_table_full"] == 2  # 3 positives kept
    for s in signers[5:]:
        core.receive(s.address, encode(reply(q, s, verdict=Verdict.BAD)), float(NOW))
    kept = core.answers[HUB]
    assert [a.verdict for a in kept.values()].count(Verdict.BAD) == 3
    assert [a.verdict for a in kept.values()].count(Verdict.GOOD) == 3
    assert core.counters["dropped_table_full"] == 3


def _stiffed_worker(n: int) -> object:
    """Joined HUB two days ago, paid on the first payday, not on the second."""
    core = node(n)
    core.hub_announced(HUB, True, float(NOW - 2 * DAY))
    work_for(core, HUB, start=NOW - 2 * DAY)
    pay(core, HUB, 24 * RATE, NOW - DAY)
    return core


def test_a_missed_payday_is_alerted_at_once_to_the_hubs_other_workers() -> None:
    stiffed = _stiffed_worker(2)
    stiffed.on_timer(float(NOW - DAY + HOUR))  # type: ignore[attr-defined]
    assert stiffed.drain() == []  # type: ignore[attr-defined]  # a matched payday: no alert
    stiffed.on_timer(float(NOW + HOUR))  # type: ignore[attr-defined]
    (frame,) = stiffed.drain()  # type: ignore[attr-defined]
    alert = decode(frame)
    assert isinstance(alert, TrustAnswer) and alert.verdict is Verdict.BAD
    assert alert.question == ALERT_QUESTION and stiffed.counters["alerts_sent"] == 1  # type: ignore[attr-defined]
    stiffed.on_timer(float(NOW + DAY + HOUR))  # type: ignore[attr-defined]
    assert stiffed.drain() == []  # type: ignore[attr-defined]  # the next missed one: old news

    # a colleague that trusts the alerting worker keeps it and is warned now, before
    # its own payday (still 12 h away)
    colleague = node(3)
    colleague.hub_announced(HUB, True, float(NOW - DAY))
    work_for(colleague, HUB, start=NOW - 12 * HOUR)
    colleague.set_global_trust({stiffed.address: 0.5})  # type: ignore[attr-defined]
    colleague.receive(b"relay", frame, float(NOW + HOUR))
    assert colleague.counters["alerts_accepted"] == 1
    assert colleague.warning(HUB, float(NOW + HOUR)) == 0.5
    # the same alert relayed again is a duplicate
    colleague.receive(b"relay", frame, float(NOW + HOUR))
    assert colleague.counters["dropped_duplicate"] == 1

    # dropped without blame: a node not working for the hub, one that gives the
    # alerting worker no weight, and a "GOOD" alert
    outsider, doubter = node(4), node(5)
    outsider.hub_announced(HUB, True, float(NOW))
    outsider.set_global_trust({stiffed.address: 0.5})  # type: ignore[attr-defined]
    doubter.hub_announced(HUB, True, float(NOW))
    work_for(doubter, HUB, start=NOW - 12 * HOUR)
    for core in (outsider, doubter):
        core.receive(b"relay", frame, float(NOW + HOUR))
        assert core.answers.get(HUB, {}) == {} and core.counters["dropped_unsolicited"] == 1
        assert core.warning(HUB, float(NOW + HOUR)) == 0.0
    praiser = KeySigner(key(7))
    praise = reply(question(), praiser, verdict=Verdict.GOOD, question=ALERT_QUESTION)
    colleague.set_global_trust({stiffed.address: 0.5, praiser.address: 0.5})  # type: ignore[attr-defined]
    colleague.receive(b"relay", encode(praise), float(NOW))
    assert praiser.address not in colleague.answers[HUB]
    assert colleague.counters["dropped_unsolicited"] == 1
    # the relay path (admit, then deliver) keeps it the same way
    relayed = node(6)
    relayed.hub_announced(HUB, True, float(NOW))
    work_for(relayed, HUB, start=NOW - 12 * HOUR)
    relayed.set_global_trust({stiffed.address: 0.5})  # type: ignore[attr-defined]
    msg = relayed.admit(frame, float(NOW + HOUR))
    assert msg is not None
    relayed.deliver(msg, float(NOW + HOUR))
    assert relayed.warning(HUB, float(NOW + HOUR)) == 0.5
