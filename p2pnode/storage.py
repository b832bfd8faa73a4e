"""The node's durable state in one SQLite file (WAL) in the data dir.

WAL with synchronous=NORMAL survives a kill -9 of the daemon (only an OS crash
can lose the last transactions) and lets the API read while the daemon writes.
Each area adds its own tables through `Storage.migrate(name, statements)`, so the
file stays one database with one connection per process.

Only the peers table lives here: a peer's signed record (as received, so it can
be passed on and re-verified), when we last saw and reached it, and its dial
failures, which drive the re-dial backoff across restarts.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from p2pnode.errors import LocalError

DB_FILE = "node.sqlite3"

_PEERS_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS peers (
        peer_id TEXT PRIMARY KEY,
        addrs TEXT NOT NULL,            -- space-separated multiaddrs
        record BLOB,                    -- signed px envelope, or NULL (seeds, topic)
        seq INTEGER NOT NULL DEFAULT 0, -- the record's sequence number
        source TEXT NOT NULL,           -- seed | px | gossip (PRUNE) | topic | inbound
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        last_connected REAL,
        failures INTEGER NOT NULL DEFAULT 0
    )
    """,
)


@dataclass(frozen=True)
class PeerRow:
    peer_id: str
    addrs: tuple[str, ...]
    record: bytes | None
    seq: int
    source: str
    first_seen: float
    last_seen: float
    last_connected: float | None
    failures: int


class Storage:
    """One connection, guarded by a lock: trio tasks and the API share it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as exc:
            raise LocalError(f"cannot open the node database {path}: {exc}") from None
        self._lock = threading.Lock()
        self.migrate("peers", _PEERS_SCHEMA)

    @classmethod
    def open_in(cls, data_dir: Path) -> Storage:
        return cls(data_dir / DB_FILE)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """For areas with their own tables; hold `lock` while using it."""
        return self._db

    @property
    def lock(self) -> threading.Lock:
        return self._lock

    def migrate(self, name: str, statements: Sequence[str]) -> None:
        """Run an area's idempotent CREATE statements in one transaction."""
        with self._lock:
            try:
                self._db.execute("BEGIN")
                for stmt in statements:
                    self._db.execute(stmt)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise LocalError(f"cannot create the {name} tables in {self.path}: {exc}") from None

    # -- peers -------------------------------------------------------------

    def upsert_peer(
        self,
        peer_id: str,
        addrs: Iterable[str],
        *,
        source: str,
        record: bytes | None = None,
        seq: int = 0,
        now: float | None = None,
    ) -> bool:
        """Insert or refresh a peer. A record only replaces one with a lower seq.

        Returns True when the peer is new or its record/addresses changed; False when
        what we hold is as new or newer (a repeat, or a replay of an old record).
        """
        now = time.time() if now is None else now
        joined = " ".join(addrs)
        with self._lock:
            row = self._db.execute(
                "SELECT seq, record FROM peers WHERE peer_id = ?", (peer_id,)
            ).fetchone()
            if row is None:
                self._db.execute(
                    "INSERT INTO peers (peer_id, addrs, record, seq, source, first_seen, last_seen)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (peer_id, joined, record, seq, source, now, now),
                )
                return True
            old_seq, old_record = row
            if record is not None and (old_record is None or seq > old_seq):
                # new addresses: earlier failures say nothing about them
                self._db.execute(
                    "UPDATE peers SET addrs = ?, record = ?, seq = ?, last_seen = ?, failures = 0"
                    " WHERE peer_id = ?",
                    (joined, record, seq, now, peer_id),
                )
                return True
            if record is None and old_record is None:
                self._db.execute(
                    "UPDATE peers SET addrs = ?, last_seen = ? WHERE peer_id = ?",
                    (joined, now, peer_id),
                )
                return True
            self._db.execute("UPDATE peers SET last_seen = ? WHERE peer_id = ?", (now, peer_id))
            return False

    def mark_connected(self, peer_id: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            self._db.execute(
                "UPDATE peers SET last_connected = ?, last_seen = ?, failures = 0"
                " WHERE peer_id = ?",
                (now, now, peer_id),
            )

    def mark_failed(self, peer_id: str) -> int:
        with self._lock:
            self._db.execute(
                "UPDATE peers SET failures = failures + 1 WHERE peer_id = ?", (peer_id,)
            )
            row = self._db.execute(
                "SELECT failures FROM peers WHERE peer_id = ?", (peer_id,)
            ).fetchone()
        return int(row[0]) if row else 0

    def get_peer(self, peer_id: str) -> PeerRow | None:
        with self._lock:
            row = self._db.execute(
                "SELECT peer_id, addrs, record, seq, source, first_seen, last_seen,"
                " last_connected, failures FROM peers WHERE peer_id = ?",
                (peer_id,),
            ).fetchone()
        return _row(row) if row else None

    def list_peers(self, limit: int = 10_000) -> list[PeerRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT peer_id, addrs, record, seq, source, first_seen, last_seen,"
                " last_connected, failures FROM peers ORDER BY last_seen DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_row(r) for r in rows]

    def forget_peer(self, peer_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM peers WHERE peer_id = ?", (peer_id,))

    def prune_peers(self, *, max_rows: int, max_failures: int) -> int:
        """Forget peers that keep failing, then the least recently seen beyond
        `max_rows`; seeds are kept. Bounds the table against record floods (anyone
        can mint valid records for fresh keys). Returns how many rows went."""
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM peers WHERE source != 'seed' AND failures >= ?", (max_failures,)
            )
            gone = cur.rowcount
            cur = self._db.execute(
                "DELETE FROM peers WHERE peer_id IN (SELECT peer_id FROM peers"
                " WHERE source != 'seed' ORDER BY last_seen DESC LIMIT -1 OFFSET ?)",
                (max_rows,),
            )
            return gone + cur.rowcount

    def count_peers(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM peers").fetchone()[0])


def _row(row: tuple[object, ...]) -> PeerRow:
    peer_id, addrs, record, seq, source, first_seen, last_seen, last_connected, failures = row
    return PeerRow(
        peer_id=str(peer_id),
        addrs=tuple(str(addrs).split()),
        record=bytes(record) if isinstance(record, bytes | bytearray | memoryview) else None,
        seq=int(seq),  # type: ignore[call-overload]
        source=str(source),
        first_seen=float(first_seen),  # type: ignore[arg-type]
        last_seen=float(last_seen),  # type: ignore[arg-type]
        last_connected=None if last_connected is None else float(last_connected),  # type: ignore[arg-type]
        failures=int(failures),  # type: ignore[call-overload]
    )
