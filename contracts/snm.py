"""Typed wrapper of the SNM ERC-20 token."""

from __future__ import annotations

from contracts.client import BoundContract, Sender, TxResult


class Token(BoundContract):
    NAME = "Token"
    GAS = {"transfer": 100_000, "transferFrom": 120_000, "approve": 80_000, "mint": 100_000}

    def name(self) -> str:
        return str(self._call("name"))

    def symbol(self) -> str:
        return str(self._call("symbol"))

    def decimals(self) -> int:
        return int(self._call("decimals"))

    def total_supply(self) -> int:
        return int(self._call("totalSupply"))

    def balance_of(self, owner: str) -> int:
        return int(self._call("balanceOf", owner))

    def allowance(self, owner: str, spender: str) -> int:
        return int(self._call("allowance", owner, spender))

    def minter(self) -> str:
        return str(self._call("minter"))

    def transfer(
        self, receiver: str, amount: int, *, sender: Sender, gas: int | None = None
    ) -> TxResult:
        return self._send("transfer", receiver, amount, sender=sender, gas=gas)

    def transfer_from(
        self, owner: str, receiver: str, amount: int, *, sender: Sender, gas: int | None = None
    ) -> TxResult:
        return self._send("transferFrom", owner, receiver, amount, sender=sender, gas=gas)

    def approve(
        self, spender: str, amount: int, *, sender: Sender, gas: int | None = None
    ) -> TxResult:
        return self._send("approve", spender, amount, sender=sender, gas=gas)

    def mint(
        self, receiver: str, amount: int, *, sender: Sender, gas: int | None = None
    ) -> TxResult:
        return self._send("mint", receiver, amount, sender=sender, gas=gas)

    def set_minter(self, new_minter: str, *, sender: Sender, gas: int | None = None) -> TxResult:
        return self._send("set_minter", new_minter, sender=sender, gas=gas)
