"""Runs deals' tasks in locked-down containers and accounts for them.

For each task: check the spec against the slot and the image allow-list, record it
in SQLite, create and start the container under the slot's limits, stream its two
logs to capped files, sample its usage, and stop it at the deal's end or when the
deal is closed early. When it ends, however it ends, /results is packed and a
receipt signed with the supplier's account. After a restart, `run` finds the
containers of unfinished tasks by label and takes them up again: logs re-read
from the engine, the deadline from the database.

Engine calls block, so they run in worker threads; the executor itself is trio.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from gossip.eip712 import SigningDomain, address_of_key
from p2pnode.config import NodeConfig
from p2pnode.errors import RemoteError, UserError
from p2pnode.executor.engine import (
    ContainerState,
    Engine,
    EngineError,
    EngineUnavailable,
    ImageMissing,
    engine_address,
)
from p2pnode.executor.limits import (
    LABEL_DEAL,
    LABEL_EXECUTOR,
    LABEL_TASK,
    SlotLimits,
    check_spec_fits,
    container_options,
)
from p2pnode.executor.logsink import (
    STREAMS,
    LogChunk,
    LogSink,
    Stream,
    offset_since,
    read_log,
)
from p2pnode.executor.receipt import Receipt
from p2pnode.executor.results import ResultsTooLarge, dir_bytes, pack_results
from p2pnode.executor.spec import TaskSpec
from p2pnode.executor.store import TaskExists, TaskRecord, TaskStore
from p2pnode.executor.usage import (
    CGROUP_ROOT,
    CgroupFiles,
    TaskCgroup,
    Usage,
    cgroup_files,
    usage_from_engine_stats,
)
from p2pnode.storage import Storage

log = logging.getLogger(__name__)

_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
DEFAULT_RESULTS_MAX_BYTES = 2**30
PUMP_DRAIN_SECONDS = 5.0


class TaskRefused(RemoteError):
    """The consumer's task cannot run here: disallowed image, over the slot, bad id."""


class TaskStartError(RemoteError):
    """The engine created the container but the task did not start (bad command...)."""


class _CreateFailed(Exception):
    """The engine refused to create the container (its message)."""


class _StartFailed(Exception):
    """The engine created the container and refused to start it (its message)."""


@dataclass(frozen=True)
class ExecutorSettings:
    engine: str = ""  # see engine_address()
    allowed_images: tuple[str, ...] = ()  # empty: nothing may run
    log_max_bytes: int = 16 * 2**20
    results_max_bytes: int = DEFAULT_RESULTS_MAX_BYTES  # when the slot names no storage
    stop_grace: float = 2.0  # seconds between SIGTERM and SIGKILL at a stop
    usage_interval: float = 0.25
    disk_interval: float = 1.0  # how often the task's writable dirs are measured

    def validate(self) -> None:
        if not 4096 <= self.log_max_bytes <= 2**40:
            raise UserError(f"log_max_bytes = {self.log_max_bytes}: allowed 4096..2**40")
        if not 1 <= self.results_max_bytes <= 2**60:
            raise UserError(f"results_max_bytes = {self.results_max_bytes}: allowed 1..2**60")
        if not 0 <= self.stop_grace <= 300:
            raise UserError(f"stop_grace = {self.stop_grace}: allowed 0..300 seconds")
        if not 0.01 <= self.usage_interval <= 60:
            raise UserError(f"usage_interval = {self.usage_interval}: allowed 0.01..60 seconds")
        if not 0.05 <= self.disk_interval <= 600:
            raise UserError(f"disk_interval = {self.disk_interval}: allowed 0.05..600 seconds")

    @classmethod
    def from_config(cls, config: NodeConfig) -> ExecutorSettings:
        section = config.executor
        return cls(
            engine=section.engine,
            allowed_images=section.allowed_images,
            log_max_bytes=section.log_max_bytes,
        )


