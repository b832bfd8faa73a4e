"""Spent nonces survive a restart through SQLite: a replay after restart is ignored."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gossip import codec
from gossip.replay import ReplayGuard, ReplayRecord
from gossip.topics import ORDERS_TOPIC
from gossip.validation import ValidationResult
from p2pnode.replay_store import ReplayStore
from p2pnode.storage import Storage
from tests.gossip.test_validators import PEER, T0, order, validator


def test_accepted_nonce_is_persisted_and_a_replay_after_restart_is_ignored(tmp_path: Path) -> None:
    storage = Storage.open_in(tmp_path)
    store = ReplayStore(storage)
    guard = ReplayGuard()
    data = codec.encode(order(7))
    assert validator(replay=guard)(ORDERS_TOPIC, data, PEER) is ValidationResult.ACCEPT
    assert store.flush(guard) == 1
    assert store.flush(guard) == 0  # nothing new: nothing written twice
    storage.close()

    reopened = Storage.open_in(tmp_path)  # as after a kill -9 and a restart
    restarted = ReplayGuard()
    assert ReplayStore(reopened).load_into(restarted, now=T0 + 100) == 1
    assert validator(replay=restarted)(ORDERS_TOPIC, data, PEER) is ValidationResult.IGNORE
    # another nonce of the same signer still passes
    assert validator(replay=restarted)(ORDERS_TOPIC, codec.encode(order(8)), PEER) is (
        ValidationResult.ACCEPT
    )


def test_expired_rows_are_dropped_on_load(tmp_path: Path) -> None:
    storage = Storage.open_in(tmp_path)
    store = ReplayStore(storage)
    guard = ReplayGuard()
    guard.record(b"k" * 20, 1, T0 + 10, monotonic=False, now=T0)
    guard.record(b"k" * 20, 2, T0 + 1000, monotonic=False, now=T0)
    assert store.flush(guard) == 2
    fresh = ReplayGuard()
    assert store.load_into(fresh, now=T0 + 500) == 1
    assert not fresh.seen(b"k" * 20, 1) and fresh.seen(b"k" * 20, 2)
    rows = storage.connection.execute("SELECT COUNT(*) FROM replay_spent").fetchone()
    assert rows == (1,)


def test_floor_records_round_trip(tmp_path: Path) -> None:
    store = ReplayStore(Storage.open_in(tmp_path))
    guard = ReplayGuard()
    guard.load([ReplayRecord(b"h" * 20, 5, T0 + 100, True)], now=T0)
    guard.record(b"h" * 20, 9, T0 + 100, monotonic=True, now=T0)
    store.flush(guard)
    fresh = ReplayGuard()
    store.load_into(fresh, now=T0)
    assert fresh.seen(b"h" * 20, 3) and fresh.seen(b"h" * 20, 9)
    assert not fresh.seen(b"h" * 20, 10)


def test_the_whole_unsigned_64_bit_range_round_trips(tmp_path: Path) -> None:
    store = ReplayStore(Storage.open_in(tmp_path))
    guard = ReplayGuard()
    for number in (0, 2**63 - 1, 2**63, 2**64 - 1):
        guard.record(b"n" * 20, number, T0 + 100, monotonic=False, now=T0)
    assert store.flush(guard) == 4
    fresh = ReplayGuard()
    assert store.load_into(fresh, now=T0) == 4
    assert all(fresh.seen(b"n" * 20, n) for n in (0, 2**63 - 1, 2**63, 2**64 - 1))
    assert not fresh.seen(b"n" * 20, 5)


def test_a_failed_write_keeps_the_records_for_the_next_flush(tmp_path: Path) -> None:
    storage = Storage.open_in(tmp_path)
    store = ReplayStore(storage)
    guard = ReplayGuard()
    guard.record(b"f" * 20, 1, T0 + 100, monotonic=False, now=T0)
    storage.connection.execute("DROP TABLE replay_spent")  # the write fails for real
    with pytest.raises(sqlite3.OperationalError):
        store.flush(guard)
    store = ReplayStore(storage)  # the table is back (as after the operator freed the disk)
    assert store.flush(guard) == 1
    fresh = ReplayGuard()
    store.load_into(fresh, now=T0)
    assert fresh.seen(b"f" * 20, 1)
