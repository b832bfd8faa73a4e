"""The replay guard's spent nonces, kept in SQLite so a restart does not reopen them.

Without this, every order and announcement still inside its validity window could
be replayed to a node that just restarted, and it would accept and forward them
again. Records are written as soon as the validator accepts a message (before the
delivery reaches any service), so a kill -9 loses no spent nonce.
"""

from __future__ import annotations

import re

from gossip.replay import ReplayGuard, ReplayRecord
from p2pnode.storage import Storage


def _schema(table: str) -> tuple[str, ...]:
    return (
        f"""CREATE TABLE IF NOT EXISTS {table} (
            key BLOB NOT NULL,
            number INTEGER NOT NULL,
            is_floor INTEGER NOT NULL,
            expires REAL NOT NULL,
            PRIMARY KEY (key, number, is_floor)
        )""",
        f"CREATE INDEX IF NOT EXISTS {table}_expires ON {table} (expires)",
    )


_TABLE = re.compile(r"[a-z][a-z0-9_]{0,62}\Z")

# Expired rows are deleted while running at most this often (seconds), not only at start.
EXPIRE_INTERVAL = 60.0

# Nonces and sequences are unsigned 64-bit; SQLite integers are signed 64-bit. Stored
# shifted by 2^63, so the whole range fits and order is kept.
_SHIFT = 2**63


class ReplayStore:
    """One guard's records in one table: the gossip guard's in `replay_spent` (the
    default), the deal service's spent request nonces in a table of their own."""

    def __init__(self, storage: Storage, *, table: str = "replay_spent") -> None:
        if not _TABLE.match(table):
            raise ValueError(f"table = {table!r}: lower-case letters, digits and '_' only")
        self._storage = storage
        self._table = table
        storage.migrate("replay" if table == "replay_spent" else table, _schema(table))
        self.written = 0
        self.expired = 0
        self._last_expire = float("-inf")

    def expire(self, now: float) -> int:
        """Delete the rows whose records have expired (indexed by `expires`)."""
        with self._storage.lock:
            cur = self._storage.connection.execute(
                f"DELETE FROM {self._table} WHERE expires <= ?", (now,)
            )
        self._last_expire = now
        self.expired += cur.rowcount
        return int(cur.rowcount)

    def load_into(self, guard: ReplayGuard, now: float) -> int:
        """Restore unexpired records into `guard`; drops expired rows on the way."""
        with self._storage.lock:
            db = self._storage.connection
            db.execute(f"DELETE FROM {self._table} WHERE expires <= ?", (now,))
            rows = db.execute(
                f"SELECT key, number, expires, is_floor FROM {self._table}"
            ).fetchall()
        records = [
            ReplayRecord(bytes(k), int(n) + _SHIFT, float(e), bool(f)) for k, n, e, f in rows
        ]
        guard.load(records, now)
        return len(records)

    def flush(self, guard: ReplayGuard, *, now: float | None = None) -> int:
        """Persist what `guard` recorded since the last flush; given `now`, also drop
        expired rows once per EXPIRE_INTERVAL, so the table does not grow between
        restarts."""
        if now is not None and now - self._last_expire >= EXPIRE_INTERVAL:
            self.expire(now)
        records = guard.drain_records()
        if not records:
            return 0
        with self._storage.lock:
            db = self._storage.connection
            db.execute("BEGIN")
            try:
                db.executemany(
                    f"INSERT OR REPLACE INTO {self._table} (key, number, is_floor, expires) "
                    "VALUES (?, ?, ?, ?)",
                    [(r.key, r.number - _SHIFT, int(r.is_floor), r.expires) for r in records],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                guard.requeue(records)  # written with the next flush, not lost
                raise
        self.written += len(records)
        return len(records)
