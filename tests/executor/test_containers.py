"""The executor against a real engine: limits inside the container, the lock-down,
how tasks end, logs, results and receipts, and a restart. Each container is
busybox and lives about a second."""

from __future__ import annotations

import hashlib
import os
import tarfile
import time
from pathlib import Path

import pytest
import trio

from p2pnode.executor import (
    Executor,
    ReceiptError,
    SlotLimits,
    TaskRefused,
    TaskStartError,
    verify_receipt,
)
from p2pnode.executor.executor import DealTask
from p2pnode.executor.logsink import read_log
from p2pnode.executor.results import sha256_file
from p2pnode.executor.spec import InputFile
from tests.executor.conftest import DOMAIN, IMAGE, deal_task, drive

pytestmark = pytest.mark.engine

PROBE = r"""
mem=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes)
if [ -f /sys/fs/cgroup/cpu.max ]; then cpu=$(cat /sys/fs/cgroup/cpu.max)
else d=/sys/fs/cgroup/cpu; cpu="$(cat $d/cpu.cfs_quota_us) $(cat $d/cpu.cfs_period_us)"; fi
pids=$(cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max)
echo "mem=$mem"
echo "cpu=$cpu"
echo "pids=$pids"
grep CapEff /proc/self/status | tr -d '\t' | sed 's/CapEff:/capeff=/'
if touch /rootfs-probe 2>/dev/null; then echo rootfs=writable; else echo rootfs=read-only; fi
if echo done > /results/out.txt; then echo results=writable; fi
mkdir -p /results/sub && cp input.txt /results/sub/copy.txt
echo "pwd=$(pwd)"
echo to-stderr >&2
sleep 0.5  # long enough for a usage sample
"""


