"""Builders for reputation core tests: nodes with keys, hubs, agreements, virtual time."""

from __future__ import annotations

import random

from gossip.eip712 import SigningDomain
from reputation.core import ReputationCore
from reputation.evidence import Agreement, Payment, Verdict
from reputation.messages import KeySigner, TrustAnswer
from reputation.params import ReputationParams

DOMAIN = SigningDomain(chain_id=31337)
HOUR = 3600.0
DAY = 24 * HOUR
PERIOD = int(DAY)
RATE = 1000  # per hour
HUB = bytes.fromhex("aa" * 20)
OTHER_HUB = bytes.fromhex("bb" * 20)


def key(n: int) -> bytes:
    return n.to_bytes(32, "big")


def node(n: int, params: ReputationParams | None = None) -> ReputationCore:
    return ReputationCore(
        params or ReputationParams(), DOMAIN, random.Random(n), signer=KeySigner(key(n))
    )


def sim_node(address: bytes, params: ReputationParams | None = None) -> ReputationCore:
    return ReputationCore(params or ReputationParams(), DOMAIN, random.Random(0), address=address)


def addr(n: int) -> bytes:
    return n.to_bytes(20, "big")


def work_for(core: ReputationCore, hub: bytes, start: float = 0.0) -> Agreement:
    a = Agreement(core.address, hub, RATE, PERIOD, start)
    core.add_agreement(a)
    return a


def pay(core: ReputationCore, hub: bytes, amount: int, at: float) -> None:
    core.payment_observed(Payment(hub, core.address, amount, at))


def answer(
    answerer: bytes, hub: bytes, verdict: Verdict, now: float, last_seen: float | None = None
) -> TrustAnswer:
    return TrustAnswer(
        answerer,
        hub,
        b"\x00" * 32,
        verdict,
        1,
        RATE * 24,
        PERIOD,
        int(now if last_seen is None else last_seen),
        int(now),
        int(now) + 600,
    )
