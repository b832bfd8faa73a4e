"""A consumer resuming a remote worker's logs at a byte offset gets each byte once."""

from __future__ import annotations

from p2pnode.market import taskwire
from p2pnode.worker.hub import resume_at

OUT = int(taskwire.LogStream.STDOUT)
ERR = int(taskwire.LogStream.STDERR)


def _replay(records: list[taskwire.LogRecord], resume: dict[int, int]) -> dict[int, bytes]:
    got: dict[int, bytes] = {OUT: b"", ERR: b""}
    pos: dict[int, int] = {}
    for r in records:
        kept = resume_at(r, resume)
        if kept is None:
            continue
        pos.setdefault(kept.stream, kept.offset)
        assert kept.offset == pos[kept.stream] + len(got[kept.stream]) or not kept.data
        got[kept.stream] += kept.data
    return got


def test_resume_cuts_each_stream_at_its_offset() -> None:
    out = b"line one\nline two\nline three\n"
    err = b"warn\n"
    records = [
        taskwire.LogRecord(OUT, 0, b""),
        taskwire.LogRecord(ERR, 0, b""),
        taskwire.LogRecord(OUT, 0, out[:9]),
        taskwire.LogRecord(OUT, 9, out[9:20]),
        taskwire.LogRecord(ERR, 0, err),
        taskwire.LogRecord(OUT, 20, out[20:]),
    ]
    for cut in range(len(out) + 1):
        got = _replay(records, {OUT: cut, ERR: len(err)})
        assert got[OUT] == out[cut:]
        assert got[ERR] == b""
    assert _replay(records, {OUT: 0, ERR: 0}) == {OUT: out, ERR: err}


def test_start_record_moves_to_the_resume_offset() -> None:
    kept = resume_at(taskwire.LogRecord(OUT, 0, b""), {OUT: 42})
    assert kept == taskwire.LogRecord(OUT, 42, b"")
    assert resume_at(taskwire.LogRecord(OUT, 0, b"abc"), {OUT: 3}) is None
    assert resume_at(taskwire.LogRecord(OUT, 50, b"abc"), {OUT: 42}) == taskwire.LogRecord(
        OUT, 50, b"abc"
    )
