"""The executor's tasks in the node's SQLite file (its own tables, via Storage.migrate).

A task is written here before its container is created, so a daemon killed at any
point finds on restart every task it accepted: with its container (found by label),
it re-attaches; without one, it starts it if the deal has time left. Deal ids are
uint256, stored as decimal text.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from p2pnode.errors import LocalError
from p2pnode.executor.limits import SlotLimits
from p2pnode.executor.spec import TaskSpec, task_spec_from_dict
from p2pnode.storage import Storage

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS executor_tasks (
        task_id TEXT PRIMARY KEY,
        deal_id TEXT NOT NULL,          -- uint256 in decimal
        spec TEXT NOT NULL,             -- TaskSpec.to_dict() as JSON
        limits TEXT NOT NULL,           -- SlotLimits.to_dict() as JSON
        ends_at REAL NOT NULL,          -- unix seconds: the deal's end
        state TEXT NOT NULL,            -- recorded | running | finished
        container_id TEXT,
        image_digest TEXT,
        stop_reason TEXT,               -- closed | storage-exceeded: why we stop it (kept)
        created_at REAL NOT NULL,
        started_at REAL,
        ended_at REAL,
        exit_code INTEGER,
        reason TEXT,                    -- TaskOutcome.reason: exited, failed, oom-killed, ...
        error TEXT,
        receipt TEXT                    -- Receipt.to_dict() as JSON, once finished
    )
    """,
    "CREATE INDEX IF NOT EXISTS executor_tasks_deal ON executor_tasks (deal_id)",
    "CREATE INDEX IF NOT EXISTS executor_tasks_state ON executor_tasks (state)",
    """
    CREATE TABLE IF NOT EXISTS executor_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )
    """,
)

_COLUMNS = (
    "task_id, deal_id, spec, limits, ends_at, state, container_id, image_digest, stop_reason,"
    " created_at, started_at, ended_at, exit_code, reason, error, receipt"
)


class TaskExists(LocalError):
    """A task id can be recorded once."""


@dataclass(frozen=True)
class TaskRecord:
    task_id: str
    deal_id: int
    spec: TaskSpec
    limits: SlotLimits
    ends_at: float
    state: str
    container_id: str | None
    image_digest: str | None
    stop_reason: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    exit_code: int | None
    reason: str | None
    error: str | None
    receipt: dict[str, Any] | None


class TaskStore:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        storage.migrate("executor", SCHEMA)

    def instance_id(self) -> str:
        """A random id for this node's executor, kept across restarts: the label that
        tells our containers from those of other executors on the same engine."""
        with self._storage.lock:
            db = self._storage.connection
            row = db.execute("SELECT value FROM executor_meta WHERE key = 'instance'").fetchone()
            if row:
                return str(row[0])
            value = secrets.token_hex(8)
            db.execute("INSERT INTO executor_meta (key, value) VALUES ('instance', ?)", (value,))
            return value

    def record(
        self, task_id: str, deal_id: int, spec: TaskSpec, limits: SlotLimits, ends_at: float
    ) -> None:
        with self._storage.lock:
            try:
                self._storage.connection.execute(
                    "INSERT INTO executor_tasks (task_id, deal_id, spec, limits, ends_at, state,"
                    " created_at) VALUES (?, ?, ?, ?, ?, 'recorded', ?)",
                    (
                        task_id,
                        str(deal_id),
                        json.dumps(spec.to_dict()),
                        json.dumps(limits.to_dict()),
                        ends_at,
                        time.time(),
                    ),
                )
            except sqlite3.IntegrityError:
                raise TaskExists(f"task {task_id} is recorded already") from None
            except sqlite3.Error as exc:
                raise LocalError(f"cannot record task {task_id}: {exc}") from None

    def update(self, task_id: str, **fields: Any) -> None:
        allowed = set(_COLUMNS.replace(" ", "").split(",")) - {"task_id", "deal_id", "spec"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown task columns {sorted(bad)}")
        if "receipt" in fields and fields["receipt"] is not None:
            fields["receipt"] = json.dumps(fields["receipt"])
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._storage.lock:
            self._storage.connection.execute(
                f"UPDATE executor_tasks SET {sets} WHERE task_id = ?", (*fields.values(), task_id)
            )

    def get(self, task_id: str) -> TaskRecord | None:
        with self._storage.lock:
            row = self._storage.connection.execute(
                f"SELECT {_COLUMNS} FROM executor_tasks WHERE task_id = ?", (task_id,)
            ).fetchone()
        return _record(row) if row else None

    def unfinished(self) -> list[TaskRecord]:
        with self._storage.lock:
            rows = self._storage.connection.execute(
                f"SELECT {_COLUMNS} FROM executor_tasks WHERE state != 'finished'"
                " ORDER BY created_at"
            ).fetchall()
        return [_record(r) for r in rows]

    def for_deal(self, deal_id: int) -> list[TaskRecord]:
        with self._storage.lock:
            rows = self._storage.connection.execute(
                f"SELECT {_COLUMNS} FROM executor_tasks WHERE deal_id = ? ORDER BY created_at",
                (str(deal_id),),
            ).fetchall()
        return [_record(r) for r in rows]


def _record(row: tuple[Any, ...]) -> TaskRecord:
    (task_id, deal_id, spec, limits, ends_at, state, container_id, image_digest, stop_reason,
     created_at, started_at, ended_at, exit_code, reason, error, receipt) = row  # fmt: skip
    return TaskRecord(
        task_id=task_id,
        deal_id=int(deal_id),
        spec=task_spec_from_dict(json.loads(spec)),
        limits=SlotLimits.from_dict(json.loads(limits)),
        ends_at=float(ends_at),
        state=state,
        container_id=container_id,
        image_digest=image_digest,
        stop_reason=stop_reason,
        created_at=float(created_at),
        started_at=started_at,
        ended_at=ended_at,
        exit_code=exit_code,
        reason=reason,
        error=error,
        receipt=json.loads(receipt) if receipt else None,
    )
