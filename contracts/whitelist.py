"""Typed wrapper of the Whitelist (hub registry)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from web3 import Web3
from web3.types import BlockIdentifier

from contracts.client import BoundContract, Sender, TxResult
from contracts.records import HubRecord, HubStatus, join_multiaddrs, split_multiaddrs


class Whitelist(BoundContract):
    NAME = "Whitelist"
    GAS = {"update_hub": 400_000, "set_trusted": 100_000, "set_factory": 100_000}

    def dao(self) -> str:
        return str(self._call("dao"))

    def factory(self) -> str:
        return str(self._call("factory"))

    def hub_count(self) -> int:
        return int(self._call("hub_count"))

    def hub_at(self, index: int) -> str:
        return str(self._call("hub_at", index))

    def is_trusted(self, wallet: str) -> bool:
        return bool(self._call("trusted", wallet))

    def owner_of(self, wallet: str) -> str:
        return str(self._call("owner_of", wallet))

    def status_of(self, wallet: str) -> HubStatus:
        return HubStatus(int(self._call("status_of", wallet)))

    def hub(self, wallet: str, *, block: BlockIdentifier = "latest") -> HubRecord:
        row, trusted = self._calls([("hubs", (wallet,)), ("trusted", (wallet,))], block=block)
        return _record(wallet, row, trusted)

    def hubs(self, *, block: BlockIdentifier = "latest") -> list[HubRecord]:
        """Every listed hub, in listing order (three round trips on a JSON-RPC node)."""
        if block == "latest":
            block = self.chain.block_number()  # one consistent view
        count = int(self._call("hub_count", block=block))
        wallets = self._calls([("hub_at", (i,)) for i in range(count)], block=block)
        rows = self._calls([(fn, (w,)) for w in wallets for fn in ("hubs", "trusted")], block=block)
        return [_record(w, rows[2 * i], rows[2 * i + 1]) for i, w in enumerate(wallets)]

    def set_factory(self, factory: str, *, sender: Sender, gas: int | None = None) -> TxResult:
        return self._send("set_factory", factory, sender=sender, gas=gas)

    def set_dao(self, new_dao: str, *, sender: Sender, gas: int | None = None) -> TxResult:
        return self._send("set_dao", new_dao, sender=sender, gas=gas)

    def register_hub(
        self,
        owner: str,
        name: str,
        multiaddrs: tuple[str, ...] | list[str],
        *,
        sender: Sender,
        gas: int | None = None,
    ) -> TxResult:
        """Only a factory wallet may call this; exposed so tests can show that it reverts."""
        return self._send(
            "register_hub", owner, name, join_multiaddrs(multiaddrs), sender=sender, gas=gas
        )

    def update_hub(
        self,
        wallet: str,
        name: str,
        multiaddrs: tuple[str, ...] | list[str],
        *,
        sender: Sender,
        gas: int | None = None,
    ) -> TxResult:
        return self._send(
            "update_hub", wallet, name, join_multiaddrs(multiaddrs), sender=sender, gas=gas
        )

    def set_status(self, status: HubStatus, *, sender: Sender, gas: int | None = None) -> TxResult:
        """Only a registered wallet may call this (it reports its own state)."""
        return self._send("set_status", int(status), sender=sender, gas=gas)

    def set_trusted(
        self, wallet: str, trusted: bool, *, sender: Sender, gas: int | None = None
    ) -> TxResult:
        return self._send("set_trusted", wallet, trusted, sender=sender, gas=gas)


def _record(wallet: str, row: Sequence[Any], trusted: Any) -> HubRecord:
    owner, _wallet, name, multiaddrs, status, registered_at, updated_at = row
    return HubRecord(
        wallet=Web3.to_checksum_address(wallet),
        owner=Web3.to_checksum_address(owner),
        name=str(name),
        multiaddrs=split_multiaddrs(str(multiaddrs)),
        status=HubStatus(int(status)),
        registered_at=int(registered_at),
        updated_at=int(updated_at),
        trusted=bool(trusted),
    )
