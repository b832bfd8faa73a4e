"""Typed wrappers of HubWalletFactory and HubWallet."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import BlockIdentifier

from contracts.client import BoundContract, Sender, SignedTx, TxResult, sign_transaction
from contracts.records import HubStatus, Payout, WalletState, join_multiaddrs


class HubWalletFactory(BoundContract):
    NAME = "HubWalletFactory"
    GAS = {"create": 3_000_000}

    def is_wallet(self, address: str) -> bool:
        return bool(self._call("is_wallet", address))

    def wallet_count(self) -> int:
        return int(self._call("wallet_count"))

    def wallet_at(self, index: int) -> str:
        return str(self._call("wallet_at", index))

    def deposit(self) -> int:
        return int(self._call("deposit"))

    def lock_bps(self) -> int:
        return int(self._call("lock_bps"))

    def payout_period(self) -> int:
        return int(self._call("payout_period"))

    def waiting_period(self) -> int:
        return int(self._call("waiting_period"))

    def create_wallet(self, *, sender: Sender, gas: int | None = None) -> tuple[str, TxResult]:
        """Make a wallet owned by `sender`; returns its address and the receipt."""
        result = self._send("create", sender=sender, gas=gas)
        wallet = Web3.to_checksum_address(result.event("WalletCreated").args["wallet"])
        return wallet, result


class HubWallet(BoundContract):
    NAME = "HubWallet"
    GAS = {
        "register": 600_000,
        "transfer": 200_000,
        "claim": 120_000,
        "payday": 150_000,
        "unregister": 150_000,
        "withdraw": 150_000,
        "suspect": 150_000,
        "rehab": 150_000,
        "ban": 200_000,
    }

    def owner(self) -> str:
        return str(self._call("owner"))

    def status(self) -> HubStatus:
        return HubStatus(int(self._call("status")))

    def available(self) -> int:
        return int(self._call("available"))

    def owed(self, miner: str) -> int:
        return int(self._call("owed", miner))

    def frozen_funds(self) -> int:
        return int(self._call("frozen_funds"))

    def locked_funds(self) -> int:
        return int(self._call("locked_funds"))

    def state(self, *, block: BlockIdentifier = "latest") -> WalletState:
        """Everything at once, read at one block (one round trip on a JSON-RPC node)."""
        from contracts.snm import Token

        fields = (
            "owner", "status", "frozen_funds", "locked_funds", "owed_total", "available",
            "next_payday", "suspected_at", "payout_count", "paid_total", "deposit",
            "lock_bps", "payout_period", "waiting_period", "token",
        )  # fmt: skip
        values = dict(zip(fields, self._calls([(f, ()) for f in fields], block=block), strict=True))
        balance = Token(self.chain, values.pop("token")).balance_of(self.address)
        return WalletState(
            address=self.address,
            owner=values.pop("owner"),
            status=HubStatus(int(values.pop("status"))),
            balance=balance,
            **{k: int(v) for k, v in values.items()},
        )

    def register(
        self,
        name: str,
        multiaddrs: tuple[str, ...] | list[str],
        *,
        sender: Sender,
        gas: int | None = None,
    ) -> TxResult:
        return self._send("register", name, join_multiaddrs(multiaddrs), sender=sender, gas=gas)

    def transfer(
        self, miner: str, amount: int, *, sender: Sender, gas: int | None = None
    ) -> TxResult:
        return self._send("transfer", miner, amount, sender=sender, gas=gas)

    def sign_transfer(
        self, miner: str, amount: int, *, sender: LocalAccount, nonce: int | None = None
    ) -> SignedTx:
        """`transfer`, simulated and signed but not sent: the hub writes the
        transaction down before any node sees it (p2pnode/worker/payouts.py)."""
        return sign_transaction(
            self.chain,
            self._fn("transfer", miner, amount),
            sender=sender,
            gas=self.GAS["transfer"],
            label=f"{self.NAME}.transfer",
            nonce=nonce,
        )

    def claim(self, *, sender: Sender, gas: int | None = None) -> TxResult:
        return self._send("claim", sender=sender, gas=gas)

    def payday(self, *, sender: Sender, gas: int | None = None) -> TxResult:
        return self._send("payday", sender=sender, gas=gas)

    def unregister(self, *, sender: Sender, gas: int | None = None) -> TxResult:
        return self._send("unregister", sender=sender, gas=gas)

    def withdraw(
        self, receiver: str, amount: int, *, sender: Sender, gas: int | None = None
    ) -> TxResult:
        return self._send("withdraw", receiver, amount, sender=sender, gas=gas)

    def suspect(self, *, sender: Sender, gas: int | None = None) -> TxResult:
        return self._send("suspect", sender=sender, gas=gas)

    def rehab(self, *, sender: Sender, gas: int | None = None) -> TxResult:
        return self._send("rehab", sender=sender, gas=gas)

    def ban(self, *, sender: Sender, gas: int | None = None) -> TxResult:
        return self._send("ban", sender=sender, gas=gas)

    def payouts(
        self, from_block: int = 0, to_block: int | None = None, *, max_range: int = 2_000
    ) -> list[Payout]:
        return [
            Payout(
                wallet=self.address,
                miner=Web3.to_checksum_address(r.args["miner"]),
                amount=int(r.args["amount"]),
                payout=int(r.args["payout"]),
                lock_fee=int(r.args["lock_fee"]),
                timestamp=int(r.args["timestamp"]),
                block_number=r.block_number,
            )
            for r in self.events(from_block, to_block, names=["MinerPaid"], max_range=max_range)
        ]
