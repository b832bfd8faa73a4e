"""Validation in worker threads (p2pnode/validation_pool.py) with the real validator.

Checked: the verdicts are those of validating one message at a time (replays in one
batch, bad signatures, expired messages, the author quota), they reach the router
in arrival order whichever worker finishes first, a validator step that raises is a
REJECT, and a backlog over high water holds a reader until it drains.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time

import trio

from gossip import codec, eip712
from gossip.eip712 import SigningDomain
from gossip.orders import Order, Side
from gossip.quota import QuotaParams
from gossip.topics import ORDERS_TOPIC
from gossip.validation import ValidationResult
from gossip.validators import MessageValidator, ValidationJob, make_validator
from p2pnode.validation_pool import PoolParams, ValidationPool

DOMAIN = SigningDomain(chain_id=31337)
NOW = 1_700_000_000


def _order(
    key: bytes, nonce: int, *, valid_from: int = NOW - 10, valid_until: int = NOW + 3600
) -> Order:
    return Order.create(
        author=eip712.address_of_key(key),
        side=Side.ASK,
        price_per_hour=10**15 + nonce,
        duration=3600,
        nonce=nonce,
        valid_from=valid_from,
        valid_until=valid_until,
        cpu_cores=4,
        properties={"os": "linux"},
    )


def _signed(key: bytes, nonce: int, **kw: int) -> bytes:
    return codec.encode(_order(key, nonce, **kw).signed(DOMAIN, key))


def _mixed() -> list[bytes]:
    """Good orders, a replay of one inside the batch, a forged signature, an expired
    order, a non-canonical encoding, and one author past a quota of 3."""
    alice, bob, carol = (hashlib.sha256(n).digest() for n in (b"a", b"b", b"c"))
    good = [_signed(alice, n) for n in range(1, 6)]
    forged = _order(bob, 1).signed(DOMAIN, carol)  # carol signs bob's order
    same_nonce = _signed(alice, 3)  # identical bytes would be a router duplicate
    other = codec.encode(
        dataclasses.replace(codec.decode(same_nonce), geo="DE").signed(DOMAIN, alice)
    )  # type: ignore[arg-type]
    return [
        *good[:3],
        other,  # nonce 3 again, other content: a replay
        codec.encode(forged),
        _signed(bob, 2, valid_from=NOW - 7200, valid_until=NOW - 3600),  # expired
        b"\xff" + good[3][1:],  # not msgpack of an order
        *good[3:],  # alice's 4th and 5th: over the quota of 3
        *(_signed(bob, n) for n in range(10, 14)),
    ]


def _validator() -> MessageValidator:
    return make_validator(
        DOMAIN, clock=lambda: float(NOW), quota=QuotaParams(max_orders_per_author=3)
    )


def _run_pool(
    validator: MessageValidator, payloads: list[bytes], threads: int = 2
) -> list[tuple[bytes, ValidationResult]]:
    got: list[tuple[bytes, ValidationResult]] = []

    async def main() -> None:
        done = trio.Event()

        def deliver(msg_id: bytes, result: ValidationResult) -> None:
            got.append((msg_id, result))
            if len(got) == len(payloads):
                done.set()

        pool = ValidationPool(validator, deliver, lambda: None, PoolParams(threads=threads))
        pool.start()
        for i, p in enumerate(payloads):
            pool.submit(b"%d" % i, ORDERS_TOPIC, p, b"peer")
        with trio.fail_after(30):
            await done.wait()
        pool.close()

    trio.run(main)
    return got


def test_pooled_verdicts_equal_one_at_a_time_and_keep_arrival_order() -> None:
    payloads = _mixed()
    sequential = _validator()
    expected = [sequential("/sonm/orders/1", p, b"peer") for p in payloads]
    assert ValidationResult.ACCEPT in expected and ValidationResult.REJECT in expected
    assert ValidationResult.IGNORE in expected

    pooled = _validator()
    got = _run_pool(pooled, payloads)

    assert [mid for mid, _ in got] == [b"%d" % i for i in range(len(payloads))]
    assert [r for _, r in got] == expected
    assert pooled.counters.by_reason == sequential.counters.by_reason
    assert pooled.counters.by_reason["replay"] == 1
    assert pooled.counters.by_reason["author-quota"] == 3  # alice 2, bob 1
    assert pooled.counters.by_reason["wrong-signer"] == 1
    assert pooled.counters.by_reason["schema:message"] == 1
    assert pooled.counters.by_reason["expired"] == 1


class _GatedValidator(MessageValidator):
    """The real validator, whose first job's prepare waits until a later one is done:
    the first message finishes last."""

    def __init__(self) -> None:
        v = _validator()
        super().__init__(v.params, clock=v.clock)
        self.first_started = threading.Event()
        self.later_done = threading.Event()
        self._calls = 0
        self._lock = threading.Lock()

    def prepare(self, job: ValidationJob) -> None:
        with self._lock:
            self._calls += 1
            mine = self._calls
        if mine == 1:
            self.first_started.set()
            assert self.later_done.wait(10)
            super().prepare(job)
        else:
            super().prepare(job)
            self.later_done.set()


def test_a_late_first_verdict_holds_back_the_ones_after_it() -> None:
    key = hashlib.sha256(b"k").digest()
    payloads = [_signed(key, 1), _signed(key, 2)]
    validator = _GatedValidator()
    got: list[bytes] = []

    async def main() -> None:
        pool = ValidationPool(validator, lambda mid, r: got.append(mid), lambda: None)
        pool.start()
        pool.submit(b"first", ORDERS_TOPIC, payloads[0], b"p")
        await trio.sleep(0)  # the flush: one chunk each, so both threads work at once
        await trio.to_thread.run_sync(validator.first_started.wait, 10)
        pool.submit(b"second", ORDERS_TOPIC, payloads[1], b"p")
        await trio.to_thread.run_sync(validator.later_done.wait, 10)
        await trio.sleep(0.05)
        assert got in ([], [b"first", b"second"])  # never the second alone
        with trio.fail_after(10):
            while len(got) < 2:
                await trio.sleep(0.01)
        pool.close()

    trio.run(main)
    assert got == [b"first", b"second"]


class _CrashingValidator(MessageValidator):
    def prepare(self, job: ValidationJob) -> None:
        raise RuntimeError("boom")


def test_a_crashing_step_rejects_and_is_counted() -> None:
    v = _validator()
    crashing = _CrashingValidator(v.params, clock=v.clock)
    got: list[ValidationResult] = []

    async def main() -> None:
        pool = ValidationPool(crashing, lambda mid, r: got.append(r), lambda: None)
        pool.start()
        pool.submit(b"x", ORDERS_TOPIC, _signed(b"\x01" * 32, 1), b"p")
        with trio.fail_after(10):
            while not got:
                await trio.sleep(0.01)
        assert pool.metrics.validation_failures == 1
        pool.close()

    trio.run(main)
    assert got == [ValidationResult.REJECT]


def test_a_reader_waits_while_the_backlog_is_over_high_water() -> None:
    key = hashlib.sha256(b"bp").digest()
    payloads = [_signed(key, n) for n in range(1, 41)]
    validator = make_validator(DOMAIN, clock=lambda: float(NOW))
    got: list[bytes] = []

    async def main() -> None:
        pool = ValidationPool(
            validator,
            lambda mid, r: got.append(mid),
            lambda: None,
            PoolParams(threads=1, high_water=20, low_water=5),
        )
        pool.start()
        for i, p in enumerate(payloads):
            pool.submit(b"%d" % i, ORDERS_TOPIC, p, b"p")
        assert pool.backlog == 40
        t0 = time.monotonic()
        with trio.fail_after(30):
            await pool.wait_for_room()
        assert pool.backlog <= 5  # held until under low water
        assert time.monotonic() >= t0
        assert pool.metrics.validation_backpressure_waits == 1
        assert pool.metrics.validation_backlog_peak == 40
        with trio.fail_after(30):
            while len(got) < 40:
                await trio.sleep(0.01)
        await pool.wait_for_room()  # under high water: returns at once, not counted
        assert pool.metrics.validation_backpressure_waits == 1
        pool.close()

    trio.run(main)
    assert got == [b"%d" % i for i in range(40)]
