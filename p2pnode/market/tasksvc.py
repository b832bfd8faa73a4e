"""The daemon's `tasks` service: an accepted deal's task handed from its consumer to
its hub over `/sonm/task/1` (p2pnode/market/taskwire.py), run by the executor, its
logs streamed back and its results fetched, hash-checked and unpacked.

Hub (a node with `market.hub_wallet`): runs the executor next to the market
service. A start is checked against the chain (the deal re-read: accepted, the
sender is its consumer), the slot's limits and the image allow-list, then handed to
the executor with the deal's end as deadline (the executor records the task before
the container starts). A deal the market service sees closed stops its task.

A start whose spec names input blobs (p2pnode/market/blobs.py) is checked against
the hub's blob caps and the slot's storage, then each blob is fetched back from the
consumer over the connection the start came on, its size and sha256 checked as the
bytes arrive, before the executor sees the task; any failure is the start's refusal,
with the reason.

Consumer: finds the hub by what its ASK said (kept when the deal was negotiated),
signs each request with its account and checks each answer's signature; while a
start with blobs is being answered it serves exactly those blobs, to that hub, for
that deal; results are written to a part file while hashed, refused unless the
archive's sha256 and the receipt's signature (the ASK author's) agree, then
unpacked safely.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import shutil
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr

from gossip.eip712 import SigningDomain
from gossip.messages import address_hex
from p2pnode.context import NodeContext
from p2pnode.errors import LocalError, RemoteError, UserError
from p2pnode.executor import (
    DealTask,
    EngineError,
    Executor,
    ExecutorSettings,
    Receipt,
    SlotLimits,
    TaskRefused,
    TaskSpec,
    TaskSpecError,
    TaskStartError,
    verify_receipt,
)
from p2pnode.executor.executor import run_until_engine_fails
from p2pnode.executor.logsink import STREAMS, Stream
from p2pnode.executor.results import unpack_results
from p2pnode.executor.spec import MAX_BLOB_BYTES, MAX_BLOBS, BlobInput
from p2pnode.framestreams import InboundStreams, read_frames
from p2pnode.framestreams import close as _close
from p2pnode.market import taskwire as w
from p2pnode.market.blobs import BlobCaps, BlobNotOffered, BlobOffers, Offer, blob_problem
from p2pnode.market.dealstore import DealRow
from p2pnode.market.dealsvc import MarketService, hub_of_ask
from p2pnode.market.slots import Slot
from p2pnode.market.transfer import ByteCounter, receive_file, send_file

log = logging.getLogger(__name__)

_CODE: dict[str, int] = {"stdout": int(w.LogStream.STDOUT), "stderr": int(w.LogStream.STDERR)}
MAX_RESULTS_BYTES = 2**34  # a header announcing more is refused before a byte is read
READ_CHUNK = 64 * 1024
OPEN_ATTEMPTS = 3


@dataclass(frozen=True)
class TaskParams:
    stream_timeout: float = 15.0  # one request or answer frame; silence mid-transfer
    max_inbound_streams: int = 64  # task streams served at once
    max_inbound_per_peer: int = 8  # of them, from one peer
    max_results_bytes: int = MAX_RESULTS_BYTES
    max_blob_bytes: int = 2**30  # one input blob a hub fetches
    max_blobs: int = MAX_BLOBS  # input blobs in one task
    max_blobs_bytes: int = 4 * 2**30  # all of a task's blobs together
    min_blob_rate: int = 1_000_000  # bytes/s a consumer allows a hub to fetch its blobs at

    def caps(self) -> BlobCaps:
        return BlobCaps(self.max_blob_bytes, self.max_blobs, self.max_blobs_bytes)

    def validate(self) -> None:
        if not 0 <= self.max_blob_bytes <= MAX_BLOB_BYTES:
            raise ValueError(f"max_blob_bytes = {self.max_blob_bytes}: allowed 0..{MAX_BLOB_BYTES}")
        if not 0 <= self.max_blobs <= MAX_BLOBS:
            raise ValueError(f"max_blobs = {self.max_blobs}: allowed 0..{MAX_BLOBS}")
        if not 0 <= self.max_blobs_bytes <= MAX_BLOBS * MAX_BLOB_BYTES:
            raise ValueError(f"max_blobs_bytes = {self.max_blobs_bytes}: allowed 0..2**44")
        if self.min_blob_rate < 1000:
            raise ValueError(f"min_blob_rate = {self.min_blob_rate}: must be >= 1000 bytes/s")
        if not self.stream_timeout > 0:
            raise ValueError(f"stream_timeout = {self.stream_timeout}: must be > 0")
        if self.max_inbound_streams < 1:
            raise ValueError(f"max_inbound_streams = {self.max_inbound_streams}: must be >= 1")
        if not 1 <= self.max_inbound_per_peer <= self.max_inbound_streams:
            raise ValueError(
                f"max_inbound_per_peer = {self.max_inbound_per_peer}: "
                "allowed 1..max_inbound_streams"
            )
        if not 1 <= self.max_results_bytes <= 2**40:
            raise ValueError(f"max_results_bytes = {self.max_results_bytes}: allowed 1..2**40")


class RemoteRunner(Protocol):
    """Runs the tasks of slots held by remote workers (p2pnode/worker/hub.py): the hub
    forwards the start, relays the logs and serves results it fetched, checked and
    countersigned. Refusals are UserError or RemoteError, with the reason."""

    def holds(self, row: DealRow) -> bool: ...

    async def start(self, row: DealRow, slot: Slot, msg: w.TaskStart) -> str: ...

    def logs(self, row: DealRow, msg: w.LogsRequest) -> AsyncIterator[bytes]: ...

    async def results(self, row: DealRow) -> tuple[Receipt, Path]: ...

    async def stop(self, deal_id: int) -> bool: ...

    def placed(self, deal_id: int) -> tuple[str, bool] | None:
        """The worker a deal's task went to and whether it started; None: no worker."""
        ...