def _kv(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_limits_lockdown_results_and_receipt(make_executor, tmp_path: Path) -> None:
    ex = make_executor()
    deal = deal_task(
        "probe",
        ["sh", "-c", PROBE],
        ram=48 * 2**20,
        cpu=0.5,
        inputs=(InputFile("input.txt", b"consumer input\n"),),
    )
    deal = DealTask(
        deal.deal_id,
        deal.task_id,
        deal.spec,
        SlotLimits(cpu_cores=0.5, ram_bytes=48 * 2**20, pids_limit=77),
        deal.ends_at,
    )

    async def body(ex: Executor):
        await ex.start_task(deal)
        return await ex.wait_task("probe")

    outcome = drive(ex, body)
    assert outcome.reason == "exited" and outcome.exit_code == 0, outcome
    logs = ex.task_dir("probe") / "logs"
    out = _kv(read_log(logs, "stdout").decode())
    assert read_log(logs, "stderr") == b"to-stderr\n"
    # the slot's limits, as the kernel holds them inside the container
    assert int(out["mem"]) == 48 * 2**20
    quota, period = out["cpu"].split()
    assert int(quota) / int(period) == pytest.approx(0.5)
    assert out["pids"] == "77"
    # the lock-down
    assert int(out["capeff"], 16) == 0
    assert out["rootfs"] == "read-only"
    assert out["results"] == "writable"
    assert out["pwd"] == "/work"
    # results and receipt
    archive = outcome.results_path
    assert archive is not None
    with tarfile.open(archive) as tar:
        assert tar.extractfile("out.txt").read() == b"done\n"  # type: ignore[union-attr]
        assert tar.extractfile("sub/copy.txt").read() == b"consumer input\n"  # type: ignore[union-attr]
    receipt = outcome.receipt
    assert receipt is not None
    assert receipt.deal_id == 7 and receipt.task_id == "probe" and receipt.exit_code == 0
    assert receipt.image_digest.startswith("sha256:")
    assert receipt.ended_at_ms >= receipt.started_at_ms > 0
    assert receipt.peak_memory_bytes > 0 and receipt.cpu_time_ns > 0
    verify_receipt(
        receipt,
        domain=DOMAIN,
        supplier=ex.supplier,
        deal_id=7,
        results_sha256=sha256_file(archive),
        stdout_sha256=sha256_file(logs / "stdout.log"),
        stderr_sha256=sha256_file(logs / "stderr.log"),
    )
    # a tampered archive is rejected
    tampered = tmp_path / "tampered.tar"
    data = bytearray(archive.read_bytes())
    data[600] ^= 1
    tampered.write_bytes(bytes(data))
    with pytest.raises(ReceiptError, match="results archive does not match"):
        verify_receipt(
            receipt,
            domain=DOMAIN,
            supplier=ex.supplier,
            deal_id=7,
            results_sha256=sha256_file(tampered),
        )
    # the container is gone once the task is accounted for
    assert ex.engine is not None and not ex.engine.find({"org.sonm.task": "probe"})


def test_oom_kill_is_reported(make_executor) -> None:
    ex = make_executor()
    hog = "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived"
    deal = deal_task("hog", ["sh", "-c", hog], ram=16 * 2**20)

    async def body(ex: Executor):
        await ex.start_task(deal)
        return await ex.wait_task("hog")

    outcome = drive(ex, body)
    assert outcome.reason == "oom-killed", outcome
    assert outcome.exit_code == 137
    assert outcome.receipt is not None and outcome.receipt.reason == "oom-killed"
    assert b"survived" not in read_log(ex.task_dir("hog") / "logs", "stdout")


def test_failed_start_is_a_clear_error(make_executor) -> None:
    ex = make_executor()

    async def body(ex: Executor):
        with pytest.raises(TaskStartError, match="no-such-binary"):
            await ex.start_task(deal_task("nostart", ["/bin/no-such-binary"]))
        return ex.outcome("nostart")

    outcome = drive(ex, body)
    assert outcome.reason == "start-failed"
    assert "no-such-binary" in (outcome.error or "")
    assert outcome.receipt is None


def test_exit_code_of_a_failing_task(make_executor) -> None:
    ex = make_executor()

    async def body(ex: Executor):
        await ex.start_task(deal_task("fails", ["sh", "-c", "echo bad >&2; exit 3"]))
        return await ex.wait_task("fails")

    outcome = drive(ex, body)
    assert (outcome.reason, outcome.exit_code) == ("failed", 3)
    assert read_log(ex.task_dir("fails") / "logs", "stderr") == b"bad\n"


def test_disallowed_image_is_refused_before_anything_runs(make_executor) -> None:
    ex = make_executor(allowed_images=("localhost/other:1.0",))

    async def body(ex: Executor):
        with pytest.raises(TaskRefused, match="allow-list"):
            await ex.start_task(deal_task("img", ["true"]))
        with pytest.raises(TaskRefused, match="allow-list"):
            await ex.start_task(deal_task("img2", ["true"], image="localhost/nowhere:1"))

    drive(ex, body)
    assert ex.task("img") is None and ex.task("img2") is None
    closed = make_executor(allowed_images=())

    async def body2(ex: Executor):
        with pytest.raises(TaskRefused, match="allows no images"):
            await ex.start_task(deal_task("img3", ["true"]))

    drive(closed, body2)


def test_allowed_image_that_cannot_be_had(make_executor) -> None:
    ex = make_executor(allowed_images=("localhost/absent:1",))

    async def body(ex: Executor):
        with pytest.raises(TaskStartError, match=r"localhost/absent:1.*cannot be pulled"):
            await ex.start_task(deal_task("absent", ["true"], image="localhost/absent:1"))
        return ex.outcome("absent")

    assert drive(ex, body).reason == "start-failed"


def test_allowed_by_digest(make_executor, engine) -> None:
    digest = engine.image(IMAGE, pull=False).id
    ex = make_executor(allowed_images=(digest,))

    async def body(ex: Executor):
        await ex.start_task(deal_task("bydigest", ["true"]))
        return await ex.wait_task("bydigest")

    outcome = drive(ex, body)
    assert outcome.reason == "exited" and outcome.receipt.image_digest == digest


def test_logs_stream_while_running_with_streams_apart(make_executor) -> None:
    ex = make_executor()
    script = "echo out1; echo err1 >&2; sleep 1; echo out2; echo err2 >&2"

    async def body(ex: Executor):
        await ex.start_task(deal_task("talk", ["sh", "-c", script]))
        got: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        first_at = None
        async for chunk in ex.follow_logs("talk"):
            got[chunk.stream] += chunk.data
            if first_at is None:
                first_at = time.time()
        outcome = await ex.wait_task("talk")
        return got, first_at, outcome

    got, first_at, outcome = drive(ex, body)
    assert got == {"stdout": b"out1\nout2\n", "stderr": b"err1\nerr2\n"}
    # the first line arrived while the task was still running (it sleeps 1 s after it)
    assert first_at * 1000 < outcome.receipt.ended_at_ms - 500
    assert outcome.receipt.stdout_bytes == 10 and outcome.receipt.stderr_bytes == 10


def test_log_cap_drops_the_excess(make_executor) -> None:
    ex = make_executor(log_max_bytes=4096)
    deal = deal_task("chatty", ["sh", "-c", "head -c 20000 /dev/zero | tr '\\0' x"])

    async def body(ex: Executor):
        await ex.start_task(deal)
        return await ex.wait_task("chatty")

    outcome = drive(ex, body)
    assert ex.log_path("chatty", "stdout").stat().st_size == 4096
    assert outcome.receipt.stdout_bytes == 4096
    assert outcome.receipt.log_bytes_dropped == 20000 - 4096


def test_deadline_and_preterm_close_stop_the_container(make_executor) -> None:
    ex = make_executor()

    async def body(ex: Executor):
        await ex.start_task(deal_task("late", ["sleep", "30"], deal_id=1, seconds=1.0))
        await ex.start_task(deal_task("closed", ["sleep", "30"], deal_id=2))
        await trio.sleep(0.3)
        assert await ex.stop_deal(2) == 1
        return await ex.wait_task("late"), await ex.wait_task("closed")

    t0 = time.time()
    late, closed = drive(ex, body)
    assert late.reason == "deadline" and closed.reason == "closed"
    assert late.receipt is not None and closed.receipt is not None
    assert time.time() - t0 < 15


def test_results_over_the_slot_storage(make_executor) -> None:
    ex = make_executor()
    deal = deal_task("big", ["sh", "-c", "head -c 10000 /dev/zero > /results/big"])
    deal = DealTask(
        deal.deal_id,
        deal.task_id,
        deal.spec,
        SlotLimits(cpu_cores=0.5, ram_bytes=32 * 2**20, storage_bytes=4096),
        deal.ends_at,
    )

    async def body(ex: Executor):
        await ex.start_task(deal)
        return await ex.wait_task("big")

    outcome = drive(ex, body)
    # the task exits at once; the disk watch may catch the write first (it looks every
    # second): either way the results over the slot's storage are not handed over
    assert outcome.reason in ("exited", "storage-exceeded")
    assert "storage" in (outcome.error or "")
    # no archive is kept to be taken for "no files": the receipt signs for none
    assert outcome.results_path is None
    assert not (ex.task_dir("big") / "results.tar").exists()
    assert outcome.receipt is not None and outcome.receipt.results_bytes == 0
    assert outcome.receipt.results_sha256 == hashlib.sha256(b"").digest()


def test_writing_past_the_slot_storage_stops_the_task(make_executor) -> None:
    ex = make_executor(disk_interval=0.2)
    deal = deal_task("filler", ["sh", "-c", "head -c 3000000 /dev/zero > big; sleep 30"])
    deal = DealTask(
        deal.deal_id,
        deal.task_id,
        deal.spec,
        SlotLimits(cpu_cores=0.5, ram_bytes=32 * 2**20, storage_bytes=2**20),
        deal.ends_at,
    )

    async def body(ex: Executor):
        await ex.start_task(deal)
        return await ex.wait_task("filler")

    t0 = time.time()
    outcome = drive(ex, body)
    assert outcome.reason == "storage-exceeded"
    assert outcome.receipt is not None and outcome.receipt.reason == "storage-exceeded"
    assert time.time() - t0 < 10  # not the 30 s the task wanted


def test_network_modes(make_executor) -> None:
    from gossip.orders import NetworkType

    ex = make_executor()
    show = ["sh", "-c", "ip -o addr | awk '{print $2}' | sort -u | tr '\\n' ' '; sleep 1"]
    closed = deal_task("net-none", show)
    public = deal_task("net-inout", show, exposed_ports=(8080,))
    public = DealTask(
        public.deal_id,
        public.task_id,
        public.spec,
        SlotLimits(cpu_cores=0.5, ram_bytes=32 * 2**20, network=NetworkType.INBOUND_OUTBOUND),
        public.ends_at,
    )

    async def body(ex: Executor):
        await ex.start_task(closed)
        await ex.start_task(public)
        ports = await ex.published_ports("net-inout")
        # the labels find a deal's containers
        labels = {"org.sonm.deal": "7", "org.sonm.task": "net-none"}
        labelled = await trio.to_thread.run_sync(ex.engine.find, labels)
        assert [c.container_id for c in labelled] == [ex.task("net-none").container_id]
        await ex.wait_task("net-none")
        await ex.wait_task("net-inout")
        return ports

    ports = drive(ex, body)
    assert read_log(ex.task_dir("net-none") / "logs", "stdout").split() == [b"lo"]
    assert read_log(ex.task_dir("net-inout") / "logs", "stdout").split() == [b"eth0", b"lo"]
    assert set(ports) == {8080} and 0 < ports[8080] < 65536


def test_spec_over_the_slot_is_refused(make_executor) -> None:
    ex = make_executor()
    deal = deal_task("ports", ["true"], exposed_ports=(8080,))

    async def body(ex: Executor):
        with pytest.raises(TaskRefused, match="exposed_ports"):
            await ex.start_task(deal)

    drive(ex, body)


KILLED_DAEMON = """
import sys
from pathlib import Path

import trio

from p2pnode.executor import Executor, ExecutorSettings
from p2pnode.storage import Storage
from tests.executor.conftest import DOMAIN, IMAGE, SUPPLIER_KEY, deal_task

base = Path(sys.argv[1])
ex = Executor(Storage.open_in(base), base, ExecutorSettings(allowed_images=(IMAGE,)),
              signer_key=SUPPLIER_KEY, domain=DOMAIN)


async def main():
    async with trio.open_nursery() as nursery:
        await nursery.start(ex.run)
        seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 60
        await ex.start_task(deal_task("killed", ["sh", "-c", sys.argv[2]], seconds=seconds))
        print("started", flush=True)
        await trio.sleep_forever()


trio.run(main)
"""


def _start_and_kill_9(node: Path, script: str, *deadline_s: str) -> None:
    """Run KILLED_DAEMON on `node` with `script` (and a deadline in seconds, if given)
    until it says its task started, then SIGKILL it: a daemon gone mid-task."""
    import signal
    import subprocess
    import sys

    from tests.conftest import ROOT

    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_DAEMON, str(node), script, *deadline_s],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"started\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


