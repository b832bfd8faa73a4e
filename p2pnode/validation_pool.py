"""Message validation off the event loop: worker threads or processes, verdicts in order.

Why: a signature recovery costs tens of µs and decode plus digest as much again;
run on the trio loop, a flood of signed messages holds the loop (and so the local
API, the timers and every other peer's streams) for as long as it takes. The costly
step is stateless (`PooledValidator.prepare`: decode, EIP-712 digest, secp256k1
recovery), so it runs beside the loop, on the machine's other cores.

How:

- on the loop, in arrival order, `admit` (the peer's rate, per-topic handlers)
  decides at once or makes a job; jobs are queued in arrival order;
- jobs go to the workers in chunks (a queue.SimpleQueue; a chunk per worker of
  what one router step produced, so a frame of 100 messages is one hand-over per
  worker, not 100);
- a worker runs `prepare` on each job of its chunk, marks it done and, unless a
  wake-up is already on its way, asks the loop (trio's run_sync_soon) to collect;
- the loop takes finished jobs from the head of the queue only, so verdicts reach
  the router (`validation_done`) in the order the messages arrived, whichever
  worker finished first; `complete` (replay, quota, hub, spending the nonce) runs
  there, on the loop, one job at a time.

Threads or processes (`PoolParams.mode`): in "threads" mode a worker thread runs
`prepare` itself, and only the recovery runs beside the loop (libsecp256k1
releases the interpreter lock; decode and digest hold it). In "processes" mode
each worker thread hands its chunks to a child process of its own
(p2pnode/validation_worker.py: raw bytes out, [verdict, reason, kind, digest,
signer] back, two requests in flight) and waits on the pipe without the lock; the
thread then builds each message again from the same bytes for the router
(`apply_prepared`), which costs less than sending the object would. A child that
dies, answers out of frame or does not answer within `child_timeout_s` is killed
and its chunks prepared in the thread itself, so nothing is lost; a new child is
started, up to MAX_RESTARTS per worker, after which that worker stays a thread.

Bounds and back-pressure: the router holds at most `max_pending_validations`
messages waiting for a verdict (beyond it a message is dropped unseen and counted
as router_msgs_validation_overflow). Before that, once `high_water` jobs wait,
the driver's stream readers stop reading until the backlog is under `low_water`:
the peers' streams then fill and TCP pushes back on them. Each such pause is
counted (driver_validation_backpressure_waits and its seconds).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import msgpack
import trio

from gossip.validation import ValidationResult
from p2pnode.validation_worker import FRAME_LENGTH, FrameError, body_length, frame_of

log = logging.getLogger(__name__)

# Jobs one worker takes per hand-over, at most: large enough that the hand-over
# is cheap next to the work, small enough that verdicts flow back steadily.
MAX_CHUNK = 32
# Children one worker starts after its first, at most, before it stays a thread.
MAX_RESTARTS = 5
# Jobs one request to a child carries, at most (chunks waiting are joined up to it).
MAX_REQUEST = 128
# Requests a worker thread has sent its child before it reads the first answer.
# Two keep the child busy while the thread builds the last answer's messages. The
# answers (~100 bytes a job) fit in the pipe's buffer, so the child never blocks
# writing one while the thread writes the next request.
IN_FLIGHT = 2
MODES = ("threads", "processes")


class PooledValidator(Protocol):
    """What the pool needs of a validator (gossip.validators.MessageValidator)."""

    def admit(self, topic: str, data: bytes, from_peer: bytes) -> Any: ...

    def prepare(self, job: Any, /) -> None: ...

    def complete(self, job: Any, /) -> ValidationResult: ...


class ProcessPooledValidator(PooledValidator, Protocol):
    """What "processes" mode needs besides (gossip.validators.MessageValidator)."""

    def worker_settings(self) -> list[Any]: ...

    def job_request(self, job: Any, /) -> list[Any]: ...

    def apply_prepared(self, job: Any, fields: Any, /) -> None: ...


@dataclass(frozen=True)
class PoolParams:
    threads: int = 2  # workers: threads, each with a child process in "processes" mode
    mode: str = "threads"
    # "processes" mode: a child that takes longer than this to take a request or
    # answer one is stopped and its chunks prepared in the thread
    child_timeout_s: float = 10.0
    high_water: int = 1024  # jobs waiting: readers pause
    # jobs waiting: readers resume. Above what two workers hold in flight (2 x
    # IN_FLIGHT x MAX_REQUEST = 512): resumed lower, the queue runs dry while the
    # first frames are read again and both children idle (1024/256 validated
    # 8-10 % fewer orders a second than 1024/768 in benchmarks/validation.py).
    low_water: int = 768

    def validate(self) -> PoolParams:
        if not 1 <= self.threads <= 64:
            raise ValueError(f"threads: must be in [1, 64], got {self.threads}")
        if not 0.01 <= self.child_timeout_s <= 3600.0:
            raise ValueError(
                f"child_timeout_s: must be in [0.01, 3600], got {self.child_timeout_s}"
            )
        if self.mode not in MODES:
            raise ValueError(f"mode: one of {', '.join(MODES)} expected, got {self.mode!r}")
        if not 1 <= self.low_water <= self.high_water:
            raise ValueError(
                f"low_water: must be in [1, high_water={self.high_water}], got {self.low_water}"
            )
        return self


@dataclass(slots=True)
class PoolMetrics:
    threads: int = 0
    validation_jobs: int = 0  # messages handed to the workers
    validation_backlog: int = 0  # waiting for a verdict now (gauge)
    validation_backlog_peak: int = 0
    validation_chunks: int = 0
    validation_wakeups: int = 0
    validation_failures: int = 0  # a validator step raised: rejected
    validation_backpressure_waits: int = 0
    validation_backpressure_s: float = 0.0
    validation_worker_processes: int = 0  # children started (restarts included)
    validation_worker_failures: int = 0  # children that died, broke the framing or timed out


class _Entry:
    __slots__ = ("done", "failed", "job", "msg_id", "result")

    def __init__(self, msg_id: bytes, job: Any, result: ValidationResult | None) -> None:
        self.msg_id = msg_id
        self.job = job
        self.result = result  # final already (from admit), or set by a failed prepare
        self.done = result is not None
        self.failed = False


class ValidationPool:
    """Worker threads for `validator.prepare`; see the module docstring.

    `deliver(msg_id, result)` is called on the loop, in arrival order, with each
    verdict; `after()` once per batch of verdicts (the driver acts on the router's
    new output there).
    """

    def __init__(
        self,
        validator: PooledValidator,
        deliver: Callable[[bytes, ValidationResult], None],
        after: Callable[[], None],
        params: PoolParams | None = None,
    ) -> None:
        self.params = (params or PoolParams()).validate()
        self.validator = validator
        self._deliver = deliver
        self._after = after
        self.metrics = PoolMetrics(threads=self.params.threads)
        self._order: deque[_Entry] = deque()  # loop only
        self._unsent: list[_Entry] = []  # loop only: admitted, not yet handed over
        self._inbox: queue.SimpleQueue[list[_Entry] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._token: trio.lowlevel.TrioToken | None = None
        self._wake_pending = False  # a collect is scheduled (set by workers, cleared by it)
        self._flush_pending = False  # loop only: a flush is scheduled
        self._drained = trio.Event()
        self._closed = False
        self._count_lock = threading.Lock()  # the metrics workers write, and _children
        self._children: list[_Child] = []  # "processes" mode: the live ones
        if self.params.mode == "processes":
            for name in ("worker_settings", "job_request", "apply_prepared"):
                if not callable(getattr(validator, name, None)):
                    raise TypeError(f'"processes" mode: the validator has no {name}()')

    # ------------------------------------------------------------ lifecycle (loop)

    def start(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        work = self._work if self.params.mode == "threads" else self._work_with_child
        for i in range(self.params.threads):
            t = threading.Thread(target=work, name=f"validate-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def close(self) -> None:
        """Stop the workers (what they hold is dropped: the router goes with us)."""
        self._closed = True
        for _ in self._threads:
            self._inbox.put(None)
        self._threads.clear()
        self._drained.set()

    # ------------------------------------------------------------ the loop's side

    @property
    def backlog(self) -> int:
        return len(self._order)

    def submit(self, msg_id: bytes, topic: str, data: bytes, from_peer: bytes) -> None:
        """A message the router asks a verdict for. What one loop step submits is
        handed over together when that step yields (`flush`)."""
        try:
            job = self.validator.admit(topic, data, from_peer)
        except Exception:
            log.exception("validator admit failed; rejecting")
            self.metrics.validation_failures += 1
            job = ValidationResult.REJECT
        if isinstance(job, ValidationResult):
            entry = _Entry(msg_id, None, job)
        else:
            entry = _Entry(msg_id, job, None)
            self._unsent.append(entry)
            self.metrics.validation_jobs += 1
        self._order.append(entry)
        m = self.metrics
        m.validation_backlog = len(self._order)
        if m.validation_backlog > m.validation_backlog_peak:
            m.validation_backlog_peak = m.validation_backlog
        if not self._flush_pending and self._token is not None:
            self._flush_pending = True
            self._token.run_sync_soon(self.flush)

    def flush(self) -> None:
        """Hand what was submitted to the workers, a chunk per worker; and if verdicts
        decided at admission head the queue, have them collected."""
        self._flush_pending = False
        unsent = self._unsent
        if unsent:
            self._unsent = []
            n = len(unsent)
            size = min(MAX_CHUNK, max(1, -(-n // self.params.threads)))
            for i in range(0, n, size):
                self._inbox.put(unsent[i : i + size])
                self.metrics.validation_chunks += 1
        if self._order and self._order[0].done:
            self._schedule_collect()

    async def wait_for_room(self) -> None:
        """Pause the caller (a stream reader) while the backlog is over high water."""
        if len(self._order) < self.params.high_water or self._closed:
            return
        self.metrics.validation_backpressure_waits += 1
        t0 = trio.current_time()
        while len(self._order) > self.params.low_water and not self._closed:
            if self._drained.is_set():
                self._drained = trio.Event()
            await self._drained.wait()
        self.metrics.validation_backpressure_s += trio.current_time() - t0

    def collect(self) -> None:
        """Hand every verdict at the head of the queue to the router, in order."""
        self._wake_pending = False  # first: a worker finishing from now on wakes us again
        order = self._order
        if not order or not order[0].done:
            return
        self.metrics.validation_wakeups += 1
        validator = self.validator
        deliver = self._deliver
        while order and order[0].done:
            e = order.popleft()
            result = e.result
            if e.failed:
                self.metrics.validation_failures += 1
            if result is None:
                try:
                    result = validator.complete(e.job)
                except Exception:
                    log.exception("validator complete failed; rejecting")
                    self.metrics.validation_failures += 1
                    result = ValidationResult.REJECT
            deliver(e.msg_id, result)
        self.metrics.validation_backlog = len(order)
        if len(order) <= self.params.low_water:
            self._drained.set()
        self._after()

    # ------------------------------------------------------------ the workers' side

    def _schedule_collect(self) -> None:
        if self._wake_pending or self._token is None:
            return
        self._wake_pending = True
        with contextlib.suppress(trio.RunFinishedError):  # the loop has ended: nothing to do
            self._token.run_sync_soon(self.collect)

    def _work(self) -> None:
        """ "threads" mode: this thread prepares its chunks itself."""
        inbox = self._inbox
        while True:
            chunk = inbox.get()
            if chunk is None:
                return
            self._finish(chunk, None)

    def _work_with_child(self) -> None:
        """ "processes" mode: this thread's chunks go to its child process.

        Up to IN_FLIGHT requests are sent before the first answer is read, so the
        child works on the next while this thread builds the messages of the last
        (and waits for the interpreter lock to do it)."""
        validator = cast(ProcessPooledValidator, self.validator)
        settings = msgpack.packb(validator.worker_settings(), use_bin_type=True)
        inbox = self._inbox
        child = self._start_child(settings)
        restarts = 0
        sent: deque[list[_Entry]] = deque()  # sent to the child, answers awaited, in order
        ending = False
        try:
            while True:
                while not ending and len(sent) < IN_FLIGHT:  # wait only with none in flight
                    try:
                        chunk = inbox.get() if not sent else inbox.get_nowait()
                    except queue.Empty:
                        break
                    if chunk is None:
                        ending = True
                        break
                    chunk, ending = _joined(chunk, inbox)
                    if child is None:
                        self._finish(chunk, None)
                        continue
                    try:
                        request = [validator.job_request(e.job) for e in chunk]
                        child.send(msgpack.packb(request, use_bin_type=True))
                    except Exception as exc:  # a dead pipe, or a request that will not pack
                        sent.append(chunk)
                        child, restarts = self._replace(child, exc, settings, restarts, sent)
                        continue
                    sent.append(chunk)
                if not sent:
                    if ending:
                        return
                    continue
                assert child is not None  # what was sent went to this child
                try:
                    answers = child.receive()
                    if type(answers) is not tuple or len(answers) != len(sent[0]):
                        raise FrameError("an answer per job expected")
                except Exception as exc:  # a dead pipe, a broken frame, an answer that won't parse
                    child, restarts = self._replace(child, exc, settings, restarts, sent)
                    continue
                self._finish(sent.popleft(), answers)
        finally:
            if child is not None:
                self._forget(child)

    def _finish(self, chunk: list[_Entry], answers: tuple[Any, ...] | None) -> None:
        """Fill the chunk's jobs from a child's answers (None: prepare them here), mark
        them done and have the loop collect. A step that raises makes its job a
        REJECT, counted by the loop when it meets the verdict."""
        validator = cast(ProcessPooledValidator, self.validator)  # threads: prepare only
        for i, e in enumerate(chunk):
            try:
                if answers is None:
                    validator.prepare(e.job)
                elif answers[i] is None:
                    raise RuntimeError("prepare raised in the worker process")
                else:
                    validator.apply_prepared(e.job, answers[i])
            except Exception:
                log.exception("validator prepare failed; rejecting")
                e.result = ValidationResult.REJECT
                e.failed = True
            e.done = True
        if not self._closed:
            self._schedule_collect()

    def _replace(
        self,
        child: _Child,
        exc: Exception,
        settings: bytes,
        restarts: int,
        sent: deque[list[_Entry]],
    ) -> tuple[_Child | None, int]:
        """A child failed: what it held is prepared here, and another started (up to
        MAX_RESTARTS)."""
        log.warning("validation worker process failed (%s); restarting it", exc)
        with self._count_lock:
            self.metrics.validation_worker_failures += 1
        self._forget(child)
        while sent:
            self._finish(sent.popleft(), None)
        if restarts < MAX_RESTARTS and not self._closed:
            return self._start_child(settings), restarts + 1
        return None, restarts

    @property
    def child_pids(self) -> list[int]:
        """The worker processes now running ("processes" mode)."""
        with self._count_lock:
            return [c.proc.pid for c in self._children]

    def _forget(self, child: _Child) -> None:
        with self._count_lock:
            if child in self._children:
                self._children.remove(child)
        child.stop()

    def _start_child(self, settings: bytes) -> _Child | None:
        try:
            child = _Child(settings, self.params.child_timeout_s)
        except OSError as exc:
            log.warning("validation worker process did not start (%s); validating in a thread", exc)
            return None
        with self._count_lock:
            self.metrics.validation_worker_processes += 1
            self._children.append(child)
        return child


def _joined(
    chunk: list[_Entry], inbox: queue.SimpleQueue[list[_Entry] | None]
) -> tuple[list[_Entry], bool]:
    """The chunk with what else waits in the inbox, up to MAX_REQUEST jobs (a round
    trip to a child costs about what a few messages do); and whether the end
    (None) was taken meanwhile."""
    while len(chunk) < MAX_REQUEST:
        try:
            more = inbox.get_nowait()
        except queue.Empty:
            return chunk, False
        if more is None:
            return chunk, True
        chunk = chunk + more
    return chunk, False


class _Child:
    """One worker process (p2pnode/validation_worker.py), used by one thread only.

    Its pipes are non-blocking and every wait on them has a deadline (`timeout_s`):
    a child that stops answering (stopped, or stuck) is given up on like one that
    died, instead of holding its thread, and with it the verdicts after its chunk,
    for ever."""

    def __init__(self, settings: bytes, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "p2pnode.validation_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        os.set_blocking(self._in, False)
        os.set_blocking(self._out, False)
        self._poll_in = select.poll()
        self._poll_in.register(self._out, select.POLLIN)
        self._poll_out = select.poll()
        self._poll_out.register(self._in, select.POLLOUT)
        try:
            self.send(settings)
            if self._read_frame() != b"":
                raise FrameError("no ready answer")
        except (OSError, FrameError) as exc:
            self.stop()
            raise OSError(f"the worker process did not start: {exc}") from None

    def send(self, request: bytes) -> None:
        data = memoryview(frame_of(request))
        deadline = time.monotonic() + self.timeout_s
        while data:
            self._wait(self._poll_out, deadline, "taking a request")
            try:
                n = os.write(self._in, data)
            except BlockingIOError:
                continue
            data = data[n:]

    def receive(self) -> Any:
        return msgpack.unpackb(self._read_frame(), raw=False, use_list=False)

    def _read_frame(self) -> bytes:
        deadline = time.monotonic() + self.timeout_s
        n = body_length(self._read_exact(FRAME_LENGTH.size, deadline))
        return self._read_exact(n, deadline)

    def _read_exact(self, n: int, deadline: float) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            self._wait(self._poll_in, deadline, "answering")
            try:
                got = os.read(self._out, n - len(buf))
            except BlockingIOError:
                continue
            if not got:
                raise FrameError(f"the process ended (exit status {self.proc.poll()})")
            buf += got
        return bytes(buf)

    def _wait(self, poller: select.poll, deadline: float, doing: str) -> None:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000.0):
            raise FrameError(f"no progress {doing} in {self.timeout_s:g} s")

    def stop(self) -> None:
        """Ask it to end; kill it if it does not within a second."""
        with contextlib.suppress(OSError):  # never blocks: a stuck child is killed below
            os.write(self._in, FRAME_LENGTH.pack(0))
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError, ValueError):
                if pipe is not None:
                    pipe.close()
        try:
            self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