@dataclass(frozen=True)
class DealTask:
    """What the market hands the executor for an accepted deal."""

    deal_id: int
    task_id: str
    spec: TaskSpec
    limits: SlotLimits
    ends_at: float  # unix seconds: the deal's end


@dataclass(frozen=True)
class TaskOutcome:
    task_id: str
    deal_id: int
    reason: str  # a receipt.REASONS, or start-failed
    exit_code: int | None
    error: str | None
    receipt: Receipt | None
    results_path: Path | None


def _norm_image(name: str) -> str:
    """'busybox' and 'busybox:latest' are the same name; digests stay as they are."""
    if name.startswith("sha256:") or "@" in name:
        return name
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else name + ":latest"


def image_allowed(reference: str, image: Any | None, allowed: tuple[str, ...]) -> bool:
    """Allowed when the reference, or the resolved image's id, a tag or a repo digest of
    it, is on the list (names compared with ':latest' implied)."""
    wanted = {_norm_image(a) for a in allowed}
    if _norm_image(reference) in wanted:
        return True
    if image is None:
        return False
    names: set[str] = {str(image.id)}
    names.update(_norm_image(t) for t in (image.attrs.get("RepoTags") or []))
    for d in image.attrs.get("RepoDigests") or []:
        names.add(str(d))
        names.add(str(d).split("@", 1)[-1])
    return bool(names & wanted)