@pytest.mark.slow
def test_kill_9_then_a_new_executor_finishes_the_task(make_executor, engine, tmp_path) -> None:
    """A daemon killed with SIGKILL mid-task: the next one, on the same database, finds
    the container by label, re-reads its logs, finishes it; it also starts a task that
    was recorded but never created, and removes a container of ours it has no task for."""
    script = "echo before; sleep 1.5; echo after; echo r > /results/r.txt"
    _start_and_kill_9(tmp_path / "node", script)

    second = make_executor()
    assert second.task("killed").state == "running"
    later = deal_task("later", ["sh", "-c", "echo late"])
    second.store.record("later", 8, later.spec, later.limits, later.ends_at)
    stray = engine.client.containers.create(
        IMAGE,
        ["sleep", "30"],
        labels={"org.sonm.executor": second.instance, "org.sonm.task": "stray"},
        network_mode="none",
    )

    async def finish(ex: Executor):
        return await ex.wait_task("killed"), await ex.wait_task("later")

    outcome, late = drive(second, finish)
    assert outcome.reason == "exited", outcome
    logs = second.task_dir("killed") / "logs"
    assert read_log(logs, "stdout") == b"before\nafter\n"
    with tarfile.open(outcome.results_path) as tar:
        assert tar.extractfile("r.txt").read() == b"r\n"  # type: ignore[union-attr]
    verify_receipt(
        outcome.receipt,
        domain=DOMAIN,
        supplier=second.supplier,
        deal_id=7,
        results_sha256=sha256_file(outcome.results_path),
        stdout_sha256=sha256_file(logs / "stdout.log"),
    )
    assert late.reason == "exited"
    assert read_log(second.task_dir("later") / "logs", "stdout") == b"late\n"
    assert engine.state(stray.id) is None


