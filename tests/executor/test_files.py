"""The pieces on disk: the capped log sink and the results archive."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import pytest
import trio

from p2pnode.executor.logsink import MARK, LogSink, index_path, offset_since
from p2pnode.executor.results import (
    ResultsArchiveError,
    ResultsTooLarge,
    pack_results,
    sha256_file,
    unpack_results,
)


def test_log_sink_caps_hashes_and_follows(tmp_path: Path) -> None:
    async def main() -> None:
        sink = LogSink(tmp_path / "logs", max_bytes=10)
        got: list[tuple[str, bytes]] = []

        async def follower() -> None:
            async for chunk in sink.follow():
                got.append((chunk.stream, chunk.data))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(follower)
            await trio.sleep(0.01)
            sink.write("stdout", b"abc")
            await trio.sleep(0.01)
            assert got == [("stdout", b"abc")]  # delivered while running
            sink.write("stderr", b"12345")
            sink.write("stdout", b"defghij")  # only 2 bytes fit
            sink.close()
        assert b"".join(d for s, d in got if s == "stdout") == b"abcde"
        assert b"".join(d for s, d in got if s == "stderr") == b"12345"
        assert sink.dropped == 5
        assert sink.sha256("stdout") == hashlib.sha256(b"abcde").digest()
        assert sink.path("stdout").read_bytes() == b"abcde"
        assert sink.sha256("stderr") == sha256_file(sink.path("stderr"))

    trio.run(main)


def test_log_sink_indexes_when_bytes_were_written(tmp_path: Path) -> None:
    """`--since` finds its offset from the index: one mark per tenth of a second with
    output, so a chatty second costs at most ten 16-byte records."""
    now = [1000.0]
    sink = LogSink(tmp_path / "logs", max_bytes=10_000, clock=lambda: now[0])
    sink.write("stdout", b"a\n")  # 1000.000
    now[0] = 1000.05
    sink.write("stdout", b"b\n")  # same tenth: no new mark
    now[0] = 1002.0
    sink.write("stdout", b"c\n")
    sink.write("stderr", b"e\n")
    for _ in range(100):  # a burst within one tenth: one mark
        sink.write("stdout", b"x")
    sink.close()
    d = tmp_path / "logs"
    assert len(index_path(d, "stdout").read_bytes()) == 2 * MARK.size  # 1000.0 and 1002.0
    assert offset_since(d, "stdout", 0) == 0
    assert offset_since(d, "stdout", 1_000_000) == 0
    assert offset_since(d, "stdout", 1_000_080) == 0  # within the first tenth
    assert offset_since(d, "stdout", 1_000_100) == 4  # "c" and after
    assert offset_since(d, "stdout", 1_002_000) == 4
    assert offset_since(d, "stdout", 1_002_001) == 4  # the tenth it falls in counts
    assert offset_since(d, "stdout", 1_002_100) == 106  # nothing since: the end
    assert offset_since(d, "stderr", 1_001_000) == 0
    assert offset_since(tmp_path / "none", "stdout", 5) == 0


def test_log_sink_follows_from_offsets(tmp_path: Path) -> None:
    async def main() -> None:
        sink = LogSink(tmp_path / "logs", max_bytes=1000)
        sink.write("stdout", b"0123456789")
        sink.write("stderr", b"abc")
        sink.close()
        got = [(c.stream, c.offset, c.data) async for c in sink.follow(start={"stdout": 4})]
        assert got == [("stdout", 4, b"456789"), ("stderr", 0, b"abc")]

    trio.run(main)


def test_pack_is_deterministic_and_capped(tmp_path: Path) -> None:
    src = tmp_path / "results"
    (src / "sub").mkdir(parents=True)
    (src / "b.txt").write_bytes(b"b" * 100)
    (src / "sub" / "a.txt").write_bytes(b"a")
    os.symlink("/etc/passwd", src / "link")
    os.mkfifo(src / "fifo")
    packed = pack_results(src, tmp_path / "r.tar", max_bytes=1000)
    assert packed.files == 2 and packed.sha256 == sha256_file(tmp_path / "r.tar")
    with tarfile.open(packed.path) as tar:
        names = tar.getnames()
        assert names == ["sub", "b.txt", "link", "sub/a.txt"]  # no fifo
        assert tar.getmember("link").issym()  # stored as a link, never followed
    again = pack_results(src, tmp_path / "r2.tar", max_bytes=1000)
    assert again.sha256 == packed.sha256
    with pytest.raises(ResultsTooLarge, match="storage"):
        pack_results(src, tmp_path / "r3.tar", max_bytes=50)


def test_unpack_refuses_links_and_escapes(tmp_path: Path) -> None:
    src = tmp_path / "results"
    src.mkdir()
    (src / "ok.txt").write_text("fine")
    packed = pack_results(src, tmp_path / "ok.tar", max_bytes=100)
    assert unpack_results(packed.path, tmp_path / "out") == ["ok.txt"]
    assert (tmp_path / "out" / "ok.txt").read_text() == "fine"

    os.symlink("/etc/passwd", src / "link")
    with_link = pack_results(src, tmp_path / "link.tar", max_bytes=100)
    with pytest.raises(ResultsArchiveError, match="link"):
        unpack_results(with_link.path, tmp_path / "out2")

    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        import io

        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ResultsArchiveError):
        unpack_results(evil, tmp_path / "out3")
    assert not (tmp_path / "escape.txt").exists()
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ResultsArchiveError):
        unpack_results(tmp_path / "junk.tar", tmp_path / "out4")


def _v1_tree(root: Path) -> None:
    """A hybrid host's /sys/fs/cgroup as far as TaskCgroup.prepare reads it."""
    for name in ("memory", "cpu,cpuacct", "pids", "cpuset", "unified"):
        (root / name).mkdir(parents=True)
        (root / name / "cgroup.procs").write_text("")
    (root / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")


def test_task_cgroup_is_prepared_in_every_v1_hierarchy(tmp_path: Path) -> None:
    from p2pnode.executor.usage import TaskCgroup

    _v1_tree(tmp_path)
    cgroup = TaskCgroup("/sonm/x-task", root=tmp_path)
    assert cgroup.prepare()
    for name in ("memory", "cpu,cpuacct", "pids", "cpuset"):
        assert (tmp_path / name / "sonm" / "x-task").is_dir(), name
    assert not (tmp_path / "unified" / "sonm").exists()  # the engine's business
    for level in ("sonm", "sonm/x-task"):
        assert (tmp_path / "cpuset" / level / "cpuset.cpus").read_text() == "0-1\n"
        assert (tmp_path / "cpuset" / level / "cpuset.mems").read_text() == "0\n"
    assert cgroup.prepare()  # again: nothing changes, no error
    assert (tmp_path / "cpuset" / "sonm" / "x-task" / "cpuset.cpus").read_text() == "0-1\n"


def test_task_cgroup_is_left_to_the_engine_on_a_v2_host(tmp_path: Path) -> None:
    from p2pnode.executor.usage import TaskCgroup

    (tmp_path / "cgroup.procs").write_text("")
    assert not TaskCgroup("/sonm/x-task", root=tmp_path).prepare()
    assert not (tmp_path / "sonm").exists()
