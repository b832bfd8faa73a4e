"""Per-signer quotas and per-peer rate limits, in virtual time, alone and in the validator."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip import codec, eip712
from gossip.eip712 import SigningDomain
from gossip.orders import Order, OrderCancel, Side
from gossip.quota import AuthorQuota, PeerRateLimit, QuotaParams
from gossip.validation import ValidationResult
from gossip.validators import MessageValidator, ValidatorParams

DOMAIN = SigningDomain(chain_id=31337)
T0 = 1_700_000_000.0
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
HONEST_KEY = bytes.fromhex("22" * 32)
PEER = b"peer-a"


class Clock:
    def __init__(self, now: float = T0 + 100) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def order(nonce: int, key: bytes = KEY, valid_until: float = T0 + 3600) -> bytes:
    o = Order.create(
        author=eip712.address_of_key(key),
        side=Side.ASK,
        price_per_hour=10**16,
        duration=3600,
        nonce=nonce,
        valid_from=int(T0),
        valid_until=int(valid_until),
        cpu_cores=1,
    )
    return codec.encode(o.signed(DOMAIN, key))


def cancel(nonce: int, key: bytes = KEY) -> bytes:
    c = OrderCancel(
        author=eip712.address_of_key(key),
        order_id=nonce.to_bytes(32, "big"),
        nonce=nonce,
        valid_from=int(T0),
        valid_until=int(T0) + 3600,
    )
    return codec.encode(c.signed(DOMAIN, key))


def validator(clock: Clock, **quota: object) -> MessageValidator:
    params = ValidatorParams(domain=DOMAIN, quota=QuotaParams(**quota))  # type: ignore[arg-type]
    return MessageValidator(params, clock=clock)


def test_params_name_the_bound() -> None:
    for bad, name in (
        ({"max_orders_per_author": 0}, "max_orders_per_author"),
        ({"max_entries": 1.5}, "max_entries"),
        ({"peer_rate": 0.0}, "peer_rate"),
        ({"peer_rate": 10.0, "peer_burst": 5.0}, "peer_burst"),
    ):
        with pytest.raises(ValueError, match=name):
            QuotaParams(**bad).validate()  # type: ignore[arg-type]


def test_author_quota_counts_until_expiry() -> None:
    q = AuthorQuota(QuotaParams(max_orders_per_author=3))
    a = b"\x01" * 20
    for i in range(3):
        assert q.admits("order", a, T0)
        q.record("order", a, T0 + 10 + i, T0)
    assert not q.admits("order", a, T0)
    assert q.counters.author_refused == 1
    assert q.admits("cancel", a, T0)  # kinds are counted apart
    assert q.admits("order", b"\x02" * 20, T0)  # and authors
    assert q.admits("order", a, T0 + 10.5)  # the first one expired
    assert q.live("order", a, T0 + 100) == 0 and len(q) == 0


def test_author_table_is_bounded() -> None:
    q = AuthorQuota(QuotaParams(max_authors=10, max_entries=25))
    for i in range(100):
        q.record("order", i.to_bytes(20, "big"), T0 + 60, T0)
        q.record("order", i.to_bytes(20, "big"), T0 + 60, T0)
    assert len(q) <= 25 and len(q._live) <= 10
    assert q.counters.forgotten_authors >= 90
    # the least recently active went first: the last author is still counted
    assert q.live("order", (99).to_bytes(20, "big"), T0) == 2


def test_rate_limit_refills_at_the_rate_and_caps_at_the_burst() -> None:
    r = PeerRateLimit(QuotaParams(peer_rate=10.0, peer_burst=20.0))
    assert sum(r.take(PEER, T0) for _ in range(50)) == 20
    assert r.counters.rate_refused == 30
    assert sum(r.take(PEER, T0 + 1.0) for _ in range(50)) == 10  # 1 s at 10/s
    assert sum(r.take(PEER, T0 + 1000.0) for _ in range(50)) == 20  # never above the burst
    assert r.take(b"other", T0 + 1.0)  # peers are apart


def test_rate_table_is_bounded() -> None:
    r = PeerRateLimit(QuotaParams(max_peers=5))
    for i in range(50):
        r.take(bytes([i]), T0)
    assert len(r) == 5 and r.counters.forgotten_peers == 45


def test_one_key_cannot_place_past_its_quota_through_the_validator() -> None:
    clock = Clock()
    v = validator(clock, max_orders_per_author=5, max_cancels_per_author=2)
    results = [v(*("/sonm/orders/1", order(n)), PEER) for n in range(8)]
    assert results == [ValidationResult.ACCEPT] * 5 + [ValidationResult.IGNORE] * 3
    assert v.counters.by_reason["author-quota"] == 3
    # another signer is untouched, and so are the flooder's cancels (counted apart)
    assert v("/sonm/orders/1", order(1, HONEST_KEY), PEER) is ValidationResult.ACCEPT
    assert [v("/sonm/orders/1", cancel(100 + n), PEER) for n in range(3)] == [
        ValidationResult.ACCEPT,
        ValidationResult.ACCEPT,
        ValidationResult.IGNORE,
    ]
    # once orders expire, the signer may place again
    clock.now = T0 + 3600 + 120
    assert v("/sonm/orders/1", order(50, valid_until=T0 + 7200), PEER) is ValidationResult.ACCEPT


def test_a_forger_cannot_fill_an_honest_signers_quota() -> None:
    v = validator(Clock(), max_orders_per_author=2)
    honest = eip712.address_of_key(HONEST_KEY)
    for n in range(10):  # signed by KEY, claiming the honest address: rejected, not counted
        o = Order.create(
            author=honest,
            side=Side.ASK,
            price_per_hour=1,
            duration=60,
            nonce=n,
            valid_from=int(T0),
            valid_until=int(T0) + 3600,
        )
        forged = dataclasses.replace(o, signature=o.signed(DOMAIN, KEY).signature)
        assert v("/sonm/orders/1", codec.encode(forged), PEER) is ValidationResult.REJECT
    assert v("/sonm/orders/1", order(1, HONEST_KEY), PEER) is ValidationResult.ACCEPT


def test_a_quota_refusal_costs_no_signature_recovery(monkeypatch: pytest.MonkeyPatch) -> None:
    v = validator(Clock(), max_orders_per_author=1)
    assert v("/sonm/orders/1", order(1), PEER) is ValidationResult.ACCEPT
    calls = []
    monkeypatch.setattr(eip712, "recover_address", lambda *a: calls.append(a))
    assert v("/sonm/orders/1", order(2), PEER) is ValidationResult.IGNORE
    assert calls == []


def test_a_peer_over_its_rate_is_ignored_and_reported() -> None:
    clock = Clock()
    v = validator(clock, peer_rate=2.0, peer_burst=3.0)
    charged: list[bytes] = []
    v.on_rate_excess = charged.append
    results = [v("/sonm/orders/1", order(n), PEER) for n in range(5)]
    assert results == [ValidationResult.ACCEPT] * 3 + [ValidationResult.IGNORE] * 2
    assert charged == [PEER, PEER] and v.counters.by_reason["peer-rate"] == 2
    assert v("/sonm/orders/1", order(9), b"peer-b") is ValidationResult.ACCEPT
    clock.now += 1.0  # two more tokens
    assert v("/sonm/orders/1", order(10), PEER) is ValidationResult.ACCEPT


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["order", "cancel"]), st.integers(0, 4), st.floats(0, 50))),
    st.integers(1, 4),
)
def test_quota_never_admits_past_the_limit(ops: list[tuple[str, int, float]], limit: int) -> None:
    q = AuthorQuota(QuotaParams(max_orders_per_author=limit, max_cancels_per_author=limit))
    now = T0
    for kind, who, life in ops:
        author = bytes([who]) * 20
        if q.admits(kind, author, now):
            q.record(kind, author, now + life, now)
        assert q.live(kind, author, now) <= limit
        now += 1.0
