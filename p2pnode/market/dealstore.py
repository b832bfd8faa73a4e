"""The market's own tables: the supplier's slots, which ASK stands for which slot, the
deals this node is party to, and how far the chain's events have been read.

Deals are mirrored from the chain (the registry is the truth); a row is written
before and after each step this node takes, and a restart re-reads the registry's
events from the last block seen, so a kill -9 at any step leaves a row the next
start completes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from gossip.orders import NetworkType
from p2pnode.market.slots import Slot
from p2pnode.storage import Storage

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS market_slots (
        slot_id TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        created_at REAL NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS market_asks (
        ask_id BLOB PRIMARY KEY,
        slot_id TEXT NOT NULL,
        valid_until INTEGER NOT NULL,
        placed_at REAL NOT NULL,
        withdrawn INTEGER NOT NULL DEFAULT 0
    )
    """,
    "CREATE INDEX IF NOT EXISTS market_asks_by_slot ON market_asks(slot_id)",
    """
    CREATE TABLE IF NOT EXISTS market_deals (
        deal_id INTEGER PRIMARY KEY,
        role TEXT NOT NULL,
        consumer TEXT NOT NULL,
        hub TEXT NOT NULL,
        ask_id BLOB NOT NULL,
        bid_id BLOB,
        slot_id TEXT,
        price_per_second TEXT NOT NULL,
        duration INTEGER NOT NULL,
        escrow TEXT NOT NULL,
        status TEXT NOT NULL,
        proposed_at INTEGER NOT NULL,
        start_time INTEGER NOT NULL,
        end_time INTEGER NOT NULL,
        paid TEXT NOT NULL,
        refunded TEXT NOT NULL,
        updated_at REAL NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS market_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )
    """,
)

STATUSES = ("pending", "accepted", "closed")


@dataclass(frozen=True)
class DealRow:
    deal_id: int
    role: str  # "consumer" or "supplier": our side of it
    consumer: str  # checksummed address
    hub: str  # hub wallet, checksummed
    ask_id: bytes
    bid_id: bytes | None
    slot_id: str | None
    price_per_second: int
    duration: int
    escrow: int
    status: str  # pending / accepted / closed
    proposed_at: int
    start_time: int
    end_time: int
    paid: int
    refunded: int
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ask_id"] = "0x" + self.ask_id.hex()
        out["bid_id"] = "0x" + self.bid_id.hex() if self.bid_id else None
        for key in ("price_per_second", "escrow", "paid", "refunded"):
            out[key] = str(out[key])
        out["price_per_hour"] = str(self.price_per_second * 3600)
        return out


def slot_to_json(slot: Slot) -> dict[str, Any]:
    out = asdict(slot)
    out["gpu_uuids"] = list(slot.gpu_uuids)
    out["network"] = int(slot.network)
    out["price_per_hour"] = str(slot.price_per_hour)
    return out


def slot_from_json(data: dict[str, Any]) -> Slot:
    return Slot.create(
        data["slot_id"],
        cpu_cores=int(data["cpu_cores"]),
        ram_bytes=int(data["ram_bytes"]),
        storage_bytes=int(data["storage_bytes"]),
        gpu_uuids=tuple(data["gpu_uuids"]),
        network=NetworkType(int(data["network"])),
        price_per_hour=int(data["price_per_hour"]),
        duration=int(data["duration"]),
        available_from=int(data.get("available_from", 0)),
        available_until=int(data.get("available_until", 0)),
        worker=str(data.get("worker", "")),
    )


_DEAL_COLUMNS = (
    "deal_id, role, consumer, hub, ask_id, bid_id, slot_id, price_per_second, duration, "
    "escrow, status, proposed_at, start_time, end_time, paid, refunded, updated_at"
)


