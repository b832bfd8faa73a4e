"""Validation in worker threads (p2pnode/validation_pool.py) with the real validator.

Checked: the verdicts are those of validating one message at a time (replays in one
batch, bad signatures, expired messages, the author quota), they reach the router
in arrival order whichever worker finishes first, a validator step that raises is a
REJECT, and a backlog over high water holds a reader until it drains.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable

import msgpack
import pytest
import trio

from gossip import codec, eip712
from gossip.eip712 import SigningDomain
from gossip.orders import Order, Side
from gossip.quota import QuotaParams
from gossip.topics import ORDERS_TOPIC
from gossip.validation import ValidationResult
from gossip.validators import (
    MessageValidator,
    ValidationJob,
    apply_prepared,
    make_validator,
    prepare_job,
    prepared_fields,
)
from p2pnode import validation_worker
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


def _one_at_a_time(payloads: list[bytes]) -> tuple[MessageValidator, list[ValidationResult]]:
    """The reference: a validator that checked `payloads` one at a time, and its verdicts."""
    sequential = _validator()
    return sequential, [sequential(ORDERS_TOPIC, p, b"peer") for p in payloads]


def _run_pool(
    validator: MessageValidator,
    payloads: list[bytes],
    threads: int = 2,
    mode: str = "threads",
    params: PoolParams | None = None,
    before: Callable[[ValidationPool], Awaitable[None]] | None = None,
    after: Callable[[ValidationPool], Awaitable[None]] | None = None,
) -> list[tuple[bytes, ValidationResult]]:
    got: list[tuple[bytes, ValidationResult]] = []

    async def main() -> None:
        done = trio.Event()

        def deliver(msg_id: bytes, result: ValidationResult) -> None:
            got.append((msg_id, result))
            if len(got) == len(payloads):
                done.set()

        pool = ValidationPool(
            validator, deliver, lambda: None, params or PoolParams(threads=threads, mode=mode)
        )
        pool.start()
        if before is not None:
            await before(pool)
        for i, p in enumerate(payloads):
            pool.submit(b"%d" % i, ORDERS_TOPIC, p, b"peer")
        with trio.fail_after(30):
            await done.wait()
        if after is not None:
            await after(pool)
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


# ---------------------------------------------------------------- worker processes


def test_fields_from_another_process_fill_the_job_as_prepare_does() -> None:
    """prepare_job (as the child runs it) -> prepared_fields -> msgpack -> apply_prepared
    gives the job `prepare` gives, for every kind of outcome in the mixed batch."""
    v = _validator()
    for p in [*_mixed(), b"", b"\x93\x01\x01\x01"]:
        here = ValidationJob(ORDERS_TOPIC, p, float(NOW))
        prepare_job(here, DOMAIN, v.params.max_clock_skew)
        there = ValidationJob(ORDERS_TOPIC, p, float(NOW))
        wire = msgpack.packb(prepared_fields(here), use_bin_type=True)
        apply_prepared(there, msgpack.unpackb(wire, raw=False, use_list=False))
        assert there == here


def test_preparing_step_by_step_leaves_each_job_as_one_at_a_time_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """prepare_jobs (decode all, digest all, recover all) fills every job as
    prepare_job does, and a step that raises is reported for its job alone."""
    from gossip import validators

    v = _validator()
    payloads = [*_mixed(), b"", b"\x93\x01\x01\x01"]
    one = [ValidationJob(ORDERS_TOPIC, p, float(NOW)) for p in payloads]
    for job in one:
        prepare_job(job, DOMAIN, v.params.max_clock_skew)
    steps = [ValidationJob(ORDERS_TOPIC, p, float(NOW)) for p in payloads]
    assert validators.prepare_jobs(steps, DOMAIN, v.params.max_clock_skew) == [None] * len(steps)
    assert steps == one
    assert sum(j.signer is not None for j in steps) >= 10  # most were recovered

    unlucky = codec.decode(payloads[1]).signature
    recover = validators._recover

    def recover_but_one(job: ValidationJob, msg: object, digest: bytes) -> None:
        if getattr(msg, "signature", None) == unlucky:
            raise RuntimeError("boom")
        recover(job, msg, digest)  # type: ignore[arg-type]

    monkeypatch.setattr(validators, "_recover", recover_but_one)
    again = [ValidationJob(ORDERS_TOPIC, p, float(NOW)) for p in payloads]
    errors = validators.prepare_jobs(again, DOMAIN, v.params.max_clock_skew)
    assert [i for i, e in enumerate(errors) if e is not None] == [1]
    assert isinstance(errors[1], RuntimeError)
    assert again[:1] + again[2:] == one[:1] + one[2:]
    # the child answers nil for that job (the pool REJECTs it), the fields for the rest
    request = msgpack.packb([[ORDERS_TOPIC, float(NOW), p] for p in payloads], use_bin_type=True)
    body = validation_worker.answer(DOMAIN, v.params.max_clock_skew, request)
    fields = msgpack.unpackb(body, raw=False, use_list=False)
    assert fields[1] is None
    assert [f for i, f in enumerate(fields) if i != 1] == [
        prepared_fields(j) for i, j in enumerate(one) if i != 1
    ]


def test_worker_process_protocol_over_pipes() -> None:
    """The child's side: settings, a ready answer, one answer per request, in order;
    a broken frame is an error, an empty one the end."""
    good = _signed(hashlib.sha256(b"w").digest(), 1)
    frames = io.BytesIO()
    validation_worker.write_frame(
        frames, msgpack.packb([str(DOMAIN.chain_id), DOMAIN.name, DOMAIN.version, 60.0])
    )
    request = [[ORDERS_TOPIC, float(NOW), good], [ORDERS_TOPIC, float(NOW), b"junk"]]
    validation_worker.write_frame(frames, msgpack.packb(request, use_bin_type=True))
    validation_worker.write_frame(frames, b"")
    out = io.BytesIO()
    validation_worker.serve(io.BytesIO(frames.getvalue()), out)
    answers = io.BytesIO(out.getvalue())
    assert validation_worker.read_frame(answers) == b""  # ready
    body = validation_worker.read_frame(answers)
    assert body is not None
    ok, junk = msgpack.unpackb(body, raw=False)
    assert ok[0] == "" and ok[4] == codec.decode(good).signer
    assert junk[0] == "reject" and junk[1] == "schema:message"
    assert validation_worker.read_frame(answers) is None

    with pytest.raises(validation_worker.FrameError, match="limit"):
        validation_worker.read_frame(io.BytesIO(b"\xff\xff\xff\xff"))
    with pytest.raises(validation_worker.FrameError, match="into a 10-byte frame"):
        validation_worker.read_frame(io.BytesIO(b"\x00\x00\x00\x0aabc"))
    with pytest.raises(validation_worker.FrameError, match="length prefix"):
        validation_worker.read_frame(io.BytesIO(b"\x00\x00"))


async def _children_started(pool: ValidationPool) -> None:
    with trio.fail_after(60):
        while pool.metrics.validation_worker_processes < pool.params.threads:
            await trio.sleep(0.01)


def test_processes_give_the_verdicts_of_one_at_a_time_in_arrival_order() -> None:
    payloads = _mixed()
    sequential, expected = _one_at_a_time(payloads)
    pooled = _validator()
    pids: list[int] = []

    async def started(pool: ValidationPool) -> None:
        await _children_started(pool)
        pids.extend(pool.child_pids)

    got = _run_pool(pooled, payloads, mode="processes", before=started)

    assert [mid for mid, _ in got] == [b"%d" % i for i in range(len(payloads))]
    assert [r for _, r in got] == expected
    assert pooled.counters.by_reason == sequential.counters.by_reason
    assert len(pids) == 2 and os.getpid() not in pids
    for pid in pids:  # close() ended them
        _wait_gone(pid)


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    raise AssertionError(f"worker process {pid} still running")


def _signal_children(
    sig: int, pids: list[int], pools: list[ValidationPool]
) -> Callable[[ValidationPool], Awaitable[None]]:
    """A `before` hook: once the children are up, send each `sig`; note their pids
    and the pool."""

    async def hook(pool: ValidationPool) -> None:
        await _children_started(pool)
        for pid in pool.child_pids:
            os.kill(pid, sig)
            pids.append(pid)
        pools.append(pool)

    return hook


def test_a_worker_process_that_dies_loses_nothing_and_is_replaced() -> None:
    payloads = _mixed()
    sequential, expected = _one_at_a_time(payloads)
    pooled = _validator()
    killed: list[int] = []
    metrics: list[ValidationPool] = []
    kill_them = _signal_children(signal.SIGKILL, killed, metrics)

    async def replaced(pool: ValidationPool) -> None:
        with trio.fail_after(60):  # the replacement starts once the chunk is done
            while pool.metrics.validation_worker_processes < 2:
                await trio.sleep(0.01)
        assert pool.child_pids and not set(pool.child_pids) & set(killed)

    got = _run_pool(pooled, payloads, threads=1, mode="processes", before=kill_them, after=replaced)

    assert [r for _, r in got] == expected  # prepared in the thread meanwhile
    assert pooled.counters.by_reason == sequential.counters.by_reason
    m = metrics[0].metrics
    assert m.validation_worker_failures == 1
    assert m.validation_worker_processes == 2  # the first and its replacement
    assert m.validation_failures == 0


def test_pool_params_and_validator_are_checked_for_process_mode() -> None:
    with pytest.raises(ValueError, match="mode: one of threads, processes"):
        PoolParams(mode="fibres").validate()

    class Bare:
        def admit(self, topic: str, data: bytes, from_peer: bytes) -> object:
            return ValidationResult.ACCEPT

        def prepare(self, job: object) -> None:
            pass

        def complete(self, job: object) -> ValidationResult:
            return ValidationResult.ACCEPT

    with pytest.raises(TypeError, match="has no worker_settings"):
        ValidationPool(Bare(), lambda m, r: None, lambda: None, PoolParams(mode="processes"))


class _PoisonRequest(MessageValidator):
    """Spoils one request: `[topic]` alone makes the child's unpacking raise, so it
    exits mid-run with requests in flight, as a crash would; an object msgpack
    cannot pack fails the request on this side, before it is sent."""

    poisoned = False
    poison = "crash"

    def job_request(self, job: ValidationJob) -> list[object]:
        if not self.poisoned:
            self.poisoned = True
            return [job.topic] if self.poison == "crash" else [object()]
        return super().job_request(job)


@pytest.mark.parametrize("poison", ["crash", "unpackable"])
def test_a_worker_process_lost_with_requests_in_flight_loses_nothing(poison: str) -> None:
    payloads = _mixed()
    sequential, expected = _one_at_a_time(payloads)
    v = _validator()
    pooled = _PoisonRequest(v.params, clock=v.clock)
    pooled.poison = poison
    pools: list[ValidationPool] = []

    async def started(pool: ValidationPool) -> None:
        await _children_started(pool)
        pools.append(pool)

    got = _run_pool(pooled, payloads, threads=1, mode="processes", before=started)

    assert pooled.poisoned
    assert [r for _, r in got] == expected
    assert pooled.counters.by_reason == sequential.counters.by_reason
    assert pools[0].metrics.validation_worker_failures == 1
    assert pools[0].metrics.validation_failures == 0


def test_a_worker_process_that_stops_answering_is_given_up_on() -> None:
    """A stopped child (SIGSTOP: alive, never answering) costs its chunk a timeout,
    not the verdicts: the chunk is prepared in the thread and the child killed."""
    payloads = _mixed()
    _, expected = _one_at_a_time(payloads)
    stopped: list[int] = []
    started_at: list[float] = []
    stop = _signal_children(signal.SIGSTOP, stopped, [])

    async def stop_them(pool: ValidationPool) -> None:
        await stop(pool)
        started_at.append(time.monotonic())

    async def given_up(pool: ValidationPool) -> None:
        assert time.monotonic() - started_at[0] >= 0.4  # it waited for the child first
        assert pool.metrics.validation_worker_failures == 1

    params = PoolParams(threads=1, mode="processes", child_timeout_s=0.5)
    got = _run_pool(_validator(), payloads, params=params, before=stop_them, after=given_up)

    assert [r for _, r in got] == expected
    for pid in stopped:
        _wait_gone(pid)  # killed, not left stopped


def test_pool_params_bound_the_child_timeout() -> None:
    with pytest.raises(ValueError, match="child_timeout_s"):
        PoolParams(child_timeout_s=0.0).validate()
