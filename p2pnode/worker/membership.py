"""A worker's side of its agreements in SQLite: which hub it joined, on what
terms (both signed messages, as exchanged), when it left, and which hub handed it
which deal's task. A restart finds the hub it is joined to and keeps serving it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from p2pnode.storage import Storage

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS worker_memberships (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        wallet BLOB NOT NULL,        -- the hub wallet
        owner BLOB NOT NULL,         -- the hub owner's account: signs its orders
        peer_id TEXT NOT NULL,
        addr TEXT NOT NULL,
        pay_per_hour TEXT NOT NULL,
        payout_period INTEGER NOT NULL,
        joined_at REAL NOT NULL,
        left_at REAL,
        request BLOB NOT NULL,       -- our signed JoinRequest payload
        answer BLOB NOT NULL         -- the hub's signed HubAnswer payload
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS worker_deals (
        deal_id INTEGER PRIMARY KEY,
        owner BLOB NOT NULL,         -- the hub that ordered the task
        consumer BLOB NOT NULL,
        at REAL NOT NULL
    )
    """,
)


@dataclass(frozen=True)
class Membership:
    id: int
    wallet: bytes
    owner: bytes
    peer_id: str
    addr: str
    pay_per_hour: int
    payout_period: int
    joined_at: float
    left_at: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "hub_wallet": "0x" + self.wallet.hex(),
            "hub_owner": "0x" + self.owner.hex(),
            "peer_id": self.peer_id,
            "addr": self.addr,
            "pay_per_hour": str(self.pay_per_hour),
            "payout_period": self.payout_period,
            "joined_at": self.joined_at,
            "left_at": self.left_at,
        }


_COLUMNS = "id, wallet, owner, peer_id, addr, pay_per_hour, payout_period, joined_at, left_at"


def _row(r: tuple[Any, ...]) -> Membership:
    return Membership(
        id=int(r[0]),
        wallet=bytes(r[1]),
        owner=bytes(r[2]),
        peer_id=str(r[3]),
        addr=str(r[4]),
        pay_per_hour=int(r[5]),
        payout_period=int(r[6]),
        joined_at=float(r[7]),
        left_at=None if r[8] is None else float(r[8]),
    )


class MembershipStore:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        storage.migrate("worker memberships", _SCHEMA)

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.storage.lock:
            return self.storage.connection.execute(sql, args).fetchall()

    def joined(
        self,
        *,
        wallet: bytes,
        owner: bytes,
        peer_id: str,
        addr: str,
        pay_per_hour: int,
        payout_period: int,
        at: float,
        request: bytes,
        answer: bytes,
    ) -> Membership:
        self._exec(
            "INSERT INTO worker_memberships (wallet, owner, peer_id, addr, pay_per_hour,"
            " payout_period, joined_at, request, answer) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (wallet, owner, peer_id, addr, str(pay_per_hour), payout_period, at, request, answer),
        )
        current = self.current()
        assert current is not None
        return current

    def left(self, at: float) -> None:
        self._exec("UPDATE worker_memberships SET left_at = ? WHERE left_at IS NULL", (at,))

    def current(self) -> Membership | None:
        rows = self._exec(
            f"SELECT {_COLUMNS} FROM worker_memberships WHERE left_at IS NULL"
            " ORDER BY id DESC LIMIT 1"
        )
        return _row(rows[0]) if rows else None

    def history(self, limit: int = 100) -> list[Membership]:
        rows = self._exec(
            f"SELECT {_COLUMNS} FROM worker_memberships ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [_row(r) for r in rows]

    def ever_joined(self, owner: bytes) -> bool:
        rows = self._exec("SELECT 1 FROM worker_memberships WHERE owner = ? LIMIT 1", (owner,))
        return bool(rows)

    def record_deal(self, deal_id: int, owner: bytes, consumer: bytes, at: float) -> None:
        self._exec(
            "INSERT OR REPLACE INTO worker_deals VALUES (?, ?, ?, ?)",
            (deal_id, owner, consumer, at),
        )

    def hub_of_deal(self, deal_id: int) -> bytes | None:
        rows = self._exec("SELECT owner FROM worker_deals WHERE deal_id = ?", (deal_id,))
        return bytes(rows[0][0]) if rows else None
