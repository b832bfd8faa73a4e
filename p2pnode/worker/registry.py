"""A hub's workers in SQLite: who joined on what terms, what was paid, which deal
runs where. Survives a restart (and a kill -9: every change is one statement).

One row per agreement: a worker that leaves and joins again has a second row. The
signed join request and the hub's signed answer are kept as received, so the
agreement can be shown to anyone. Hours are counted from the agreement's start to
now (or to its end): a joined worker's machine is the hub's to sell for that time,
whether or not a deal is running on it, which is what the pay per hour buys.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from gossip.messages import address_hex
from p2pnode.hardware.record import HardwareRecord
from p2pnode.storage import Storage

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS worker_agreements (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        worker TEXT NOT NULL,          -- 0x address, lower case
        peer_id TEXT NOT NULL,
        addr TEXT NOT NULL,
        hardware TEXT NOT NULL,        -- the record's JSON, as the worker signed it
        pay_per_hour TEXT NOT NULL,    -- token wei, decimal
        payout_period INTEGER NOT NULL,
        joined_at REAL NOT NULL,
        left_at REAL,
        paid TEXT NOT NULL DEFAULT '0',
        request BLOB NOT NULL,         -- the worker's signed JoinRequest payload
        answer BLOB NOT NULL           -- our signed HubAnswer payload
    )
    """,
    "CREATE INDEX IF NOT EXISTS worker_agreements_by_worker ON worker_agreements(worker)",
    """
    CREATE TABLE IF NOT EXISTS worker_payouts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        agreement INTEGER NOT NULL,
        worker TEXT NOT NULL,
        amount TEXT NOT NULL,
        at REAL NOT NULL,
        tx TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS worker_tasks (
        deal_id INTEGER PRIMARY KEY,
        worker TEXT NOT NULL,
        consumer TEXT NOT NULL,
        started_at REAL NOT NULL,
        started INTEGER NOT NULL DEFAULT 0   -- 1 once the worker said "started"
    )
    """,
)

HOUR = 3600


@dataclass(frozen=True)
class Member:
    """One agreement between this hub and a worker."""

    id: int
    worker: str  # 0x..., lower case
    peer_id: str
    addr: str
    hardware: HardwareRecord
    pay_per_hour: int
    payout_period: int
    joined_at: float
    left_at: float | None
    paid: int

    @property
    def active(self) -> bool:
        return self.left_at is None

    def payday_after(self, t: float) -> float:
        """The first payday after `t`: joined_at + k x payout_period, k >= 1. Paydays
        stay on the grid the worker's agreement states (the worker judges each one a
        grace after it), however late a payout went out."""
        period = max(1, self.payout_period)
        k = max(1, math.floor((t - self.joined_at) / period) + 1)
        return self.joined_at + k * period

    def seconds_worked(self, now: float) -> float:
        end = now if self.left_at is None else min(now, self.left_at)
        return max(0.0, end - self.joined_at)

    def earned(self, now: float) -> int:
        """Token wei earned up to `now`: rate x hours, rounded down."""
        return int(self.pay_per_hour * int(self.seconds_worked(now) * 1000) // (HOUR * 1000))

    def owed(self, now: float) -> int:
        return max(0, self.earned(now) - self.paid)

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "worker": self.worker,
            "peer_id": self.peer_id,
            "addr": self.addr,
            "active": self.active,
            "joined_at": self.joined_at,
            "left_at": self.left_at,
            "pay_per_hour": str(self.pay_per_hour),
            "payout_period": self.payout_period,
            "hours": round(self.seconds_worked(now) / HOUR, 6),
            "paid": str(self.paid),
            "owed": str(self.owed(now)),
            "cpu_cores": self.hardware.cpu.cores_logical,
            "ram_bytes": self.hardware.memory.total_bytes,
            "gpus": len(self.hardware.gpus),
        }


_COLUMNS = (
    "id, worker, peer_id, addr, hardware, pay_per_hour, payout_period, joined_at, left_at, paid"
)


def _member(row: tuple[Any, ...]) -> Member:
    return Member(
        id=int(row[0]),
        worker=str(row[1]),
        peer_id=str(row[2]),
        addr=str(row[3]),
        hardware=HardwareRecord.from_dict(json.loads(row[4])),
        pay_per_hour=int(row[5]),
        payout_period=int(row[6]),
        joined_at=float(row[7]),
        left_at=None if row[8] is None else float(row[8]),
        paid=int(row[9]),
    )


def worker_id(address: bytes) -> str:
    """How a worker is named in slots, the API and the CLI: its account, lower case."""
    return address_hex(address).lower()


