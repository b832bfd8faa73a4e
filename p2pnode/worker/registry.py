"""A hub's workers in SQLite: who joined on what terms, what was paid, which deal
runs where. Survives a restart (and a kill -9: every change is one statement).

One row per agreement: a worker that leaves and joins again has a second row. The
signed join request and the hub's signed answer are kept as received, so the
agreement can be shown to anyone. Hours are counted from the agreement's start to
now (or to its end): a joined worker's machine is the hub's to sell for that time,
whether or not a deal is running on it, which is what the pay per hour buys.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gossip.messages import address_hex
from p2pnode.hardware.bench import scores_from
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
    CREATE TABLE IF NOT EXISTS worker_payout_intents (
        id TEXT PRIMARY KEY,           -- payout_id(): wallet, agreement, payday, attempt
        agreement INTEGER NOT NULL,
        worker TEXT NOT NULL,
        payday REAL NOT NULL,          -- the period it pays for (its end on the grid)
        attempt INTEGER NOT NULL,      -- 0, then 1, ... after a transaction never mined
        amount TEXT NOT NULL,
        created_at REAL NOT NULL,
        nonce INTEGER NOT NULL,        -- the hub account's nonce the transaction carries
        tx TEXT NOT NULL,              -- its hash, known before it was sent
        raw BLOB NOT NULL,             -- the signed transaction, sent again as it is
        state TEXT NOT NULL,           -- pending, paid, void
        settled_at REAL,
        why TEXT NOT NULL DEFAULT '',
        UNIQUE (agreement, payday, attempt)
    )
    """,
    "CREATE INDEX IF NOT EXISTS worker_payout_intents_pending"
    " ON worker_payout_intents(state) WHERE state = 'pending'",
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
class PayoutIntent:
    """A payout written down before its transaction was sent (see payouts.py)."""

    id: str
    agreement: int
    worker: str
    payday: float
    attempt: int
    amount: int
    created_at: float
    nonce: int
    tx: str
    raw: bytes
    state: str  # pending, paid, void
    why: str = ""


_INTENT_COLUMNS = (
    "id, agreement, worker, payday, attempt, amount, created_at, nonce, tx, raw, state, why"
)


def _intent(row: tuple[Any, ...]) -> PayoutIntent:
    return PayoutIntent(
        id=str(row[0]),
        agreement=int(row[1]),
        worker=str(row[2]),
        payday=float(row[3]),
        attempt=int(row[4]),
        amount=int(row[5]),
        created_at=float(row[6]),
        nonce=int(row[7]),
        tx=str(row[8]),
        raw=bytes(row[9]),
        state=str(row[10]),
        why=str(row[11]),
    )


def payout_id(wallet: str, agreement: int, payday: float, attempt: int) -> str:
    """The payout's identity: which wallet pays which agreement for which period,
    and which try. Deterministic, so the same period can never get two live ids."""
    key = f"{wallet.lower()}:{agreement}:{payday!r}:{attempt}".encode()
    return "0x" + hashlib.sha256(key).hexdigest()


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
    scores: Mapping[str, int] = field(default_factory=dict)  # as it sent them with its join

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
    data = json.loads(row[4])
    return Member(
        id=int(row[0]),
        worker=str(row[1]),
        peer_id=str(row[2]),
        addr=str(row[3]),
        hardware=HardwareRecord.from_dict(data),
        scores=scores_from(data),
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

    def record_payout(
        self, member: Member, amount: int, at: float, tx: str, *, intent: str | None = None
    ) -> None:
        """One transaction under the lock: the payout row, the agreement's total and,
        for a payout sent from an intent, the intent marked paid (all or none)."""
        with self.storage.lock:
            db = self.storage.connection
            db.execute("BEGIN")
            try:
                if intent is not None:
                    changed = db.execute(
                        "UPDATE worker_payout_intents SET state = 'paid', settled_at = ?"
                        " WHERE id = ? AND state = 'pending'",
                        (at, intent),
                    ).rowcount
                    if changed != 1:
                        raise ValueError(f"payout {intent}: not pending, not recorded twice")
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

    # -- payout intents: written before the transaction is sent ---------------------

    def add_intent(
        self,
        wallet: str,
        member: Member,
        *,
        payday: float,
        amount: int,
        at: float,
        nonce: int,
        tx: str,
        raw: bytes,
    ) -> PayoutIntent:
        """Write the payout down (committed) before its transaction leaves this node.
        Refused while the agreement has a pending payout, or once this period is paid:
        a period is paid at most once whatever the caller's schedule says."""
        with self.storage.lock:
            db = self.storage.connection
            db.execute("BEGIN IMMEDIATE")
            try:
                rows = db.execute(
                    "SELECT state, attempt FROM worker_payout_intents"
                    " WHERE agreement = ? AND (state = 'pending' OR payday = ?)",
                    (member.id, payday),
                ).fetchall()
                if any(r[0] == "pending" for r in rows):
                    raise ValueError(f"agreement {member.id}: a payout is pending already")
                if any(r[0] == "paid" for r in rows):
                    raise ValueError(f"agreement {member.id}: payday {payday!r} is paid already")
                attempt = 1 + max((int(r[1]) for r in rows), default=-1)
                ident = payout_id(wallet, member.id, payday, attempt)
                db.execute(
                    f"INSERT INTO worker_payout_intents ({_INTENT_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', '')",
                    (ident, member.id, member.worker, payday, attempt, str(amount), at, nonce,
                     tx, raw),
                )  # fmt: skip
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        intent = self.intent(ident)
        assert intent is not None
        return intent

    def intent(self, ident: str) -> PayoutIntent | None:
        rows = self._exec(
            f"SELECT {_INTENT_COLUMNS} FROM worker_payout_intents WHERE id = ?", (ident,)
        )
        return _intent(rows[0]) if rows else None

    def pending_intents(self) -> list[PayoutIntent]:
        rows = self._exec(
            f"SELECT {_INTENT_COLUMNS} FROM worker_payout_intents WHERE state = 'pending'"
            " ORDER BY nonce"
        )
        return [_intent(r) for r in rows]

    def intents(self, agreement: int) -> list[PayoutIntent]:
        rows = self._exec(
            f"SELECT {_INTENT_COLUMNS} FROM worker_payout_intents WHERE agreement = ?"
            " ORDER BY payday, attempt",
            (agreement,),
        )
        return [_intent(r) for r in rows]

    def void_intent(self, ident: str, at: float, why: str) -> bool:
        """The transaction can never be mined (its nonce went to another, or it failed
        on chain): nothing was paid, what it carried stays owed."""
        rows = self._exec(
            "UPDATE worker_payout_intents SET state = 'void', settled_at = ?, why = ?"
            " WHERE id = ? AND state = 'pending' RETURNING id",
            (at, why[:200], ident),
        )
        return bool(rows)

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
