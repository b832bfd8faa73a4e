"""The peers table: record replacement by seq, failure counts, WAL, reopening."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from p2pnode.storage import Storage


def test_wal_mode_and_survives_reopen(tmp_path: Path) -> None:
    s = Storage.open_in(tmp_path)
    s.upsert_peer("A", ["/ip4/127.0.0.1/tcp/1"], source="seed", now=10.0)
    s.close()
    raw = sqlite3.connect(tmp_path / "node.sqlite3")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()
    s = Storage.open_in(tmp_path)
    row = s.get_peer("A")
    assert row is not None and row.addrs == ("/ip4/127.0.0.1/tcp/1",) and row.source == "seed"


def test_newer_record_replaces_older_never_the_reverse(tmp_path: Path) -> None:
    s = Storage.open_in(tmp_path)
    assert s.upsert_peer("A", ["/a1"], source="px", record=b"r5", seq=5, now=1.0)
    assert s.upsert_peer("A", ["/a2"], source="px", record=b"r7", seq=7, now=2.0)
    assert not s.upsert_peer("A", ["/old"], source="px", record=b"r6", seq=6, now=3.0)
    row = s.get_peer("A")
    assert row is not None
    assert (row.addrs, row.record, row.seq) == (("/a2",), b"r7", 7)
    assert row.last_seen == 3.0  # still heard of, even if the record was stale


def test_a_newer_record_clears_the_failures(tmp_path: Path) -> None:
    s = Storage.open_in(tmp_path)
    s.upsert_peer("A", ["/old"], source="px", record=b"r1", seq=1)
    s.mark_failed("A")
    s.mark_failed("A")
    s.upsert_peer("A", ["/new"], source="px", record=b"r2", seq=2)
    row = s.get_peer("A")
    assert row is not None and row.failures == 0 and row.addrs == ("/new",)


def test_a_signed_record_wins_over_a_seed_address(tmp_path: Path) -> None:
    s = Storage.open_in(tmp_path)
    s.upsert_peer("S", ["/seed"], source="seed")
    s.upsert_peer("S", ["/signed"], source="px", record=b"r", seq=1)
    s.upsert_peer("S", ["/seed"], source="seed")  # config re-read must not undo it
    row = s.get_peer("S")
    assert row is not None and row.addrs == ("/signed",) and row.record == b"r"


def test_failures_count_up_and_reset_on_connect(tmp_path: Path) -> None:
    s = Storage.open_in(tmp_path)
    s.upsert_peer("A", ["/a"], source="px")
    assert s.mark_failed("A") == 1
    assert s.mark_failed("A") == 2
    s.mark_connected("A", now=50.0)
    row = s.get_peer("A")
    assert row is not None and row.failures == 0 and row.last_connected == 50.0
    assert s.mark_failed("unknown") == 0


def test_list_count_forget(tmp_path: Path) -> None:
    s = Storage.open_in(tmp_path)
    for i in range(5):
        s.upsert_peer(f"P{i}", [f"/p{i}"], source="px", now=float(i))
    assert s.count_peers() == 5
    assert [r.peer_id for r in s.list_peers(limit=2)] == ["P4", "P3"]
    s.forget_peer("P4")
    assert s.count_peers() == 4 and s.get_peer("P4") is None


def test_areas_add_their_own_tables(tmp_path: Path) -> None:
    s = Storage.open_in(tmp_path)
    s.migrate("demo", ["CREATE TABLE IF NOT EXISTS demo (k TEXT PRIMARY KEY)"])
    s.migrate("demo", ["CREATE TABLE IF NOT EXISTS demo (k TEXT PRIMARY KEY)"])  # idempotent
    with s.lock:
        s.connection.execute("INSERT INTO demo VALUES ('x')")
        assert s.connection.execute("SELECT k FROM demo").fetchall() == [("x",)]


def test_prune_forgets_failing_peers_and_the_oldest_beyond_the_cap(tmp_path: Path) -> None:
    s = Storage.open_in(tmp_path)
    s.upsert_peer("seed", ["/s"], source="seed", now=0.0)
    for _ in range(5):
        s.mark_failed("seed")  # seeds are never forgotten
    s.upsert_peer("flaky", ["/f"], source="px", now=100.0)
    for _ in range(3):
        s.mark_failed("flaky")
    for i in range(6):
        s.upsert_peer(f"P{i}", [f"/p{i}"], source="px", now=float(i))
    assert s.prune_peers(max_rows=100, max_failures=3) == 1
    assert s.get_peer("flaky") is None and s.get_peer("seed") is not None
    assert s.prune_peers(max_rows=4, max_failures=3) == 2  # P0 and P1, the least recently seen
    assert {r.peer_id for r in s.list_peers()} == {"seed", "P2", "P3", "P4", "P5"}