class Executor:
    def __init__(
        self,
        storage: Storage,
        data_dir: Path,
        settings: ExecutorSettings,
        *,
        signer_key: bytes,
        domain: SigningDomain,
        clock: Callable[[], float] = time.time,
        engine: Engine | None = None,
    ) -> None:
        settings.validate()
        self.settings = settings
        self.store = TaskStore(storage)
        self.root = data_dir / "executor"
        self.root.mkdir(parents=True, exist_ok=True)
        self.instance = self.store.instance_id()
        self.supplier = address_of_key(signer_key)
        self._key = signer_key
        self.domain = domain
        self.clock = clock
        self.engine: Engine | None = engine  # None: connect in run()
        self._nursery: trio.Nursery | None = None
        self._sinks: dict[str, LogSink] = {}
        self._stop: dict[str, trio.Event] = {}
        self._done: dict[str, trio.Event] = {}
        self.address = engine_address(settings.engine)
        self._cgroupfs = False

    # -- lifecycle ----------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Connect to the engine, take up unfinished tasks, then supervise until
        cancelled. Containers keep running when this is cancelled (a restart
        re-attaches); EngineUnavailable when no engine answers."""
        if self.engine is None:
            self.engine = await trio.to_thread.run_sync(Engine.connect, self.address)
        driver = await trio.to_thread.run_sync(self.engine.cgroup_driver)
        # a parent cgroup we can read after the container is gone: cgroupfs engines
        # create it from a path; under systemd it would have to be a slice
        self._cgroupfs = driver == "cgroupfs" and os.access(CGROUP_ROOT, os.R_OK)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self._reconcile()
            task_status.started()
            await trio.sleep_forever()

    def _require(self) -> tuple[Engine, trio.Nursery]:
        if self.engine is None or self._nursery is None:
            raise RuntimeError("Executor.run has not started")
        return self.engine, self._nursery

    def _task_cgroup(self, task_id: str) -> TaskCgroup:
        return TaskCgroup(f"/sonm/{self.instance}-{task_id}")

    async def _drop_cgroup(self, task_id: str) -> None:
        if not self._cgroupfs:
            return
        cgroup = self._task_cgroup(task_id)
        for _ in range(50):
            if cgroup.remove():
                return
            await trio.sleep(0.1)
        log.warning("task %s: cgroup %s is still busy; left in place", task_id, cgroup.path)

    def task_dir(self, task_id: str) -> Path:
        return self.root / "tasks" / task_id

    def blob_dir(self, task_id: str) -> Path:
        """Where the task's input blobs wait, checked, as `<sha256 hex>`, until its work
        dir is made (the tasks service fetches them there before `start_task`)."""
        return self.task_dir(task_id) / "blobs"

    def input_room(self, limits: SlotLimits) -> int:
        """Bytes the task's inputs may take: its work dir counts against its storage."""
        return limits.storage_bytes or self.settings.results_max_bytes

    # -- starting -------------------------------------------------------------

    async def start_task(self, deal: DealTask) -> TaskRecord:
        """Check, record, create and start; returns the running task's record.

        TaskRefused before anything is recorded; TaskStartError (recorded as
        start-failed) when the engine cannot start it; EngineError when the engine
        fails.
        """
        engine, _ = self._require()
        if not _TASK_ID.match(deal.task_id):
            raise TaskRefused(f"task id {deal.task_id!r}: 1..64 of letters, digits, '_.-'")
        if not 0 <= deal.deal_id < 2**256:
            raise TaskRefused(f"deal id {deal.deal_id}: a uint256 expected")
        deal.spec.validate()
        deal.limits.validate()
        try:
            check_spec_fits(deal.spec, deal.limits)
        except UserError as exc:
            raise TaskRefused(str(exc)) from None
        if deal.ends_at <= self.clock():
            raise TaskRefused(f"deal {deal.deal_id} has already ended")
        if self.store.get(deal.task_id) is not None:
            raise TaskRefused(f"task {deal.task_id} exists already")
        for blob in deal.spec.blobs:
            staged = self.blob_dir(deal.task_id) / blob.sha256.hex()
            if not staged.is_file() or staged.stat().st_size != blob.size:
                raise TaskRefused(f"blob {blob.path} has not been fetched")
        digest = self._check_image_name(deal.spec.image)
        if digest is None:
            digest = await trio.to_thread.run_sync(self._check_image, engine, deal.spec.image)
        try:
            self.store.record(deal.task_id, deal.deal_id, deal.spec, deal.limits, deal.ends_at)
        except TaskExists:
            raise TaskRefused(f"task {deal.task_id} exists already") from None
        if digest:
            self.store.update(deal.task_id, image_digest=digest)
        record = self.store.get(deal.task_id)
        assert record is not None
        try:
            return await self._launch(record)
        except EngineUnavailable:
            raise
        except Exception as exc:
            current = self.store.get(deal.task_id)
            if current is not None and current.state == "recorded":
                self._finish_without_run(deal.task_id, "start-failed", str(exc))
            raise

    def _check_image_name(self, reference: str) -> str | None:
        """ "" when the reference itself is on the allow-list: the engine resolves it at
        create (saving a round trip on the start path) and the id that ran is read from
        the container. None when only the resolved image can tell."""
        if not self.settings.allowed_images:
            raise TaskRefused(
                f"image {reference} is not allowed: this supplier allows no images "
                "(executor.allowed_images is empty)"
            )
        return "" if image_allowed(reference, None, self.settings.allowed_images) else None

    def _check_image(self, engine: Engine, reference: str) -> str:
        """The id of a present image whose id, tags or digests are allowed (never pulled:
        an image not allowed by name could be anything)."""
        allowed = self.settings.allowed_images
        try:
            image = engine.image(reference, pull=False)
        except ImageMissing:
            raise TaskRefused(f"image {reference} is not on this supplier's allow-list") from None
        if not image_allowed(reference, image, allowed):
            raise TaskRefused(f"image {reference} is not on this supplier's allow-list")
        return str(image.id)

    def _prepare_dirs(self, record: TaskRecord) -> tuple[Path, Path]:
        base = self.task_dir(record.task_id)
        work, results = base / "work", base / "results"
        for d in (base, work, results):
            d.mkdir(parents=True, exist_ok=True)
        base.chmod(0o700)
        # the task may run as any user and holds no CAP_DAC_OVERRIDE: its two
        # writable mounts must be writable to it whatever its uid
        work.chmod(0o777)
        results.chmod(0o777)
        for item in record.spec.inputs:
            target = work / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(item.content)
            target.chmod(item.mode)
        self._place_blobs(record, work)
        return work, results

    def _place_blobs(self, record: TaskRecord, work: Path) -> None:
        """Move each fetched blob to its path in the work dir (a copy for every use of a
        hash but its last); a blob already in place (a relaunch) stays."""
        staged = self.blob_dir(record.task_id)
        left: dict[bytes, int] = {}
        for blob in record.spec.blobs:
            left[blob.sha256] = left.get(blob.sha256, 0) + 1
        for blob in record.spec.blobs:
            left[blob.sha256] -= 1
            target = work / blob.path
            source = staged / blob.sha256.hex()
            if target.is_file() and target.stat().st_size == blob.size and not source.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if left[blob.sha256]:
                shutil.copyfile(source, target)
            else:
                os.replace(source, target)
            target.chmod(blob.mode)
        shutil.rmtree(staged, ignore_errors=True)

    async def _launch(self, record: TaskRecord) -> TaskRecord:
        engine, nursery = self._require()
        try:
            # one worker thread for the whole start path: each hand-off between trio
            # and a worker waits for a scheduling round, which on a busy host costs
            # more than the engine calls themselves (docs/executor.md, "Measured")
            cid = await trio.to_thread.run_sync(self._create_and_start, engine, record)
        except EngineUnavailable:
            raise  # our fault, not the task's: it stays recorded and starts on the next run
        except _CreateFailed as exc:
            self._finish_without_run(record.task_id, "start-failed", str(exc))
            raise TaskStartError(f"task {record.task_id} could not be created: {exc}") from None
        except _StartFailed as exc:
            self._finish_without_run(record.task_id, "start-failed", str(exc))
            await self._drop_cgroup(record.task_id)
            raise TaskStartError(f"task {record.task_id} failed to start: {exc}") from None
        self.store.update(record.task_id, state="running", started_at=self.clock())
        running = self.store.get(record.task_id)
        assert running is not None
        self._begin(running, cid, nursery)
        return running

    def _create_and_start(self, engine: Engine, record: TaskRecord) -> str:
        """Blocking: work dirs, options, the task's cgroup, create, start; the container
        id. _CreateFailed / _StartFailed when the engine refuses (a start refused is
        removed again); EngineUnavailable when it does not answer at create."""
        work, results = self._prepare_dirs(record)
        supported = engine.storage_size_supported() if record.limits.storage_bytes else False
        options = container_options(
            record.spec,
            record.limits,
            labels={
                LABEL_DEAL: str(record.deal_id),
                LABEL_TASK: record.task_id,
                LABEL_EXECUTOR: self.instance,
            },
            work_dir_host=str(work),
            results_dir_host=str(results),
            storage_size_supported=supported,
        )
        options["name"] = f"sonm-{self.instance}-{record.task_id}"
        if self._cgroupfs:
            cgroup = self._task_cgroup(record.task_id)
            if not cgroup.prepare():
                log.debug("task %s: cgroup %s left to the engine", record.task_id, cgroup.path)
            options["cgroup_parent"] = cgroup.path
        if record.image_digest:
            options["image"] = record.image_digest  # exactly the image that was checked
        try:
            try:
                cid = engine.create(options)
            except ImageMissing:  # allowed by name and not here yet: pull it, once
                engine.image(options["image"])
                cid = engine.create(options)
        except EngineUnavailable:
            raise
        except EngineError as exc:
            raise _CreateFailed(str(exc)) from None
        self.store.update(record.task_id, container_id=cid)
        try:
            engine.start(cid)
        except EngineError as exc:
            engine.remove(cid)
            raise _StartFailed(str(exc)) from None
        return cid

    def _begin(self, record: TaskRecord, cid: str, nursery: trio.Nursery) -> None:
        # a fresh sink also on re-attach: the engine replays the whole log, so the
        # stored files and their hashes are rebuilt from the start
        sink = LogSink(
            self.task_dir(record.task_id) / "logs", self.settings.log_max_bytes, clock=self.clock
        )
        self._sinks[record.task_id] = sink
        self._stop.setdefault(record.task_id, trio.Event())
        self._done.setdefault(record.task_id, trio.Event())
        nursery.start_soon(self._supervise, record, cid, sink)

    def _finish_without_run(self, task_id: str, reason: str, error: str) -> None:
        self.store.update(
            task_id, state="finished", reason=reason, error=error, ended_at=self.clock()
        )
        self._release(task_id)
        shutil.rmtree(self.task_dir(task_id) / "work", ignore_errors=True)
        if self._cgroupfs and self._nursery is not None:
            self._nursery.start_soon(self._drop_cgroup, task_id)

    def _release(self, task_id: str) -> None:
        """Wake the task's waiters; forget its events once it is finished (waiters then
        read the database), so they do not pile up over the node's life."""
        self._done.setdefault(task_id, trio.Event()).set()
        record = self.store.get(task_id)
        if record is not None and record.state == "finished":
            self._done.pop(task_id, None)
            self._stop.pop(task_id, None)

    # -- stopping -------------------------------------------------------------

    async def stop_deal(self, deal_id: int, reason: str = "closed") -> int:
        """Stop the deal's running tasks (preterm close); how many were asked to stop."""
        if reason not in ("closed", "deadline"):
            raise ValueError(f"stop reason {reason!r}: closed or deadline")
        asked = 0
        for record in self.store.for_deal(deal_id):
            if record.state == "finished":
                continue
            self.store.update(record.task_id, stop_reason=reason)
            self._stop.setdefault(record.task_id, trio.Event()).set()
            asked += 1
        return asked

    # -- supervision ----------------------------------------------------------

    async def _supervise(self, record: TaskRecord, cid: str, sink: LogSink) -> None:
        engine, _ = self._require()
        task_id = record.task_id
        usage = Usage()
        try:
            state = await trio.to_thread.run_sync(engine.state, cid)
            if state is not None and not record.image_digest:
                self.store.update(task_id, image_digest=state.image_id)
                record = dataclasses.replace(record, image_digest=state.image_id)
            files = cgroup_files(state.pid) if state is not None and state.pid else None
            async with trio.open_nursery() as pumps:
                for stream in STREAMS:
                    pumps.start_soon(self._pump, engine, cid, stream, sink)
                async with trio.open_nursery() as aux:
                    aux.start_soon(self._sample, engine, cid, files, usage)
                    aux.start_soon(self._watch_disk, record)
                    stop_reason = await self._wait_or_stop(engine, record, cid)
                    aux.cancel_scope.cancel()
                pumps.cancel_scope.deadline = trio.current_time() + PUMP_DRAIN_SECONDS
            sink.close()
            final = await trio.to_thread.run_sync(engine.state, cid)
            await self._finish(record, cid, final, stop_reason, usage, sink)
        except EngineError as exc:
            log.error("task %s: engine failed while supervising: %s", task_id, exc)
            sink.close()
            self.store.update(task_id, error=str(exc))
        except Exception as exc:  # one task's fault must not stop the others'
            log.exception("task %s: supervising failed", task_id)
            sink.close()
            self.store.update(task_id, error=f"supervising failed: {exc}")
        finally:
            sink.close()
            self._sinks.pop(task_id, None)
            self._release(task_id)

    async def _pump(self, engine: Engine, cid: str, stream: Stream, sink: LogSink) -> None:
        token = trio.lowlevel.current_trio_token()

        def pump() -> None:
            for chunk in engine.logs(cid, stdout=stream == "stdout"):
                try:
                    trio.from_thread.run_sync(sink.write, stream, chunk, trio_token=token)
                except trio.RunFinishedError:
                    return

        try:
            await trio.to_thread.run_sync(pump, abandon_on_cancel=True)  # type: ignore[call-arg]
        except EngineError as exc:
            log.warning("task container %s: %s log stream: %s", cid[:12], stream, exc)

    async def _sample(
        self, engine: Engine, cid: str, files: CgroupFiles | None, usage: Usage
    ) -> None:
        while True:
            got = files.read() if files is not None else None
            if got is None and files is None:
                try:
                    stats = await trio.to_thread.run_sync(engine.stats_once, cid)
                    got = usage_from_engine_stats(stats)
                except EngineError:
                    got = None
            if got is not None:
                usage.merge(*got)
            await trio.sleep(self.settings.usage_interval)

    async def _watch_disk(self, record: TaskRecord) -> None:
        """Stop the task when its writable mounts outgrow the slot's storage. They are
        directories on the supplier's disk, which no engine caps, so they are measured;
        between two looks a task can overshoot by what it writes in one interval."""
        base = self.task_dir(record.task_id)
        cap = record.limits.storage_bytes or self.settings.results_max_bytes
        while True:
            await trio.sleep(self.settings.disk_interval)
            used = await trio.to_thread.run_sync(
                lambda: dir_bytes(base / "work") + dir_bytes(base / "results")
            )
            if used > cap:
                log.warning("task %s: %d bytes written, over its %d: stopping it",
                            record.task_id, used, cap)  # fmt: skip
                self.store.update(record.task_id, stop_reason="storage-exceeded")
                self._stop.setdefault(record.task_id, trio.Event()).set()
                return

    async def _wait_or_stop(self, engine: Engine, record: TaskRecord, cid: str) -> str | None:
        """Wait for the container to end; stop it at the deadline or on request. The
        stop reason, or None when the task ended by itself."""
        stop_event = self._stop.setdefault(record.task_id, trio.Event())
        if record.stop_reason:
            stop_event.set()
        stopped: list[str] = []

        async with trio.open_nursery() as race:

            async def waiter() -> None:
                await trio.to_thread.run_sync(engine.wait, cid, abandon_on_cancel=True)  # type: ignore[call-arg]
                race.cancel_scope.cancel()

            async def stopper() -> None:
                with trio.move_on_after(max(0.0, record.ends_at - self.clock())):
                    await stop_event.wait()
                current = self.store.get(record.task_id)
                reason = (current.stop_reason if current else None) or "deadline"
                stopped.append(reason)
                await trio.to_thread.run_sync(engine.stop, cid, self.settings.stop_grace)

            race.start_soon(waiter)
            race.start_soon(stopper)
        return stopped[0] if stopped else None

    async def _finish(
        self,
        record: TaskRecord,
        cid: str,
        state: ContainerState | None,
        stop_reason: str | None,
        usage: Usage,
        sink: LogSink,
    ) -> None:
        engine, _ = self._require()
        now = self.clock()
        if state is None:
            self._finish_without_run(record.task_id, "lost", "the container disappeared")
            return
        exit_code = state.exit_code if state.exit_code >= 0 else 255
        cgroup = self._task_cgroup(record.task_id)
        final = cgroup.read() if self._cgroupfs else None
        if final is not None:
            usage.merge(*final)
        # The engine's OOMKilled is not set by every engine (podman on cgroup v1 leaves
        # it false); the kernel's own record is the subtree's oom_kill count (v2), or
        # on v1 a SIGKILL we did not send with the memory high-water mark at the limit.
        oom_kills = cgroup.oom_kills() if self._cgroupfs else None
        oom = state.oom_killed or bool(oom_kills)
        if not oom and oom_kills is None and exit_code == 137 and not stop_reason:
            oom = usage.peak_memory_bytes >= record.limits.ram_bytes
        if oom:
            reason = "oom-killed"
        elif stop_reason:
            reason = stop_reason
        else:
            reason = "exited" if exit_code == 0 else "failed"
        base = self.task_dir(record.task_id)
        cap = record.limits.storage_bytes or self.settings.results_max_bytes
        error = None
        try:
            packed = await trio.to_thread.run_sync(
                lambda: pack_results(base / "results", base / "results.tar", max_bytes=cap)
            )
        except ResultsTooLarge as exc:
            # No archive is kept: a request for the results is answered with this error,
            # never with an empty archive the consumer could take for "no files". The
            # receipt signs for no results (0 bytes, the hash of nothing).
            error = str(exc)
            (base / "results.tar").unlink(missing_ok=True)
            packed = None
        started = state.started_at or record.started_at or record.created_at
        ended = state.finished_at or now
        receipt = Receipt(
            supplier=self.supplier,
            deal_id=record.deal_id,
            task_id=record.task_id,
            image_digest=record.image_digest or state.image_id,
            exit_code=min(exit_code, 65535),
            reason=reason,
            started_at_ms=int(started * 1000),
            ended_at_ms=max(int(ended * 1000), int(started * 1000)),
            cpu_time_ns=usage.cpu_ns,
            peak_memory_bytes=usage.peak_memory_bytes,
            results_sha256=packed.sha256 if packed else hashlib.sha256(b"").digest(),
            results_bytes=packed.size if packed else 0,
            stdout_sha256=sink.sha256("stdout"),
            stdout_bytes=sink.size("stdout"),
            stderr_sha256=sink.sha256("stderr"),
            stderr_bytes=sink.size("stderr"),
            log_bytes_dropped=sink.dropped,
        ).signed(self.domain, self._key)
        if exit_code and reason in ("failed", "oom-killed") and state.error:
            error = error or state.error
        self.store.update(
            record.task_id,
            state="finished",
            exit_code=exit_code,
            reason=reason,
            error=error,
            started_at=started,
            ended_at=ended,
            receipt=receipt.to_dict(),
        )
        await trio.to_thread.run_sync(engine.remove, cid)
        await self._drop_cgroup(record.task_id)
        shutil.rmtree(base / "work", ignore_errors=True)
        shutil.rmtree(base / "results", ignore_errors=True)
        log.info("task %s of deal %s ended: %s (exit %s)", record.task_id, record.deal_id,
                 reason, exit_code)  # fmt: skip

    # -- restart --------------------------------------------------------------

    async def _reconcile(self) -> None:
        engine, nursery = self._require()
        ours = await trio.to_thread.run_sync(engine.find, {LABEL_EXECUTOR: self.instance})
        by_task = {c.labels.get(LABEL_TASK, ""): c for c in ours}
        unfinished = self.store.unfinished()
        for record in unfinished:
            container = by_task.pop(record.task_id, None)
            if container is not None:
                log.info("task %s: re-attaching to container %s", record.task_id,
                         container.container_id[:12])  # fmt: skip
                if record.state != "running":
                    self.store.update(record.task_id, container_id=container.container_id,
                                      state="running", started_at=container.started_at)  # fmt: skip
                    record = self.store.get(record.task_id) or record
                self._begin(record, container.container_id, nursery)
            elif record.state == "recorded" and record.ends_at > self.clock():
                log.info("task %s: recorded but never created; starting it", record.task_id)
                try:
                    await self._launch(record)
                except EngineUnavailable as exc:
                    log.warning("task %s: stays recorded: %s", record.task_id, exc)
                except Exception as exc:  # the other tasks are still to be taken up
                    log.warning("task %s: %s", record.task_id, exc)
                    current = self.store.get(record.task_id)
                    if current is not None and current.state != "finished":
                        self._finish_without_run(record.task_id, "start-failed", str(exc))
            elif record.state == "recorded":
                self._finish_without_run(record.task_id, "start-failed", "the deal ended first")
            else:
                self._finish_without_run(
                    record.task_id, "lost", "the container disappeared while the node was down"
                )
        for task_id, container in by_task.items():
            log.warning("removing container %s of unknown task %r", container.container_id[:12],
                        task_id)  # fmt: skip
            await trio.to_thread.run_sync(engine.remove, container.container_id)
        self._sweep_cgroups(nursery)

    def _sweep_cgroups(self, nursery: trio.Nursery) -> None:
        """Parent cgroups of our finished tasks that a crash left behind."""
        if not self._cgroupfs:
            return
        live = {r.task_id for r in self.store.unfinished()}
        prefix = f"{self.instance}-"
        stale: set[str] = set()
        for top in (CGROUP_ROOT / "memory" / "sonm", CGROUP_ROOT / "sonm"):
            try:
                names = [d.name for d in top.iterdir() if d.is_dir()]
            except OSError:
                continue
            stale.update(n[len(prefix) :] for n in names if n.startswith(prefix))
        for task_id in stale - live:
            nursery.start_soon(self._drop_cgroup, task_id)

    # -- queries --------------------------------------------------------------

    def task(self, task_id: str) -> TaskRecord | None:
        return self.store.get(task_id)

    async def published_ports(self, task_id: str) -> dict[int, int]:
        """A running task's exposed ports and the host ports they are published on
        (slots with inbound networking), for the consumer to connect to."""
        engine, _ = self._require()
        record = self.store.get(task_id)
        if record is None or record.container_id is None:
            raise UserError(f"no running task {task_id}")
        state = await trio.to_thread.run_sync(engine.state, record.container_id)
        return state.ports if state is not None else {}

    async def wait_task(self, task_id: str) -> TaskOutcome:
        """The task's outcome once it has ended."""
        record = self.store.get(task_id)
        if record is None:
            raise UserError(f"no task {task_id}")
        if record.state != "finished":
            await self._done.setdefault(task_id, trio.Event()).wait()
        return self.outcome(task_id)

    def outcome(self, task_id: str) -> TaskOutcome:
        record = self.store.get(task_id)
        if record is None:
            raise UserError(f"no task {task_id}")
        if record.state != "finished":
            raise UserError(f"task {task_id} has not finished: {record.error or record.state}")
        archive = self.task_dir(task_id) / "results.tar"
        return TaskOutcome(
            task_id=task_id,
            deal_id=record.deal_id,
            reason=record.reason or "",
            exit_code=record.exit_code,
            error=record.error,
            receipt=Receipt.from_dict(record.receipt) if record.receipt else None,
            results_path=archive if archive.exists() else None,
        )

    async def follow_logs(
        self, task_id: str, *, follow: bool = True, start: Mapping[Stream, int] | None = None
    ) -> AsyncIterator[LogChunk]:
        """The task's output, stdout and stderr apart, from the `start` offsets (0: the
        beginning); with `follow`, new output as it comes until the task ends."""
        sink = self._sinks.get(task_id)
        if sink is not None:
            async for chunk in sink.follow(follow=follow, start=start):
                yield chunk
            return
        if self.store.get(task_id) is None:
            raise UserError(f"no task {task_id}")
        directory = self.task_dir(task_id) / "logs"
        for stream in STREAMS:
            at = (start or {}).get(stream, 0)
            data = read_log(directory, stream, at)
            if data:
                yield LogChunk(stream, data, at)

    def log_offset_since(self, task_id: str, stream: Stream, since_ms: int) -> int:
        """Where the output written at or after `since_ms` (unix ms) begins."""
        return offset_since(self.task_dir(task_id) / "logs", stream, since_ms)

    def log_path(self, task_id: str, stream: Stream) -> Path:
        return self.task_dir(task_id) / "logs" / f"{stream}.log"


async def run_until_engine_fails(
    executor: Executor,
    ready: Callable[[bool], None],
    *,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> EngineError | None:
    """Run the executor and report started either way: a node whose container engine
    is down keeps running without it. `ready(True)` once the executor runs and
    `ready(False)` when it stops; the engine's error when it could not run."""
    reported = False
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(executor.run)
            ready(True)
            task_status.started()
            reported = True
    except EngineError as exc:
        return exc
    finally:
        ready(False)
        if not reported:
            task_status.started()
    return None