class WorkerRegistry:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        storage.migrate("workers", _SCHEMA)

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.storage.lock:
            return self.storage.connection.execute(sql, args).fetchall()

    def join(
        self,
        worker: str,
        *,
        peer_id: str,
        addr: str,
        hardware_json: str,
        pay_per_hour: int,
        payout_period: int,
        at: float,
        request: bytes,
        answer: bytes,
    ) -> Member:
        self._exec(
            "INSERT INTO worker_agreements (worker, peer_id, addr, hardware, pay_per_hour,"
            " payout_period, joined_at, request, answer) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                worker,
                peer_id,
                addr,
                hardware_json,
                str(pay_per_hour),
                payout_period,
                at,
                request,
                answer,
            ),
        )
        member = self.active(worker)
        assert member is not None
        return member

    def leave(self, worker: str, at: float) -> Member | None:
        member = self.active(worker)
        if member is None:
            return None
        self._exec("UPDATE worker_agreements SET left_at = ? WHERE id = ?", (at, member.id))
        return self.get(member.id)

    def get(self, agreement: int) -> Member | None:
        rows = self._exec(f"SELECT {_COLUMNS} FROM worker_agreements WHERE id = ?", (agreement,))
        return _member(rows[0]) if rows else None

    def active(self, worker: str) -> Member | None:
        rows = self._exec(
            f"SELECT {_COLUMNS} FROM worker_agreements WHERE worker = ? AND left_at IS NULL"
            " ORDER BY id DESC LIMIT 1",
            (worker,),
        )
        return _member(rows[0]) if rows else None

    def latest(self, worker: str) -> Member | None:
        """The worker's newest agreement, active or ended (where to reach it)."""
        rows = self._exec(
            f"SELECT {_COLUMNS} FROM worker_agreements WHERE worker = ? ORDER BY id DESC LIMIT 1",
            (worker,),
        )
        return _member(rows[0]) if rows else None

    def members(self, *, active_only: bool = False) -> list[Member]:
        where = " WHERE left_at IS NULL" if active_only else ""
        rows = self._exec(f"SELECT {_COLUMNS} FROM worker_agreements{where} ORDER BY id")
        return [_member(r) for r in rows]

    def count_active(self) -> int:
        rows = self._exec("SELECT COUNT(*) FROM worker_agreements WHERE left_at IS NULL")
        return int(rows[0][0])

    def record_payout(self, member: Member, amount: int, at: float, tx: str) -> None:
        """One statement pair under the lock: the payout row and the agreement's total."""
        with self.storage.lock:
            db = self.storage.connection
            db.execute("BEGIN")
            try:
                db.execute(
                    "INSERT INTO worker_payouts (agreement, worker, amount, at, tx)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (member.id, member.worker, str(amount), at, tx),
                )
                row = db.execute(
                    "SELECT paid FROM worker_agreements WHERE id = ?", (member.id,)
                ).fetchone()
                db.execute(
                    "UPDATE worker_agreements SET paid = ? WHERE id = ?",
                    (str(int(row[0]) + amount), member.id),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def last_payout_at(self, agreement: int) -> float | None:
        rows = self._exec("SELECT MAX(at) FROM worker_payouts WHERE agreement = ?", (agreement,))
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    def payouts(self, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self._exec(
            "SELECT agreement, worker, amount, at, tx FROM worker_payouts ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            {"agreement": r[0], "worker": r[1], "amount": str(r[2]), "at": r[3], "tx": r[4]}
            for r in rows
        ]

    # -- which deal runs on which worker -------------------------------------------

    def assign(self, deal_id: int, worker: str, consumer: str, at: float) -> None:
        """Written before the order is sent: logs, results and the stop find the
        worker after a restart. Not yet `started`: a refused start may be tried again."""
        self._exec(
            "INSERT OR REPLACE INTO worker_tasks VALUES (?, ?, ?, ?, 0)",
            (deal_id, worker, consumer, at),
        )

    def mark_started(self, deal_id: int) -> None:
        self._exec("UPDATE worker_tasks SET started = 1 WHERE deal_id = ?", (deal_id,))

    def started(self, deal_id: int) -> bool:
        rows = self._exec("SELECT started FROM worker_tasks WHERE deal_id = ?", (deal_id,))
        return bool(rows and rows[0][0])

    def worker_of_deal(self, deal_id: int) -> str | None:
        rows = self._exec("SELECT worker FROM worker_tasks WHERE deal_id = ?", (deal_id,))
        return str(rows[0][0]) if rows else None
