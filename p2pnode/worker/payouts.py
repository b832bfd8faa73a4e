"""A hub's payouts to its workers, sent at most once and never lost across a crash.

A payout is a HubWallet.transfer. Recording it only after the transaction is mined
leaves a window: a hub that dies after the send and before the write finds the
worker still owed on restart and pays it again. So each payout goes in three steps:

1. prepare: the transfer is simulated and signed here with an explicit nonce (its
   hash is known before any node sees it); the intent (agreement, payday,
   attempt, amount, nonce, hash, the signed bytes; its id `registry.payout_id`)
   is committed to SQLite. While it is pending the agreement gets no other payout.
2. send: the signed bytes go to the chain node.
3. settle: the receipt by hash. Mined and succeeded: the payout row, the
   agreement's total and the intent's `paid` mark are one SQLite transaction.
   Failed on chain, or its nonce taken by another mined transaction (then it can
   never be mined): `void`, nothing paid, the amount stays owed and goes out with a
   fresh intent. Neither yet: it stays pending.

Reconciliation (at start-up and before every payout round) settles each pending
intent the same way; one the chain has not seen is sent again, byte for byte,
so a crash between steps 1 and 2 loses nothing, and a crash between 2 and 3 pays
nothing twice: the same signed transaction is mined at most once (one nonce, one
hash). The wallet's MinerPaid events are not needed to match: the hash is exact.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from contracts.client import broadcast, nonce_used, receipt_of, wait_for_receipt
from contracts.errors import ChainError, ContractRevert
from gossip.messages import address_hex
from p2pnode.worker.registry import Member, PayoutIntent, WorkerRegistry

log = logging.getLogger(__name__)

ChainCall = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Settled:
    """What the chain says of one intent: paid, void or still pending."""

    state: str
    tx: str
    why: str = ""


class HubPayouts:
    """The payout schedule (each agreement's paydays) and the three steps above.

    `chain_call` runs a blocking chain function off the event loop, one at a time
    per node (MarketService.chain_call): a payout's nonce is read, signed, written
    down and sent inside one such call, so no other transaction of this node takes
    that nonce in between. `connect()` gives the hub wallet and the node's account,
    or None while the node has no chain or no key."""

    def __init__(
        self,
        registry: WorkerRegistry,
        *,
        wallet: str,
        connect: Callable[[], tuple[Any, Any] | None],
        chain_call: ChainCall,
        clock: Callable[[], float] = time.time,
        receipt_timeout: float | None = None,
    ) -> None:
        self.registry = registry
        self.wallet = wallet
        self._connect = connect
        self._chain_call = chain_call
        self.clock = clock
        self._receipt_timeout = receipt_timeout
        self._next: dict[int, float] = {}
        self.counters: dict[str, int] = {
            "payouts": 0,
            "payout_failures": 0,
            "payouts_reconciled": 0,
            "payouts_void": 0,
            "payouts_pending": 0,
        }

    # -- the schedule --------------------------------------------------------------

    def first_payday(self, member: Member) -> float:
        last = self.registry.last_payout_at(member.id)
        return member.payday_after(last if last is not None else member.joined_at)

    def schedule(self, member: Member, at: float) -> None:
        self._next[member.id] = at

    def load(self) -> None:
        for member in self.registry.members(active_only=True):
            self._next[member.id] = self.first_payday(member)

    # -- one payout, step by step (each runs in chain_call's thread) ----------------

    def prepare(
        self, wallet: Any, account: Any, member: Member, payday: float, amount: int, now: float
    ) -> PayoutIntent:
        """Step 1: simulate and sign the transfer, commit the intent. Raises
        ChainError (a revert: no funds, hub not registered) with nothing written."""
        miner = address_hex(bytes.fromhex(member.worker[2:]))
        signed = wallet.sign_transfer(miner, amount, sender=account)
        return self.registry.add_intent(
            self.wallet,
            member,
            payday=payday,
            amount=amount,
            at=now,
            nonce=signed.nonce,
            tx=signed.tx_hash,
            raw=signed.raw,
        )

    def send(self, wallet: Any, intent: PayoutIntent) -> None:
        """Step 2: hand the signed transfer to the chain node."""
        broadcast(wallet.chain, intent.raw, label="HubWallet.transfer")

    def settle(
        self, wallet: Any, sender: str, intent: PayoutIntent, *, wait: float = 0.0
    ) -> Settled:
        """Step 3: what the chain holds for the intent's hash, written down.
        `sender`: the hub's account, whose nonce the transaction carries."""
        chain = wallet.chain
        label = "HubWallet.transfer"
        now = self.clock()
        try:
            if wait > 0:
                result = wait_for_receipt(chain, intent.tx, label=label, timeout=wait)
            else:
                result = receipt_of(chain, intent.tx, label=label)
            if result is None and nonce_used(chain, sender, intent.nonce):
                # mined between the two reads, or never: read the receipt once more
                result = receipt_of(chain, intent.tx, label=label)
                if result is None:
                    why = f"nonce {intent.nonce} was taken by another transaction"
                    return self._void(intent, now, why)
        except ContractRevert as exc:
            return self._void(intent, now, f"failed on chain: {exc}")
        if result is None:
            return Settled("pending", intent.tx)
        member = self.registry.get(intent.agreement)
        assert member is not None, "an intent names an agreement of this registry"
        self.registry.record_payout(
            member, intent.amount, intent.created_at, result.tx_hash, intent=intent.id
        )
        return Settled("paid", result.tx_hash)

    def _void(self, intent: PayoutIntent, now: float, why: str) -> Settled:
        if self.registry.void_intent(intent.id, now, why):
            self.counters["payouts_void"] += 1
            log.warning("workers: payout %s to %s void: %s", intent.id, intent.worker, why)
        return Settled("void", intent.tx, why)

    def _pay_sync(
        self, wallet: Any, account: Any, member: Member, payday: float, amount: int, now: float
    ) -> Settled:
        intent = self.prepare(wallet, account, member, payday, amount, now)
        try:
            self.send(wallet, intent)
        except ChainError as exc:
            # maybe sent, maybe not: the intent is pending, reconciliation decides
            log.warning("workers: payout %s: sending failed: %s", intent.id, exc)
            return Settled("pending", intent.tx, str(exc))
        return self.settle(wallet, account.address, intent, wait=self._wait(wallet))

    def _wait(self, wallet: Any) -> float:
        if self._receipt_timeout is not None:
            return self._receipt_timeout
        return float(getattr(wallet.chain, "receipt_timeout", 30.0))

    # -- reconciliation ------------------------------------------------------------

    def _reconcile_sync(self, wallet: Any, sender: str) -> dict[str, int]:
        counts = {"paid": 0, "void": 0, "pending": 0}
        for intent in self.registry.pending_intents():
            try:
                done = self.settle(wallet, sender, intent)
                if done.state == "pending":
                    try:  # the chain has not seen it (or lost it): the same bytes again
                        self.send(wallet, intent)
                    except ChainError as exc:
                        log.info("workers: payout %s sent again: %s", intent.id, exc)
                    done = self.settle(wallet, sender, intent, wait=min(5.0, self._wait(wallet)))
            except ChainError as exc:  # the node is down: pending until the next round
                log.warning("workers: reconciling payout %s: %s", intent.id, exc)
                done = Settled("pending", intent.tx, str(exc))
            counts[done.state] += 1
            if done.state == "paid":
                log.info("workers: payout %s to %s found paid", intent.id, intent.worker)
        return counts

    async def reconcile(self) -> dict[str, int]:
        """Settle every pending intent against the chain; {paid, void, pending}."""
        connected = self._connect()
        if connected is None or not self.registry.pending_intents():
            return {"paid": 0, "void": 0, "pending": 0}
        wallet, account = connected
        counts: dict[str, int] = await self._chain_call(
            self._reconcile_sync, wallet, account.address
        )
        self.counters["payouts_reconciled"] += counts["paid"]
        self.counters["payouts_pending"] = counts["pending"]
        return counts

    # -- the payout round ------------------------------------------------------------

    async def pay_due(self) -> int:
        """Reconcile, then pay every worker whose payday has come what it is owed;
        how many were paid. An agreement with a payout still pending waits."""
        connected = self._connect()
        if connected is None:
            return 0
        wallet, account = connected
        await self.reconcile()
        pending = {i.agreement for i in self.registry.pending_intents()}
        now = self.clock()
        paid = 0
        for member in self.registry.members():
            if member.id in pending:
                continue
            if not member.active and member.owed(now) == 0:
                continue
            due_at = self._next.setdefault(member.id, self.first_payday(member))
            if now < due_at:
                continue
            amount = member.owed(now)
            # the next payday on the agreement's grid: a payout that went out late
            # does not push every later one back
            self._next[member.id] = member.payday_after(now)
            if amount <= 0:
                continue
            try:
                done = await self._chain_call(
                    self._pay_sync, wallet, account, member, due_at, amount, now
                )
            except (ChainError, ValueError) as exc:
                self.counters["payout_failures"] += 1
                log.warning("workers: paying %s %d wei failed: %s", member.worker, amount, exc)
                continue
            if done.state != "paid":
                if done.state == "void":
                    self.counters["payout_failures"] += 1
                continue
            self.counters["payouts"] += 1
            paid += 1
            hours = member.seconds_worked(now) / 3600
            log.info(
                "workers: paid %s %d wei (%.4f h joined), tx %s",
                member.worker,
                amount,
                hours,
                done.tx,
            )
        return paid
