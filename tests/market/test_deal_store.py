"""The market's SQLite tables: slots survive a reopen, ASKs map back to their slot,
deal rows follow the chain without forgetting what only this node knew."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from gossip.orders import NetworkType
from p2pnode.market.dealstore import DealRow, MarketStore
from p2pnode.market.slots import Slot
from p2pnode.storage import Storage


def _row(**kw: object) -> DealRow:
    base = DealRow(
        deal_id=1,
        role="consumer",
        consumer="0x" + "aa" * 20,
        hub="0x" + "bb" * 20,
        ask_id=b"\x01" * 32,
        bid_id=b"\x02" * 32,
        slot_id=None,
        price_per_second=10**12,
        duration=60,
        escrow=60 * 10**12,
        status="pending",
        proposed_at=100,
        start_time=0,
        end_time=0,
        paid=0,
        refunded=0,
        updated_at=1.0,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_slots_and_asks_survive_a_reopen(tmp_path: Path) -> None:
    slot = Slot.create(
        "s1",
        cpu_cores=2,
        ram_bytes=2**30,
        network=NetworkType.OUTBOUND,
        price_per_hour=3600 * 5,
        duration=3600,
        gpu_uuids=["GPU-b", "GPU-a"],
    )
    storage = Storage.open_in(tmp_path)
    store = MarketStore(storage)
    store.save_slot(slot, 1.0)
    store.record_ask(b"\x09" * 32, "s1", valid_until=500, now=1.0)
    store.set_meta("deals_block", "42")
    storage.close()
    again = MarketStore(Storage.open_in(tmp_path))
    assert again.slots() == [slot]
    assert again.slot_of_ask(b"\x09" * 32) == "s1"
    assert again.live_asks(now=499) == {"s1": (b"\x09" * 32, 500)}
    assert again.live_asks(now=500) == {}
    again.mark_ask_withdrawn(b"\x09" * 32)
    assert again.live_asks(now=0) == {} and again.asks_of_slot("s1") == []
    assert again.slot_of_ask(b"\x09" * 32) == "s1"  # a deal may still name it
    assert again.get_meta("deals_block") == "42"


def test_deal_rows_follow_the_chain_and_keep_local_knowledge(tmp_path: Path) -> None:
    store = MarketStore(Storage.open_in(tmp_path))
    store.upsert_deal(_row())
    # re-read from events after a restart: the bid is not known there
    store.upsert_deal(_row(bid_id=None, status="accepted", start_time=200, end_time=260))
    row = store.deal(1)
    assert row is not None and row.bid_id == b"\x02" * 32 and row.status == "accepted"
    assert row.end_time == 260
    store.upsert_deal(_row(deal_id=2, status="closed", paid=60 * 10**12))
    assert [r.deal_id for r in store.deals()] == [2, 1]
    assert [r.deal_id for r in store.deals("accepted")] == [1]
    out = store.deal(2).to_json()  # type: ignore[union-attr]
    assert out["paid"] == str(60 * 10**12) and out["price_per_hour"] == str(3600 * 10**12)
    assert out["ask_id"] == "0x" + "01" * 32
