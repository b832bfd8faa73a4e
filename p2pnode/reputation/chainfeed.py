"""Hub wallet payments read from the chain, for the reputation core's evidence.

Blocking (JSON-RPC): the service runs `read` in a worker thread. Each call reads
the `MinerPaid` events of the given wallets from the block after each one's
cursor up to the chain's head, in ranges of at most `max_range` blocks, so a node
that was off for a long time catches up in bounded requests. The amount taken
is the event's `amount`: what the hub transferred for the miner, the lock fee
included (the fee is the miner's, held for the payout period).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SeenPayment:
    hub: bytes  # wallet address
    worker: bytes  # miner address
    amount: int
    at: float  # the event's timestamp (chain time)
    block: int


def _addr(value: str) -> bytes:
    return bytes.fromhex(value[2:] if value.startswith("0x") else value)


FIRST_LOOKBACK = 50_000  # blocks a wallet never read before is read back (a week at 12 s)


def read(
    system: Any,
    wallets: dict[bytes, int],
    *,
    max_range: int = 2_000,
    first_lookback: int = FIRST_LOOKBACK,
) -> tuple[list[SeenPayment], int, dict[bytes, float]]:
    """Payments from each wallet in blocks (its cursor, head]; the head read; and, for
    each wallet read for the first time, the chain time its reading begins at.

    A cursor of 0 is a wallet never read: it is read from `first_lookback` blocks
    back, not from genesis (on a long chain that would be thousands of requests per
    hub, for payments that are no evidence of ours: an agreement starts when it is
    made). A wallet read before is read from its cursor, however far back. What was
    paid before the first block read is unknown: a proof of a missed payday for an
    agreement that started before it proves nothing (`ReputationCore.check_proof`)."""
    head = int(system.chain.block_number())
    out: list[SeenPayment] = []
    since: dict[bytes, float] = {}
    for wallet, cursor in wallets.items():
        after = cursor if cursor > 0 else max(0, head - first_lookback)
        if cursor <= 0:
            since[wallet] = 0.0 if after == 0 else float(system.chain.block_time(after + 1))
        if after >= head:
            continue
        hw = system.wallet("0x" + wallet.hex())
        for p in hw.payouts(after + 1, head, max_range=max_range):
            out.append(
                SeenPayment(
                    wallet, _addr(p.miner), int(p.amount), float(p.timestamp), p.block_number
                )
            )
    out.sort(key=lambda p: (p.block, p.at))
    return out, head, since