@pytest.mark.slow
def test_deadline_holds_across_a_kill_9_and_a_new_executor(make_executor, tmp_path) -> None:
    """The deadline is the deal's end, not the daemon's: a task started with a short
    deadline by a daemon killed with SIGKILL is stopped by the next one, which
    re-attaches, at the original deadline and with the deadline reason."""
    seconds = 6.0  # past the first daemon's start also on a loaded machine
    before = time.time()
    _start_and_kill_9(tmp_path / "node", "sleep 60", str(seconds))
    after = time.time()  # the deadline lies in [before + seconds, after + seconds]

    second = make_executor()
    assert second.task("killed").state == "running"

    async def finish(ex: Executor):
        return await ex.wait_task("killed")

    outcome = drive(second, finish)
    ended = time.time()
    assert outcome.reason == "deadline", outcome
    assert outcome.receipt is not None and outcome.receipt.reason == "deadline"
    stopped = outcome.receipt.ended_at_ms / 1000
    assert before + seconds - 0.5 <= stopped <= after + seconds + 10, stopped - before
    assert ended < after + seconds + 20  # not the command's 60 s


@pytest.mark.slow
def test_engine_gone_mid_run_keeps_the_task_for_the_next_start(make_executor, tmp_path) -> None:
    """The engine stops answering after the executor started: starting a task is a
    clear EngineUnavailable, the task stays recorded (it was accepted), and the next
    executor, with an engine again, starts and finishes it."""
    import shutil
    import subprocess

    from p2pnode.executor import EngineUnavailable, ExecutorSettings
    from p2pnode.storage import Storage
    from tests.executor.conftest import SUPPLIER_KEY

    podman = shutil.which("podman")
    if podman is None:
        reason = "needs podman to run a second API service that can be stopped"
        if os.environ.get("SONM_REQUIRE_ENGINE") == "1":
            pytest.fail(f"{reason}; SONM_REQUIRE_ENGINE=1")
        pytest.skip(f"{reason}; set SONM_REQUIRE_ENGINE=1 to fail instead")
    sock = tmp_path / "engine.sock"
    service = subprocess.Popen(
        [podman, "system", "service", "--time=0", f"unix://{sock}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,  # podman 4.3's conmon writes an "oom" marker into the service's cwd
    )
    try:
        from p2pnode.executor import Engine, EngineError

        deadline = time.time() + 30
        while True:  # until the second service answers
            try:
                Engine.connect(f"unix://{sock}").close()
                break
            except EngineError:
                assert time.time() < deadline, "the second podman service did not answer"
                time.sleep(0.1)
        storage = Storage.open_in(tmp_path / "node")
        ex = Executor(
            storage,
            tmp_path / "node",
            ExecutorSettings(engine=f"unix://{sock}", allowed_images=(IMAGE,)),
            signer_key=SUPPLIER_KEY,
            domain=DOMAIN,
        )

        async def body(ex: Executor):
            service.kill()
            service.wait(10)
            with pytest.raises(EngineUnavailable, match="does not answer"):
                await ex.start_task(deal_task("waits", ["sh", "-c", "echo ran"]))

        drive(ex, body)
        storage.close()
    finally:
        if service.poll() is None:
            service.kill()
            service.wait(10)
    second = make_executor()
    assert second.task("waits").state == "recorded"

    async def finish(ex: Executor):
        return await ex.wait_task("waits")

    outcome = drive(second, finish)
    assert outcome.reason == "exited"
    assert read_log(second.task_dir("waits") / "logs", "stdout") == b"ran\n"


def test_a_task_quiet_on_one_stream_past_the_api_timeout_keeps_its_logs(
    make_executor, tmp_path: Path
) -> None:
    """A followed log is silent while the task writes nothing to it: that is no engine
    failure (the log streams have no read timeout; the API calls keep theirs)."""
    from p2pnode.executor import Engine, ExecutorSettings, engine_address
    from p2pnode.storage import Storage
    from tests.executor.conftest import SUPPLIER_KEY

    engine = Engine(engine_address(), timeout=5)
    storage = Storage.open_in(tmp_path / "quiet")
    ex = Executor(
        storage,
        tmp_path / "quiet",
        ExecutorSettings(allowed_images=(IMAGE,), stop_grace=1.0),
        signer_key=SUPPLIER_KEY,
        domain=DOMAIN,
        engine=engine,
    )
    script = "echo a; sleep 8; echo b"  # nothing on stderr, 8 s > the 5 s timeout

    async def body(ex: Executor):
        await ex.start_task(deal_task("quiet", ["sh", "-c", script]))
        return await ex.wait_task("quiet")

    try:
        outcome = drive(ex, body)
    finally:
        for c in engine.find({"org.sonm.executor": ex.instance}):
            engine.remove(c.container_id)
        engine.close()
        storage.close()
    assert outcome.reason == "exited", outcome.error
    assert read_log(tmp_path / "quiet" / "executor" / "tasks" / "quiet" / "logs", "stdout") == (
        b"a\nb\n"
    )


def test_fetched_blobs_are_placed_in_the_work_dir(make_executor) -> None:
    import hashlib

    from p2pnode.executor.spec import BlobInput

    ex = make_executor()
    data = bytes(range(256)) * 400
    sha = hashlib.sha256(data).digest()
    blobs = (BlobInput("in/a.bin", sha, len(data)), BlobInput("b.bin", sha, len(data), 0o600))
    deal = deal_task(
        "blobs", ["sh", "-c", "sha256sum in/a.bin b.bin; stat -c %a b.bin"], blobs=blobs
    )

    async def body(ex: Executor):
        with pytest.raises(TaskRefused, match=r"blob in/a\.bin has not been fetched"):
            await ex.start_task(deal)
        staged = ex.blob_dir("blobs")
        staged.mkdir(parents=True)
        (staged / sha.hex()).write_bytes(data)
        await ex.start_task(deal)
        return await ex.wait_task("blobs")

    outcome = drive(ex, body)
    assert outcome.reason == "exited", outcome.error
    out = read_log(ex.task_dir("blobs") / "logs", "stdout").decode().split()
    assert out == [sha.hex(), "in/a.bin", sha.hex(), "b.bin", "600"]
    assert not ex.blob_dir("blobs").exists()  # moved (and copied once) into the work dir
