"""The hub's reservations: which consumer may propose a deal for which slot, until when.

A consumer that asks for an ASK gets the slot behind it reserved for `ttl` seconds,
long enough to approve and propose on chain; nobody else gets that slot meanwhile,
so two consumers never escrow for one slot. A reservation not followed by a
proposal in time expires and the slot is free again. A slot with a deal running is
`occupied` until the deal ends. Pure: every call takes `now`; `next_deadline()`
says when `expire(now)` has work (sans-IO, tested in virtual time).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReservationParams:
    ttl: float = 30.0  # seconds a consumer has from "yes" to its proposal on chain
    max_reservations: int = 1024  # live reservations at once (one per slot at most anyway)
    max_per_consumer: int = 4  # so one consumer cannot hold every slot of a hub

    def validate(self) -> None:
        if not 1.0 <= self.ttl <= 3600.0:
            raise ValueError(f"ttl = {self.ttl}: allowed 1..3600 s")
        if not 1 <= self.max_reservations <= 1_000_000:
            raise ValueError(f"max_reservations = {self.max_reservations}: allowed 1..1000000")
        if not 1 <= self.max_per_consumer <= self.max_reservations:
            raise ValueError(
                f"max_per_consumer = {self.max_per_consumer}: allowed 1..max_reservations"
            )


@dataclass(frozen=True)
class Reservation:
    slot_id: str
    ask_id: bytes
    consumer: bytes
    until: float


@dataclass(frozen=True)
class Decision:
    ok: bool
    reason: str
    until: float = 0.0


class Reservations:
    """Slot -> reservation, slot -> deal; every answer says why."""

    def __init__(self, params: ReservationParams | None = None) -> None:
        self.params = params or ReservationParams()
        self.params.validate()
        self._by_slot: dict[str, Reservation] = {}
        self._occupied: dict[str, int] = {}  # slot -> deal id
        self.expired = 0

    def get(self, slot_id: str) -> Reservation | None:
        return self._by_slot.get(slot_id)

    def occupied_by(self, slot_id: str) -> int | None:
        return self._occupied.get(slot_id)

    def __len__(self) -> int:
        return len(self._by_slot)

    def reserve(self, slot_id: str, ask_id: bytes, consumer: bytes, now: float) -> Decision:
        """Reserve the slot for `consumer`; the same consumer asking again keeps its lease."""
        self.expire(now)
        deal = self._occupied.get(slot_id)
        if deal is not None:
            return Decision(False, f"slot taken by deal {deal}")
        held = self._by_slot.get(slot_id)
        if held is not None:
            if held.consumer == consumer and held.ask_id == ask_id:
                return Decision(True, "reserved", held.until)
            return Decision(False, "slot reserved by another consumer")
        if len(self._by_slot) >= self.params.max_reservations:
            return Decision(False, "too many reservations at this hub")
        mine = sum(1 for r in self._by_slot.values() if r.consumer == consumer)
        if mine >= self.params.max_per_consumer:
            return Decision(False, f"at most {self.params.max_per_consumer} reservations each")
        until = now + self.params.ttl
        self._by_slot[slot_id] = Reservation(slot_id, ask_id, consumer, until)
        return Decision(True, "reserved", until)

    def check_proposal(self, slot_id: str, ask_id: bytes, consumer: bytes, now: float) -> Decision:
        """May a proposal by `consumer` for this slot be accepted now?

        Yes when the consumer holds the reservation, or when nobody does (a hub that
        restarted has lost its reservations; a proposal on chain is then first come).
        """
        self.expire(now)
        deal = self._occupied.get(slot_id)
        if deal is not None:
            return Decision(False, f"slot taken by deal {deal}")
        held = self._by_slot.get(slot_id)
        if held is not None and held.consumer != consumer:
            return Decision(False, "slot reserved by another consumer")
        if held is not None and held.ask_id != ask_id:
            return Decision(False, "reservation is for another ASK of this slot")
        return Decision(True, "reserved" if held is not None else "no reservation, slot free")

    def occupy(self, slot_id: str, deal_id: int) -> None:
        """A deal on the slot started: the reservation is spent."""
        self._by_slot.pop(slot_id, None)
        self._occupied[slot_id] = deal_id

    def vacate(self, slot_id: str, deal_id: int | None = None) -> bool:
        """The slot's deal ended (only that deal's end frees it, when named)."""
        if deal_id is not None and self._occupied.get(slot_id) != deal_id:
            return False
        return self._occupied.pop(slot_id, None) is not None

    def release(self, slot_id: str) -> None:
        self._by_slot.pop(slot_id, None)

    def expire(self, now: float) -> list[Reservation]:
        gone = [r for r in self._by_slot.values() if r.until <= now]
        for r in gone:
            del self._by_slot[r.slot_id]
        self.expired += len(gone)
        return gone

    def next_deadline(self) -> float | None:
        return min((r.until for r in self._by_slot.values()), default=None)