class MarketStore:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        storage.migrate("market", _SCHEMA)

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.storage.lock:
            return self.storage.connection.execute(sql, args).fetchall()

    # -- slots -----------------------------------------------------------------

    def save_slot(self, slot: Slot, now: float) -> None:
        self._exec(
            "INSERT INTO market_slots VALUES (?, ?, ?)",
            (slot.slot_id, json.dumps(slot_to_json(slot), sort_keys=True), now),
        )

    def delete_slot(self, slot_id: str) -> None:
        self._exec("DELETE FROM market_slots WHERE slot_id = ?", (slot_id,))

    def slots(self) -> list[Slot]:
        rows = self._exec("SELECT spec FROM market_slots ORDER BY created_at, slot_id")
        return [slot_from_json(json.loads(r[0])) for r in rows]

    # -- asks ------------------------------------------------------------------

    def record_ask(self, ask_id: bytes, slot_id: str, valid_until: int, now: float) -> None:
        self._exec(
            "INSERT OR REPLACE INTO market_asks VALUES (?, ?, ?, ?, 0)",
            (ask_id, slot_id, valid_until, now),
        )

    def mark_ask_withdrawn(self, ask_id: bytes) -> None:
        self._exec("UPDATE market_asks SET withdrawn = 1 WHERE ask_id = ?", (ask_id,))

    def slot_of_ask(self, ask_id: bytes) -> str | None:
        rows = self._exec("SELECT slot_id FROM market_asks WHERE ask_id = ?", (ask_id,))
        return str(rows[0][0]) if rows else None

    def live_asks(self, now: float) -> dict[str, tuple[bytes, int]]:
        """slot -> (ask id, valid_until) of the newest ASK not withdrawn nor expired."""
        rows = self._exec(
            "SELECT slot_id, ask_id, valid_until FROM market_asks "
            "WHERE withdrawn = 0 AND valid_until > ? ORDER BY placed_at",
            (now,),
        )
        return {str(s): (bytes(a), int(v)) for s, a, v in rows}

    def asks_of_slot(self, slot_id: str) -> list[bytes]:
        rows = self._exec(
            "SELECT ask_id FROM market_asks WHERE slot_id = ? AND withdrawn = 0", (slot_id,)
        )
        return [bytes(r[0]) for r in rows]

    # -- deals -----------------------------------------------------------------

    def upsert_deal(self, row: DealRow) -> None:
        """Insert, or update what the chain says; never forget bid/slot once known."""
        self._exec(
            f"INSERT INTO market_deals ({_DEAL_COLUMNS}) VALUES "
            f"({', '.join('?' for _ in range(17))}) "
            "ON CONFLICT(deal_id) DO UPDATE SET status = excluded.status, "
            "start_time = excluded.start_time, end_time = excluded.end_time, "
            "paid = excluded.paid, refunded = excluded.refunded, "
            "updated_at = excluded.updated_at, "
            "bid_id = COALESCE(market_deals.bid_id, excluded.bid_id), "
            "slot_id = COALESCE(market_deals.slot_id, excluded.slot_id)",
            (
                row.deal_id,
                row.role,
                row.consumer,
                row.hub,
                row.ask_id,
                row.bid_id,
                row.slot_id,
                str(row.price_per_second),
                row.duration,
                str(row.escrow),
                row.status,
                row.proposed_at,
                row.start_time,
                row.end_time,
                str(row.paid),
                str(row.refunded),
                row.updated_at,
            ),
        )

    def deal(self, deal_id: int) -> DealRow | None:
        rows = self._exec(f"SELECT {_DEAL_COLUMNS} FROM market_deals WHERE deal_id = ?", (deal_id,))
        return _deal(rows[0]) if rows else None

    def deals(self, status: str | None = None, limit: int = 1000) -> list[DealRow]:
        if status is None:
            rows = self._exec(
                f"SELECT {_DEAL_COLUMNS} FROM market_deals ORDER BY deal_id DESC LIMIT ?",
                (limit,),
            )
        else:
            rows = self._exec(
                f"SELECT {_DEAL_COLUMNS} FROM market_deals WHERE status = ? "
                "ORDER BY deal_id DESC LIMIT ?",
                (status, limit),
            )
        return [_deal(r) for r in rows]

    # -- meta ------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        rows = self._exec("SELECT value FROM market_meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._exec("INSERT OR REPLACE INTO market_meta VALUES (?, ?)", (key, value))


def _deal(r: tuple[Any, ...]) -> DealRow:
    return DealRow(
        deal_id=int(r[0]),
        role=str(r[1]),
        consumer=str(r[2]),
        hub=str(r[3]),
        ask_id=bytes(r[4]),
        bid_id=bytes(r[5]) if r[5] is not None else None,
        slot_id=str(r[6]) if r[6] is not None else None,
        price_per_second=int(r[7]),
        duration=int(r[8]),
        escrow=int(r[9]),
        status=str(r[10]),
        proposed_at=int(r[11]),
        start_time=int(r[12]),
        end_time=int(r[13]),
        paid=int(r[14]),
        refunded=int(r[15]),
        updated_at=float(r[16]),
    )