class TaskError(RemoteError):
    """What the hub sent does not check out (or it went away mid-answer)."""


class HubRefused(TaskError):
    """The hub answered no, with its reason."""


class UnknownDeal(UserError):
    """No deal by that id that this node made as consumer."""


@dataclass(frozen=True)
class FetchedResults:
    receipt: Receipt
    archive: Path
    files: list[str]


class TaskService:
    def __init__(
        self,
        host: Any,
        market: MarketService,
        executor: Executor | None,
        *,
        domain: SigningDomain,
        private_key: bytes | None,
        data_dir: Path,
        params: TaskParams | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.params = params or TaskParams()
        self.params.validate()
        self.host = host
        self.market = market
        self.executor = executor
        self.domain = domain
        self._key = private_key
        self.address = market.address
        self.data_dir = data_dir
        self.clock = clock
        self._engine_ready = False
        self._engine_problem = "the container engine is starting"
        self._inbound = InboundStreams()
        self.offers = BlobOffers()
        self._starting: set[int] = set()  # deals whose start (and blob fetch) is under way
        # set by the workers service on a hub that takes remote workers
        self.remote: RemoteRunner | None = None
        self.counters: dict[str, int] = {
            "started": 0,
            "forwarded": 0,
            "refused": 0,
            "bad_messages": 0,
            "logs_served": 0,
            "results_served": 0,
            "blobs_fetched": 0,
            "blobs_served": 0,
            "blobs_refused": 0,
        }

    def stats(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.counters.items()}

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.host.set_stream_handler(TProtocol(w.PROTOCOL_ID), self._handle_stream)
        if self.executor is None:
            task_status.started()
            await trio.sleep_forever()
        self.market.close_hooks.append(self._on_deal_closed)
        async with trio.open_nursery() as nursery:
            # ready once the engine answered and unfinished tasks were taken up (or
            # it did not answer): a start that arrives next finds it either way
            await nursery.start(self._run_executor)
            task_status.started()

    async def _run_executor(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """The engine may be down: the node keeps running and says so to consumers."""
        assert self.executor is not None
        exc = await run_until_engine_fails(
            self.executor, self._set_engine_ready, task_status=task_status
        )
        if exc is not None:
            self._engine_problem = f"no container engine on this hub: {exc}"
            log.warning("tasks: %s", self._engine_problem)

    def _set_engine_ready(self, ready: bool) -> None:
        self._engine_ready = ready

    async def _on_deal_closed(self, deal_id: int) -> None:
        row = self.market.store.deal(deal_id)
        if self.remote is not None and row is not None and self.remote.holds(row):
            if await self.remote.stop(deal_id):
                log.info("tasks: deal %d closed: its worker stops the task", deal_id)
            return
        if self.executor is not None and self._engine_ready:
            stopped = await self.executor.stop_deal(deal_id, "closed")
            if stopped:
                log.info("tasks: deal %d closed: its task is stopping", deal_id)

    # -- hub: the /sonm/task/1 server --------------------------------------------------

    async def _handle_stream(self, stream: Any) -> None:
        cap = self.params.max_inbound_streams
        await self._inbound.serve(
            stream,
            self._serve,
            cap=cap,
            per_peer=self.params.max_inbound_per_peer,
            counters=self.counters,
            log=log,
            what="tasks: stream",
        )

    async def _answer(self, stream: Any, deal_id: int, ok: bool, reason: str) -> None:
        if self._key is None or self.address is None:
            return
        if not ok:
            self.counters["refused"] += 1
        msg = w.TaskAnswer(self.address, deal_id, int(ok), answer_reason(reason))
        await stream.write(w.frame(w.sign(msg, self.domain, self._key)))

    async def _serve(self, stream: Any) -> None:
        reader = w.reader()
        try:
            data = await _read_one(stream, reader, self.params.stream_timeout)
            msg = w.decode(
                data,
                self.domain,
                expect=(w.TaskStart, w.LogsRequest, w.ResultsRequest, w.BlobRequest),
            )
        except RemoteError as exc:
            self.counters["bad_messages"] += 1
            await self._answer(stream, 0, False, str(exc))
            return
        if isinstance(msg, w.BlobRequest):
            await self._serve_blob(stream, msg)
            return
        why = w.check_window(msg.valid_until, self.clock()) or await self._check_deal(msg)
        if why is not None:
            await self._answer(stream, msg.deal_id, False, why)
            return
        if isinstance(msg, w.TaskStart):
            ok, reason = await self._start(msg, _remote_peer(stream))
            await self._answer(stream, msg.deal_id, ok, reason)
        elif isinstance(msg, w.LogsRequest):
            await self._serve_logs(stream, msg)
        else:
            await self._serve_results(stream, msg)

    async def _check_deal(self, msg: Any) -> str | None:
        """Why the sender may not act on the deal; None when it may."""
        row = self.market.store.deal(msg.deal_id)
        if row is None or row.role != "supplier":
            return f"deal {msg.deal_id} is not one of this hub's"
        if row.consumer.lower() != address_hex(msg.consumer).lower():
            return f"deal {msg.deal_id} is not the sender's"
        if self.remote is not None and self.remote.holds(row):
            return None  # a remote worker runs it: this node's engine is not needed
        if self.executor is None:
            return "this node runs no tasks"
        if not self._engine_ready:
            return self._engine_problem
        return None

    async def _start(self, msg: w.TaskStart, peer: ID | None) -> tuple[bool, str]:
        if msg.deal_id in self._starting:
            return False, f"deal {msg.deal_id}: a start is already under way"
        self._starting.add(msg.deal_id)
        try:
            return await self._start_checked(msg, peer)
        finally:
            self._starting.discard(msg.deal_id)

    async def _start_checked(self, msg: w.TaskStart, peer: ID | None) -> tuple[bool, str]:
        try:  # the chain says whether the deal runs, not our last reading of it
            row = await self.market.refresh_deal(msg.deal_id)
        except Exception as exc:
            return False, f"the deal cannot be read from the chain: {exc}"
        if row is None or row.status != "accepted":
            status = row.status if row is not None else "unknown"
            return False, f"deal {msg.deal_id} is {status}, not accepted"
        if row.end_time <= self.clock():
            return False, f"deal {msg.deal_id} has ended"
        slot = self.market.find_slot(row.slot_id) if row.slot_id else None
        if slot is None:
            return False, f"deal {msg.deal_id}'s slot is gone from this hub"
        if self.remote is not None and self.remote.holds(row):
            try:
                if w.unpack_spec(msg.spec).blobs:
                    return False, "blob inputs are not taken for slots on remote workers yet"
                reason = await self.remote.start(row, slot, msg)
            except (UserError, RemoteError) as exc:
                return False, str(exc)
            self.counters["forwarded"] += 1
            log.info("tasks: deal %d: task started on worker %s", msg.deal_id, slot.worker)
            return True, reason
        assert self.executor is not None
        try:
            spec = w.unpack_spec(msg.spec)
            limits = SlotLimits(
                cpu_cores=float(slot.cpu_cores),
                ram_bytes=slot.ram_bytes,
                storage_bytes=slot.storage_bytes,
                network=slot.network,
                gpu_uuids=slot.gpu_uuids,
            )
            task_id = w.task_id_of(msg.deal_id)
            if spec.blobs:
                if self.executor.task(task_id) is not None:
                    return False, f"task {task_id} exists already"
                why = blob_problem(spec, self.params.caps(), self.executor.input_room(limits))
                if why is not None:
                    return False, why
                if peer is None:
                    return False, "the start's connection is gone: its blobs cannot be fetched"
                try:
                    await self._fetch_blobs(peer, msg.deal_id, spec.blobs, task_id)
                except (RemoteError, trio.TooSlowError, OSError) as exc:
                    await trio.to_thread.run_sync(self._drop_blobs, task_id)
                    return False, str(exc) or f"blob fetch timed out ({type(exc).__name__})"
            await self.executor.start_task(
                DealTask(
                    deal_id=msg.deal_id,
                    task_id=task_id,
                    spec=spec,
                    limits=limits,
                    ends_at=float(row.end_time),
                )
            )
        except (TaskSpecError, TaskRefused, TaskStartError) as exc:
            self._drop_blobs_unless_recorded(msg.deal_id)
            return False, str(exc)
        except (EngineError, UserError) as exc:
            self._drop_blobs_unless_recorded(msg.deal_id)
            return False, f"cannot start: {exc}"
        self.counters["started"] += 1
        log.info("tasks: deal %d: task started (%s)", msg.deal_id, spec.image)
        return True, "started"

    def _drop_blobs(self, task_id: str) -> None:
        if self.executor is not None:
            shutil.rmtree(self.executor.blob_dir(task_id), ignore_errors=True)

    def _drop_blobs_unless_recorded(self, deal_id: int) -> None:
        """A refused start leaves no fetched blobs behind; a recorded task keeps them
        (it is launched from them after a restart)."""
        task_id = w.task_id_of(deal_id)
        if self.executor is not None and self.executor.task(task_id) is None:
            self._drop_blobs(task_id)

    async def _fetch_blobs(
        self, peer: ID, deal_id: int, blobs: tuple[BlobInput, ...], task_id: str
    ) -> None:
        """Each distinct blob from the consumer into the executor's blob dir, checked;
        TaskError (or the transfer's error) naming the blob that failed."""
        assert self.executor is not None and self._key is not None and self.address is not None
        staged = self.executor.blob_dir(task_id)
        staged.mkdir(parents=True, exist_ok=True)
        done: set[bytes] = set()
        for blob in blobs:
            if blob.sha256 in done:
                continue
            target = staged / blob.sha256.hex()
            part = staged / (blob.sha256.hex() + ".part")
            msg = w.BlobRequest(self.address, deal_id, blob.sha256, int(self.clock()) + 60)
            with trio.fail_after(self.params.stream_timeout):
                stream = await self.host.new_stream(peer, [TProtocol(w.PROTOCOL_ID)])
            try:
                await stream.write(w.frame(w.sign(msg, self.domain, self._key)))
                reader = w.reader()
                data = await _read_one(stream, reader, self.params.stream_timeout)
                first = w.decode(data, self.domain, expect=(w.BlobHeader, w.BlobRefused))
                if isinstance(first, w.BlobRefused):
                    raise TaskError(f"blob {blob.path}: the consumer refused: {first.reason}")
                if first.size != blob.size:
                    raise TaskError(
                        f"blob {blob.path}: the consumer offers {first.size} bytes, "
                        f"the spec names {blob.size}"
                    )
                counter = ByteCounter(blob.size, f"blob {blob.path}")
                with open(part, "wb") as fh:
                    await receive_file(
                        stream, reader.pending(), counter, fh, timeout=self.params.stream_timeout
                    )
                counter.check(blob.sha256)
            finally:
                await _close(stream)
            part.replace(target)
            done.add(blob.sha256)
            self.counters["blobs_fetched"] += 1

    async def _serve_blob(self, stream: Any, msg: w.BlobRequest) -> None:
        """The consumer's side: the blob, if a start this node is handing to the peer
        asking names it for this deal."""
        peer = _remote_peer(stream)
        try:
            why = w.check_window(msg.valid_until, self.clock())
            if why is not None:
                raise BlobNotOffered(why)
            row = self.market.store.deal(msg.deal_id)
            if row is None or row.role != "consumer":
                raise BlobNotOffered(f"deal {msg.deal_id} is not one this node made as consumer")
            hub = hub_of_ask(self.market.store, row.ask_id)
            if hub is None or hub[2] != msg.hub:
                raise BlobNotOffered(f"the request is not signed by deal {msg.deal_id}'s hub")
            offer = self.offers.lookup(msg.deal_id, str(peer), msg.sha256)
            size = await trio.to_thread.run_sync(lambda: offer.path.stat().st_size)
            if size < offer.size:
                raise BlobNotOffered(f"blob {msg.sha256.hex()} is shorter than offered")
        except (BlobNotOffered, OSError) as exc:
            self.counters["blobs_refused"] += 1
            if isinstance(exc, OSError):  # the file went away: say so, not where it was
                reason = f"blob {msg.sha256.hex()}: {exc.strerror or type(exc).__name__}"
            else:
                reason = str(exc)
            log.info("tasks: blob request refused: %s", reason)
            await stream.write(w.frame(w.BlobRefused(answer_reason(reason))))
            return
        await stream.write(w.frame(w.BlobHeader(offer.size)))
        await send_file(stream, offer.path, offer.size, timeout=self.params.stream_timeout)
        self.counters["blobs_served"] += 1

    async def _serve_logs(self, stream: Any, msg: w.LogsRequest) -> None:
        row = self.market.store.deal(msg.deal_id)
        if self.remote is not None and row is not None and self.remote.holds(row):
            sent = False
            try:
                async for data in self.remote.logs(row, msg):
                    await stream.write(data)
                    sent = True
            except (UserError, RemoteError) as exc:
                if sent:
                    raise
                await self._answer(stream, msg.deal_id, False, str(exc))
            else:
                self.counters["logs_served"] += 1
            return
        assert self.executor is not None
        task_id = w.task_id_of(msg.deal_id)
        record = self.executor.task(task_id)
        if record is None:
            await self._answer(stream, msg.deal_id, False, f"deal {msg.deal_id} has no task")
            return
        self.counters["logs_served"] += 1
        start = {"stdout": msg.from_stdout, "stderr": msg.from_stderr}
        await stream_logs(
            stream,
            self.executor,
            task_id,
            follow=bool(msg.follow),
            tail=msg.tail,
            since_ms=msg.since_ms,
            start=start,
        )

    async def _serve_results(self, stream: Any, msg: w.ResultsRequest) -> None:
        row = self.market.store.deal(msg.deal_id)
        if self.remote is not None and row is not None and self.remote.holds(row):
            try:
                signed, path = await self.remote.results(row)
            except (UserError, RemoteError) as exc:
                await self._answer(stream, msg.deal_id, False, str(exc))
                return
        else:
            assert self.executor is not None
            try:
                outcome = self.executor.outcome(w.task_id_of(msg.deal_id))
            except UserError as exc:
                await self._answer(stream, msg.deal_id, False, str(exc))
                return
            if outcome.receipt is None or outcome.results_path is None:
                why = outcome.error or "no results were kept"
                reason = f"task ended {outcome.reason}: {why}"
                await self._answer(stream, msg.deal_id, False, reason)
                return
            signed, path = outcome.receipt, outcome.results_path
        await serve_archive(stream, signed, path, timeout=self.params.stream_timeout)
        self.counters["results_served"] += 1

    # -- hub: what it runs, for its operator ---------------------------------------------

    def served_tasks(self, limit: int) -> list[dict[str, Any]]:
        """The tasks of this hub's deals, newest deal first: where each runs (a remote
        worker's address, or `local`) and in what state, as far as this node knows."""
        out: list[dict[str, Any]] = []
        for row in self.market.store.deals(None, limit):
            if row.role != "supplier":
                continue
            placed = self.remote.placed(row.deal_id) if self.remote is not None else None
            if placed is not None:
                worker, started = placed
                state = "started" if started else "assigned"
                out.append(_task_item(row, worker, state, None, None))
                continue
            record = self.executor.task(w.task_id_of(row.deal_id)) if self.executor else None
            if record is not None:
                out.append(_task_item(row, "local", record.state, record.spec.image, record))
        return out

    async def served_logs(
        self,
        deal_id: int,
        *,
        follow: bool = False,
        tail: int = 0,
        since_ms: int = 0,
        start: dict[str, int] | None = None,
    ) -> AsyncGenerator[tuple[str, int, bytes], None]:
        """A task this hub runs, its output as `logs` gives a consumer's: from the
        local engine, or relayed from the worker that runs it."""
        row = self.market.store.deal(deal_id)
        if row is None or row.role != "supplier":
            raise UnknownDeal(f"deal {deal_id} is not one of this hub's")
        start = start or {}
        from_out, from_err = start.get("stdout", 0), start.get("stderr", 0)
        if self.remote is not None and self.remote.holds(row):
            me = self.address if isinstance(self.address, bytes) else bytes(20)
            until = int(self.clock()) + 60
            msg = w.LogsRequest(me, deal_id, int(follow), tail, since_ms, from_out, from_err, until)
            reader = w.reader()
            async for data in self.remote.logs(row, msg):
                for item in reader.feed(data):
                    rec = w.decode(item, self.domain, expect=(w.LogRecord,))
                    yield ("stdout", "stderr", "end")[rec.stream], rec.offset, rec.data
            return
        task_id = w.task_id_of(deal_id)
        if self.executor is None or self.executor.task(task_id) is None:
            raise UserError(f"deal {deal_id} has no task on this hub")
        begin = {"stdout": from_out, "stderr": from_err}
        records = log_records(
            self.executor, task_id, follow=follow, tail=tail, since_ms=since_ms, start=begin
        )
        async for rec in records:
            yield ("stdout", "stderr", "end")[rec.stream], rec.offset, rec.data

    # -- consumer -------------------------------------------------------------------------

    def _request_parts(self, deal_id: int) -> tuple[bytes, bytes, tuple[ID, Multiaddr, bytes]]:
        if self._key is None or self.address is None:
            raise UserError("this node has no unlocked account to sign task requests with")
        row = self.market.store.deal(deal_id)
        if row is None or row.role != "consumer":
            raise UnknownDeal(f"deal {deal_id} is not one this node made as consumer")
        hub = hub_of_ask(self.market.store, row.ask_id)
        if hub is None:
            raise LocalError(f"where deal {deal_id}'s hub listens was not kept")
        return self._key, self.address, hub

    async def _open(self, hub: tuple[ID, Multiaddr, bytes]) -> Any:
        """A stream to the hub. Opening one sends nothing, so a failed open is tried
        again (up to OPEN_ATTEMPTS) on a fresh connection: a connection on which
        no stream opens is dropped first (seen on loaded machines)."""
        peer, addr, _ = hub
        for attempt in range(OPEN_ATTEMPTS):
            try:
                with trio.fail_after(self.params.stream_timeout):
                    await self.host.connect(PeerInfo(peer, [addr]))
                    return await self.host.new_stream(peer, [TProtocol(w.PROTOCOL_ID)])
            except Exception as exc:  # trio.TooSlowError, libp2p's stream and dial errors
                if attempt + 1 == OPEN_ATTEMPTS:
                    raise
                log.info(
                    "tasks: no stream to the hub (%s: %s); trying again", type(exc).__name__, exc
                )
                with trio.move_on_after(2), contextlib.suppress(Exception):
                    await self.host.disconnect(peer)
                await trio.sleep(1.0)
        raise AssertionError("unreachable")

    def _check_answer(self, msg: Any, deal_id: int, author: bytes) -> None:
        if msg.hub != author or msg.deal_id not in (0, deal_id):
            raise TaskError("the answer is not from the deal's hub about this deal")
        if not msg.ok:
            raise HubRefused(f"hub refused: {msg.reason}")

    async def start(
        self, deal_id: int, spec: TaskSpec, sources: dict[str, Path] | None = None
    ) -> str:
        """Hand the spec to the deal's hub; its answer's reason when it started.
        `sources` maps each blob's path in the spec to the local file served for it
        while the hub answers."""
        key, me, hub = self._request_parts(deal_id)
        row = self.market.store.deal(deal_id)
        assert row is not None
        if row.status != "accepted":
            raise UserError(f"deal {deal_id} is {row.status}; a task needs an accepted deal")
        offers = await trio.to_thread.run_sync(_offers_of, spec, sources or {})
        packed = w.pack_spec(spec)
        msg = w.TaskStart(me, deal_id, packed, int(self.clock()) + 60)
        if offers:
            self.offers.open(deal_id, str(hub[0]), offers)
        try:
            stream = await self._open(hub)
            try:
                await stream.write(w.frame(w.sign(msg, self.domain, key)))
                # the hub fetches the blobs, checks the image and creates the container
                # before it answers
                wait = self.params.stream_timeout + 60 + spec.blob_bytes / self.params.min_blob_rate
                data = await _read_one(stream, w.reader(), wait)
                answer = w.decode(data, self.domain, expect=(w.TaskAnswer,))
            finally:
                await _close(stream)
        finally:
            self.offers.close(deal_id)
        self._check_answer(answer, deal_id, hub[2])
        return str(answer.reason)

    async def logs(
        self,
        deal_id: int,
        *,
        follow: bool = False,
        tail: int = 0,
        since_ms: int = 0,
        start: dict[str, int] | None = None,
    ) -> AsyncGenerator[tuple[str, int, bytes], None]:
        """(stream, offset, bytes) as the hub sends them, first an empty record at
        each stream's start offset; ("end", 0, state) last. `start` resumes each
        stream at a byte offset (since and tail then do not apply)."""
        row = self.market.store.deal(deal_id)
        if row is not None and row.role == "supplier":  # this node is the deal's hub
            served = self.served_logs(
                deal_id, follow=follow, tail=tail, since_ms=since_ms, start=start
            )
            async for item in served:
                yield item
            return
        key, me, hub = self._request_parts(deal_id)
        start = start or {}
        msg = w.LogsRequest(
            me,
            deal_id,
            int(follow),
            tail,
            since_ms,
            start.get("stdout", 0),
            start.get("stderr", 0),
            int(self.clock()) + 60,
        )
        stream = await self._open(hub)
        try:
            await stream.write(w.frame(w.sign(msg, self.domain, key)))
            reader = w.reader()
            timeout = None if follow else self.params.stream_timeout
            expect: tuple[type[Any], ...] = (w.LogRecord, w.TaskAnswer)
            while True:
                for data in await _read_some(stream, reader, timeout):
                    item = w.decode(data, self.domain, expect=expect)
                    if isinstance(item, w.TaskAnswer):
                        self._check_answer(item, deal_id, hub[2])
                        raise HubRefused(f"hub refused: {item.reason}")
                    expect = (w.LogRecord,)
                    name = ("stdout", "stderr", "end")[item.stream]
                    yield name, item.offset, item.data
                    if item.stream == w.LogStream.END:
                        return
        finally:
            await _close(stream)

    async def results(self, deal_id: int, dest: Path) -> FetchedResults:
        """Download, check against the signed receipt, unpack into `dest`."""
        key, me, hub = self._request_parts(deal_id)
        try:
            dest.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LocalError(f"results: cannot create {dest}: {exc.strerror}") from None
        msg = w.ResultsRequest(me, deal_id, int(self.clock()) + 60)
        work = self.data_dir / "tasks" / w.task_id_of(deal_id)
        work.mkdir(mode=0o700, parents=True, exist_ok=True)
        work.parent.chmod(0o700)
        part = work / "results.tar.part"
        stream = await self._open(hub)
        try:
            await stream.write(w.frame(w.sign(msg, self.domain, key)))
            reader = w.reader()
            data = await _read_one(stream, reader, self.params.stream_timeout)
            first = w.decode(data, self.domain, expect=(w.ResultsHeader, w.TaskAnswer))
            if isinstance(first, w.TaskAnswer):
                self._check_answer(first, deal_id, hub[2])
                raise HubRefused(f"hub refused: {first.reason}")
            try:
                receipt = Receipt.from_dict(json.loads(first.receipt))
            except (ValueError, TypeError) as exc:
                raise TaskError(f"receipt: not valid JSON: {exc}") from None
            if first.size != receipt.results_bytes or first.size > self.params.max_results_bytes:
                raise TaskError(
                    f"results: {first.size} bytes announced, the receipt says "
                    f"{receipt.results_bytes} (at most {self.params.max_results_bytes} taken)"
                )
            counter = ByteCounter(first.size, "results")
            with open(part, "wb") as fh:
                await receive_file(
                    stream, reader.pending(), counter, fh, timeout=self.params.stream_timeout
                )
        finally:
            await _close(stream)
        try:
            verify_receipt(
                receipt,
                domain=self.domain,
                supplier=hub[2],
                deal_id=deal_id,
                results_sha256=counter.digest(),
            )
        except Exception:
            part.unlink(missing_ok=True)
            raise
        archive = work / "results.tar"
        part.replace(archive)
        (work / "receipt.json").write_text(json.dumps(receipt.to_dict(), indent=2))
        files = await trio.to_thread.run_sync(unpack_results, archive, dest)
        return FetchedResults(receipt, archive, files)


def _offers_of(spec: TaskSpec, sources: dict[str, Path]) -> dict[bytes, Offer]:
    """The local file of each blob the spec names, checked for its size (the hub
    checks the hash as it fetches). UserError naming what is missing or wrong."""
    named = {b.path for b in spec.blobs}
    for path in sources:
        if path not in named:
            raise UserError(f"blob file given for {path!r}, which the spec does not name")
    offers: dict[bytes, Offer] = {}
    for blob in spec.blobs:
        local = sources.get(blob.path)
        if local is None:
            raise UserError(f"blob {blob.path}: no local file given to serve it from")
        try:
            size = local.stat().st_size
        except OSError as exc:
            raise UserError(f"blob {blob.path}: {local}: {exc.strerror}") from None
        if not local.is_file() or size != blob.size:
            raise UserError(f"blob {blob.path}: {local} is not a file of {blob.size} bytes")
        offers.setdefault(blob.sha256, Offer(local, blob.size))
    return offers


def _remote_peer(stream: Any) -> ID | None:
    conn = getattr(stream, "muxed_conn", None)
    peer = getattr(conn, "peer_id", None)
    return peer if isinstance(peer, ID) else None


def _task_item(
    row: DealRow, worker: str, state: str, image: str | None, record: Any
) -> dict[str, Any]:
    return {
        "deal_id": row.deal_id,
        "deal_status": row.status,
        "consumer": row.consumer,
        "worker": worker,
        "state": state,
        "image": image,
        "started_at": getattr(record, "started_at", None),
        "ended_at": getattr(record, "ended_at", None),
        "exit_code": getattr(record, "exit_code", None),
    }


async def stream_logs(
    stream: Any,
    executor: Executor,
    task_id: str,
    *,
    follow: bool,
    tail: int,
    since_ms: int = 0,
    start: dict[str, int] | None = None,
) -> None:
    """log_records as frames on a stream."""
    records = log_records(
        executor, task_id, follow=follow, tail=tail, since_ms=since_ms, start=start
    )
    async for rec in records:
        await stream.write(w.frame(rec))


async def log_records(
    executor: Executor,
    task_id: str,
    *,
    follow: bool,
    tail: int,
    since_ms: int = 0,
    start: dict[str, int] | None = None,
) -> AsyncGenerator[w.LogRecord, None]:
    """A task's output as LogRecords: first where each stream starts (so that a
    follower can resume there), then each stream from the byte offset given in `start`,
    else from the later of `since_ms` and the last `tail` lines (else all), with
    `follow` new output until it ends, then the END record."""
    record = executor.task(task_id)
    assert record is not None
    given = start or {}
    begin: dict[Stream, int] = {}
    for s in STREAMS:
        if given.get(s):
            begin[s] = given[s]
            continue
        since = executor.log_offset_since(task_id, s, since_ms) if since_ms else 0
        path = executor.log_path(task_id, s)
        cut = _tail_offset(path, tail) if tail else 0
        begin[s] = max(since, cut)
    for s in STREAMS:
        yield w.LogRecord(_CODE[s], begin[s], b"")
    async for chunk in executor.follow_logs(task_id, follow=follow, start=begin):
        data = chunk.data
        for i in range(0, len(data), w.MAX_LOG_DATA):
            piece = data[i : i + w.MAX_LOG_DATA]
            yield w.LogRecord(_CODE[chunk.stream], chunk.offset + i, piece)
    state = (executor.task(task_id) or record).state
    yield w.LogRecord(int(w.LogStream.END), 0, state.encode()[:64])


async def serve_archive(stream: Any, receipt: Receipt, path: Path, *, timeout: float) -> None:
    """A ResultsHeader with the signed receipt, then the archive's bytes; each write
    waits at most `timeout` seconds for the consumer to take it."""
    size = path.stat().st_size
    data = json.dumps(receipt.to_dict(), sort_keys=True).encode()
    with trio.fail_after(timeout):
        await stream.write(w.frame(w.ResultsHeader(data, size)))
    await send_file(stream, path, size, timeout=timeout)


def answer_reason(text: str) -> str:
    """A reason as the wire takes it: one line of printable text, at most 200 bytes
    (engine and spec errors may quote what the consumer sent)."""
    flat = "".join(c if c.isprintable() else " " for c in text)
    return flat.encode("utf-8", "replace")[: w.MAX_REASON_BYTES].decode("utf-8", "ignore")


def _tail_offset(path: Path, lines: int) -> int:
    """Where the last `lines` lines of the file begin (0: the whole file)."""
    try:
        size = path.stat().st_size
    except OSError:
        return 0
    with open(path, "rb") as fh:
        pos, seen = size, 0
        # a trailing newline ends the last line; it does not start one
        while pos > 0:
            step = min(READ_CHUNK, pos)
            pos -= step
            fh.seek(pos)
            block = fh.read(step)
            for i in range(len(block) - 1, -1, -1):
                if block[i] == 0x0A and pos + i != size - 1:
                    seen += 1
                    if seen == lines:
                        return pos + i + 1
    return 0


async def _read_some(
    stream: Any, reader: w.FrameReader, timeout: float | None, at_most: int | None = None
) -> list[bytes]:
    return await read_frames(
        stream, reader, timeout, chunk=READ_CHUNK, closed=TaskError, at_most=at_most
    )


async def _read_one(stream: Any, reader: w.FrameReader, timeout: float) -> bytes:
    """One frame; bytes after it stay in the reader (`pending()`)."""
    return (await _read_some(stream, reader, timeout, at_most=1))[0]


def log_json(stream: str, offset: int, data: bytes) -> dict[str, Any]:
    """One log record for the local API's NDJSON: bytes as base64, exactly, and where
    they sit in their stream (a follower resumes at offset + length)."""
    return {"stream": stream, "offset": offset, "data": base64.b64encode(data).decode()}


def task_service(ctx: NodeContext) -> TaskService:
    """Daemon service factory, after "market": a hub with an account runs the executor."""
    market = ctx.services.get("market")
    if not isinstance(market, MarketService):
        raise UserError("service 'tasks' needs the 'market' service started before it")
    config = ctx.config
    key = ctx.account.private_key if ctx.account is not None else None
    domain = market.desk.domain
    executor = None
    if market.hub_wallet is not None and key is not None:
        executor = Executor(
            ctx.storage,
            Path(config.data_path),
            ExecutorSettings.from_config(config),
            signer_key=key,
            domain=domain,
        )
    return TaskService(
        ctx.host,
        market,
        executor,
        domain=domain,
        private_key=key,
        data_dir=Path(config.data_path),
    )
