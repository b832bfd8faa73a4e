"""The tasks service's pure helpers: a refusal's reason fits a signed answer whatever
the error quoted, and `--tail N` finds where the last N lines begin."""

from __future__ import annotations

from pathlib import Path

import pytest

from gossip.eip712 import SigningDomain, address_of_key
from p2pnode.market import taskwire as w
from p2pnode.market.tasksvc import _tail_offset, answer_reason

KEY = bytes(range(1, 33))


@pytest.mark.parametrize(
    "text",
    ["engine said:\nno such image\x1b[2J", "é" * 300, "bad \ud800 surrogate", ""],
)
def test_any_reason_fits_a_signed_answer(text: str) -> None:
    reason = answer_reason(text)
    msg = w.sign(w.TaskAnswer(address_of_key(KEY), 3, 0, reason), SigningDomain(31337), KEY)
    assert w.decode(w.encode(msg), SigningDomain(31337), expect=(w.TaskAnswer,)).reason == reason
    assert len(reason.encode()) <= w.MAX_REASON_BYTES


def test_tail_offset_counts_lines_from_the_end(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    log.write_bytes(b"one\ntwo\nthree\n")
    assert _tail_offset(log, 1) == len(b"one\ntwo\n")
    assert _tail_offset(log, 2) == len(b"one\n")
    assert _tail_offset(log, 3) == 0 and _tail_offset(log, 10) == 0
    log.write_bytes(b"one\ntwo\npartial")  # a last line without its newline yet
    assert _tail_offset(log, 1) == len(b"one\ntwo\n")
    big = b"".join(b"%d\n" % i for i in range(50_000))  # more than one read block
    log.write_bytes(big)
    assert log.read_bytes()[_tail_offset(log, 3) :] == b"49997\n49998\n49999\n"
    assert _tail_offset(tmp_path / "missing.log", 5) == 0


def test_since_takes_durations_unix_seconds_and_iso_times() -> None:
    from p2pnode.cli.task import parse_since
    from p2pnode.errors import UserError

    now = 1_800_000_000.0
    assert parse_since("5m", now) == (now - 300) * 1000
    assert parse_since("1h30m", now) == (now - 5400) * 1000
    assert parse_since("90s", now) == (now - 90) * 1000
    assert parse_since("0.5s", now) == (now - 0.5) * 1000
    assert parse_since("1764160000.25", now) == 1_764_160_000_250
    assert parse_since("2026-11-26T12:00:00Z", now) == 1_795_694_400_000
    assert parse_since("2026-11-26T12:00:00", now) == 1_795_694_400_000  # UTC when unnamed
    assert parse_since("2026-11-26T14:00:00+02:00", now) == 1_795_694_400_000
    for bad in ("", "5 minutes", "yesterday", "m"):
        with pytest.raises(UserError, match="--since"):
            parse_since(bad, now)
