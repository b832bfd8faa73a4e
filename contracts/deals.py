"""Typed wrapper of the Deals registry."""

from __future__ import annotations

from web3 import Web3

from contracts.client import BoundContract, Sender, TxResult
from contracts.records import Deal, DealStatus

SECONDS_PER_HOUR = 3600


def price_per_second(price_per_hour: int) -> int:
    """Orders quote per hour; the registry escrows per second so pro rata is exact."""
    if price_per_hour <= 0 or price_per_hour % SECONDS_PER_HOUR:
        raise ValueError(
            f"price_per_hour must be a positive multiple of {SECONDS_PER_HOUR} wei, "
            f"got {price_per_hour}"
        )
    return price_per_hour // SECONDS_PER_HOUR


class Deals(BoundContract):
    NAME = "Deals"
    GAS = {"propose": 400_000, "accept": 150_000, "close": 200_000, "cancel": 150_000}

    def deal_count(self) -> int:
        return int(self._call("deal_count"))

    def deal(self, deal_id: int) -> Deal:
        row = self._call("deals", deal_id)
        (
            consumer,
            hub,
            price,
            duration,
            escrow,
            status,
            proposed,
            start,
            end,
            paid,
            refunded,
            ref,
        ) = row
        return Deal(
            deal_id=deal_id,
            consumer=Web3.to_checksum_address(consumer),
            hub=Web3.to_checksum_address(hub),
            price=int(price),
            duration=int(duration),
            escrow=int(escrow),
            status=DealStatus(int(status)),
            proposed_at=int(proposed),
            start_time=int(start),
            end_time=int(end),
            paid=int(paid),
            refunded=int(refunded),
            order_ref=bytes(ref),
        )

    def propose(
        self,
        hub_wallet: str,
        price: int,
        duration: int,
        order_ref: bytes = b"\0" * 32,
        *,
        sender: Sender,
        gas: int | None = None,
    ) -> tuple[int, TxResult]:
        """Escrow price x duration (the consumer must have approved this contract)."""
        if len(order_ref) != 32:
            raise ValueError(f"order_ref must be 32 bytes, got {len(order_ref)}")
        result = self._send(
            "propose", hub_wallet, price, duration, order_ref, sender=sender, gas=gas
        )
        return int(result.event("DealProposed").args["deal_id"]), result

    def accept(self, deal_id: int, *, sender: Sender, gas: int | None = None) -> TxResult:
        return self._send("accept", deal_id, sender=sender, gas=gas)

    def close(self, deal_id: int, *, sender: Sender, gas: int | None = None) -> TxResult:
        return self._send("close", deal_id, sender=sender, gas=gas)

    def cancel(self, deal_id: int, *, sender: Sender, gas: int | None = None) -> TxResult:
        return self._send("cancel", deal_id, sender=sender, gas=gas)
