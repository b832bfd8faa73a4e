"""Validators: every verdict branch, with real keys and real signatures."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gossip import codec, eip712
from gossip.eip712 import SigningDomain
from gossip.hubs import HubAnnouncement
from gossip.orders import Order, OrderCancel, Side
from gossip.peer_record import PeerRecord, ed25519_peer_id
from gossip.replay import ReplayGuard, ReplayParams
from gossip.topics import ALL_TOPICS, HUBS_TOPIC, ORDERS_TOPIC, PEERS_TOPIC, topic_for
from gossip.validation import ValidationResult
from gossip.validators import (
    HubCheck,
    MessageValidator,
    ValidatorParams,
    make_validator,
)

ACCEPT, REJECT, IGNORE = ValidationResult.ACCEPT, ValidationResult.REJECT, ValidationResult.IGNORE
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
OTHER_KEY = bytes.fromhex("11" * 32)
ADDR = eip712.address_of_key(KEY)
DOMAIN = SigningDomain(chain_id=31337)
T0 = 1_700_000_000
PEER = b"peer-a"


class Clock:
    """A settable wall clock (unix seconds) for the validator."""

    def __init__(self, now: float = T0 + 100) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def order(nonce: int = 1, key: bytes = KEY, **kw: object) -> Order:
    base: dict[str, object] = dict(
        author=eip712.address_of_key(key),
        side=Side.BID,
        price_per_hour=10**17,
        duration=3600,
        nonce=nonce,
        valid_from=T0,
        valid_until=T0 + 3600,
        cpu_cores=2,
    )
    base.update(kw)
    return Order.create(**base).signed(DOMAIN, key)  # type: ignore[arg-type]


def hub(sequence: int = 1, **kw: object) -> HubAnnouncement:
    base: dict[str, object] = dict(
        owner=ADDR,
        wallet=b"\x11" * 20,
        peer_id=b"\x00\x24" + b"\x01" * 36,
        multiaddrs=("/ip4/127.0.0.1/tcp/4001",),
        name="hub",
        description="",
        sequence=sequence,
        valid_from=T0,
        valid_until=T0 + 3600,
    )
    base.update(kw)
    return HubAnnouncement(**base).signed(DOMAIN, KEY)  # type: ignore[arg-type]


def validator(clock: Clock | None = None, **kw: object) -> MessageValidator:
    return MessageValidator(ValidatorParams(domain=DOMAIN), clock=clock or Clock(), **kw)  # type: ignore[arg-type]


def test_topics() -> None:
    assert ALL_TOPICS == ("/sonm/hubs/1", "/sonm/orders/1", "/sonm/peers/1", "/sonm/trust/1")
    assert topic_for(Order.KIND) == ORDERS_TOPIC == topic_for(OrderCancel.KIND)
    assert topic_for(HubAnnouncement.KIND) == HUBS_TOPIC
    assert topic_for(PeerRecord.KIND) == PEERS_TOPIC


def test_accept_then_replay_is_ignored() -> None:
    v = validator()
    data = codec.encode(order())
    assert v(ORDERS_TOPIC, data, PEER) is ACCEPT
    assert v(ORDERS_TOPIC, data, PEER) is IGNORE
    assert v.counters.by_reason == {"accepted": 1, "replay": 1}


def test_same_nonce_other_content_is_ignored_but_other_nonces_pass() -> None:
    v = validator()
    assert v(ORDERS_TOPIC, codec.encode(order(1)), PEER) is ACCEPT
    assert v(ORDERS_TOPIC, codec.encode(order(1, price_per_hour=5)), PEER) is IGNORE
    assert v(ORDERS_TOPIC, codec.encode(order(2)), PEER) is ACCEPT
    assert v(ORDERS_TOPIC, codec.encode(order(1, key=OTHER_KEY)), PEER) is ACCEPT


def test_accepted_verdict_carries_the_message_and_order_id() -> None:
    v = validator()
    o = order()
    data = codec.encode(o)
    assert v(ORDERS_TOPIC, data, PEER) is ACCEPT
    verdict = v.pop_accepted(data)
    assert verdict is not None and verdict.message == o
    assert verdict.digest == o.order_id(DOMAIN)
    assert v.pop_accepted(data) is None


def test_accepted_cache_is_bounded() -> None:
    v = MessageValidator(ValidatorParams(domain=DOMAIN, accepted_cache_size=2), clock=Clock())
    datas = [codec.encode(order(n)) for n in range(3)]
    for d in datas:
        assert v(ORDERS_TOPIC, d, PEER) is ACCEPT
    assert v.pop_accepted(datas[0]) is None
    assert v.pop_accepted(datas[2]) is not None


@pytest.mark.parametrize(
    "now, result, reason",
    [
        (T0 - 61, IGNORE, "not-yet-valid"),
        (T0 - 60, ACCEPT, "accepted"),  # within the allowed clock skew
        (T0 + 3600 + 60, ACCEPT, "accepted"),
        (T0 + 3600 + 61, IGNORE, "expired"),
    ],
)
def test_validity_window_with_skew(now: float, result: ValidationResult, reason: str) -> None:
    v = validator(Clock(now))
    verdict = v.check(ORDERS_TOPIC, codec.encode(order()), now)
    assert (verdict.result, verdict.reason) == (result, reason)
    assert v(ORDERS_TOPIC, codec.encode(order(2)), PEER) is result


def test_schema_errors_are_rejected_with_the_field() -> None:
    v = validator()
    assert v.check(ORDERS_TOPIC, b"\x00garbage", T0).reason == "schema:message"
    wire = list(msgpack.unpackb(codec.encode(order())))
    wire[12] = "xx"
    verdict = v.check(ORDERS_TOPIC, msgpack.packb(wire, use_bin_type=True), T0)
    assert (verdict.result, verdict.reason) == (REJECT, "schema:geo")


def test_a_kind_on_the_wrong_topic_is_rejected_and_unknown_topics_ignored() -> None:
    v = validator()
    data = codec.encode(order())
    assert v.check(HUBS_TOPIC, data, T0 + 1).reason == "schema:kind"
    assert v(HUBS_TOPIC, data, PEER) is REJECT
    assert v("/other/1", data, PEER) is IGNORE
    # the rejection did not spend the nonce
    assert v(ORDERS_TOPIC, data, PEER) is ACCEPT


def test_bad_signature_is_rejected_and_does_not_burn_the_nonce() -> None:
    v = validator()
    good = order()
    tampered = dataclasses.replace(good, price_per_hour=good.price_per_hour + 1)
    verdict = v.check(ORDERS_TOPIC, codec.encode(tampered), T0 + 1)
    # the signature recovers, but to some other address than the author's
    assert (verdict.result, verdict.reason) == (REJECT, "wrong-signer")
    sig = bytearray(good.signature)
    sig[0:32] = b"\xff" * 32  # r >= n: no such signature
    verdict = v.check(
        ORDERS_TOPIC, codec.encode(dataclasses.replace(good, signature=bytes(sig))), T0 + 1
    )
    assert (verdict.result, verdict.reason) == (REJECT, "bad-signature")
    assert v(ORDERS_TOPIC, codec.encode(good), PEER) is ACCEPT


def test_signed_for_another_chain_is_rejected() -> None:
    v = validator()
    foreign = dataclasses.replace(order(), signature=b"").signed(SigningDomain(chain_id=1), KEY)
    assert v.check(ORDERS_TOPIC, codec.encode(foreign), T0 + 1).reason == "wrong-signer"


def test_someone_elses_address_as_author_is_rejected() -> None:
    v = validator()
    o = order(key=OTHER_KEY)
    forged = dataclasses.replace(o, author=ADDR)
    assert v(ORDERS_TOPIC, codec.encode(forged), PEER) is REJECT


def test_cancellation_validates_like_an_order() -> None:
    v = validator()
    o = order()
    cancel = OrderCancel(ADDR, o.order_id(DOMAIN), 1, T0, T0 + 3600).signed(DOMAIN, KEY)
    assert v(ORDERS_TOPIC, codec.encode(o), PEER) is ACCEPT
    # same nonce as the order, but cancellations have their own nonce space
    assert v(ORDERS_TOPIC, codec.encode(cancel), PEER) is ACCEPT
    assert v(ORDERS_TOPIC, codec.encode(cancel), PEER) is IGNORE


def test_hub_sequences_newest_wins() -> None:
    v = validator()
    assert v(HUBS_TOPIC, codec.encode(hub(5)), PEER) is ACCEPT
    assert v(HUBS_TOPIC, codec.encode(hub(4)), PEER) is IGNORE
    assert v(HUBS_TOPIC, codec.encode(hub(5, name="other")), PEER) is IGNORE
    assert v(HUBS_TOPIC, codec.encode(hub(6)), PEER) is ACCEPT
    # another wallet of the same owner has its own sequence
    assert v(HUBS_TOPIC, codec.encode(hub(1, wallet=b"\x12" * 20)), PEER) is ACCEPT


class ChainStub:
    """A chain check answering from a table, as HubVerifier answers from its cache."""

    def __init__(self) -> None:
        self.status: dict[bytes, HubCheck] = {}
        self.asked: list[bytes] = []

    def __call__(self, announcement: HubAnnouncement, now: float) -> HubCheck:
        self.asked.append(announcement.wallet)
        return self.status.get(announcement.wallet, HubCheck.PENDING)


def test_hub_pending_is_ignored_without_spending_the_sequence() -> None:
    chain = ChainStub()
    v = validator(hub_check=chain)
    data = codec.encode(hub(1))
    verdict = v.check(HUBS_TOPIC, data, T0 + 1)
    assert (verdict.result, verdict.reason) == (IGNORE, "hub-pending")
    assert chain.asked == [b"\x11" * 20]
    chain.status[b"\x11" * 20] = HubCheck.VERIFIED
    assert v(HUBS_TOPIC, data, PEER) is ACCEPT


def test_hub_failed_is_ignored_or_rejected_by_policy() -> None:
    chain = ChainStub()
    chain.status[b"\x11" * 20] = HubCheck.FAILED
    lenient = validator(hub_check=chain)
    assert lenient.check(HUBS_TOPIC, codec.encode(hub()), T0 + 1).result is IGNORE
    strict = make_validator(DOMAIN, clock=Clock(), hub_check=chain, reject_failed_hubs=True)
    assert strict(HUBS_TOPIC, codec.encode(hub()), PEER) is REJECT


def test_hub_marked_is_accepted_with_a_flag() -> None:
    chain = ChainStub()
    chain.status[b"\x11" * 20] = HubCheck.MARKED
    v = validator(hub_check=chain)
    verdict = v.check(HUBS_TOPIC, codec.encode(hub()), T0 + 1)
    assert (verdict.result, verdict.reason) == (ACCEPT, "accepted-marked")
    assert v.check(HUBS_TOPIC, codec.encode(hub()), T0 + 1).reason == "replay"


def test_hub_check_maps_the_chain_verifiers_verdicts() -> None:
    assert HubCheck.from_verdict("accept") is HubCheck.VERIFIED
    assert HubCheck.from_verdict("mark") is HubCheck.MARKED
    assert HubCheck.from_verdict("reject") is HubCheck.FAILED
    with pytest.raises(ValueError, match="verdict"):
        HubCheck.from_verdict("maybe")
    verify = pytest.importorskip("contracts.verify")
    assert {HubCheck.from_verdict(v.value) for v in verify.HubVerdict} == {
        HubCheck.VERIFIED,
        HubCheck.MARKED,
        HubCheck.FAILED,
    }


def test_hub_chain_check_is_not_asked_for_forgeries() -> None:
    chain = ChainStub()
    v = validator(hub_check=chain)
    forged = dataclasses.replace(hub(), name="changed")
    assert v(HUBS_TOPIC, codec.encode(forged), PEER) is REJECT
    assert chain.asked == []


def test_peer_records_need_the_peer_key() -> None:
    peer_key = Ed25519PrivateKey.generate()
    pid = ed25519_peer_id(peer_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    rec = PeerRecord(ADDR, pid, ("/ip4/127.0.0.1/tcp/4001",), 1, T0, T0 + 600)
    good = rec.signed(DOMAIN, KEY, peer_key)
    stranger = rec.signed(DOMAIN, KEY, Ed25519PrivateKey.generate())
    v = validator()
    verdict = v.check(PEERS_TOPIC, codec.encode(stranger), T0 + 1)
    assert (verdict.result, verdict.reason) == (REJECT, "bad-peer-signature")
    assert v(PEERS_TOPIC, codec.encode(good), PEER) is ACCEPT
    assert v(PEERS_TOPIC, codec.encode(good), PEER) is IGNORE


def test_extra_topics_dispatch_to_their_own_validator() -> None:
    seen: list[tuple[str, bytes, bytes]] = []

    def trust_validator(topic: str, data: bytes, from_peer: bytes) -> ValidationResult:
        seen.append((topic, data, from_peer))
        return REJECT

    v = make_validator(DOMAIN, clock=Clock(), extra={"/sonm/trust/1": trust_validator})
    assert v("/sonm/trust/1", b"x", PEER) is REJECT
    assert seen == [("/sonm/trust/1", b"x", PEER)]
    assert v(ORDERS_TOPIC, codec.encode(order()), PEER) is ACCEPT


def test_replay_guard_is_shared_and_persisted_records_restore() -> None:
    guard = ReplayGuard(ReplayParams(max_entries=100, max_per_key=10))
    v = validator(replay=guard)
    data = codec.encode(order(3))
    assert v(ORDERS_TOPIC, data, PEER) is ACCEPT
    records = guard.drain_records()
    assert len(records) == 1 and records[0].number == 3
    restarted = ReplayGuard()
    restarted.load(records, now=T0 + 100)
    assert validator(replay=restarted)(ORDERS_TOPIC, data, PEER) is IGNORE


def test_params_validate() -> None:
    with pytest.raises(ValueError, match="max_clock_skew"):
        ValidatorParams(domain=DOMAIN, max_clock_skew=-1).validate()
    with pytest.raises(ValueError, match="accepted_cache_size"):
        ValidatorParams(domain=DOMAIN, accepted_cache_size=-1).validate()
    with pytest.raises(ValueError, match="chain_id"):
        ValidatorParams(domain=SigningDomain(chain_id=0)).validate()


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_no_altered_message_is_ever_accepted(data: st.DataObject) -> None:
    """The signature binds every byte: change any of them and the message is refused."""
    original = data.draw(
        st.sampled_from(
            [codec.encode(order(7)), codec.encode(hub(7)), codec.encode(order(8, geo="JP"))]
        )
    )
    raw = bytearray(original)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
    altered = bytes(raw)
    assume(altered != original)  # two flips of one byte can cancel out
    topic = HUBS_TOPIC if original[1] == 1 else ORDERS_TOPIC
    verdict = validator().check(topic, altered, T0 + 10)
    assert verdict.result is not ACCEPT, verdict
    assert validator().check(topic, original, T0 + 10).result is ACCEPT
