"""The deployment's rules, kept apart from web3 so the CLI can show their defaults
without paying for web3's import (about 0.7 s on every command)."""

from __future__ import annotations

from dataclasses import dataclass

SNM = 10**18


@dataclass(frozen=True)
class SystemParams:
    """The rules every hub wallet is made under, and the token's initial supply."""

    initial_supply: int = 1_000_000_000 * SNM
    deposit: int = 10_000 * SNM
    lock_bps: int = 1_000  # 10% of each miner payment is locked until payday
    payout_period: int = 7 * 24 * 3600
    waiting_period: int = 3 * 24 * 3600  # between suspect and a possible ban

    def validate(self) -> None:
        if self.initial_supply < 0:
            raise ValueError(f"initial_supply must be >= 0, got {self.initial_supply}")
        if self.deposit <= 0:
            raise ValueError(f"deposit must be > 0, got {self.deposit}")
        if not 0 <= self.lock_bps <= 10_000:
            raise ValueError(f"lock_bps must be in [0, 10000], got {self.lock_bps}")
        if self.payout_period <= 0:
            raise ValueError(f"payout_period must be > 0 seconds, got {self.payout_period}")
        if self.waiting_period < 0:
            raise ValueError(f"waiting_period must be >= 0 seconds, got {self.waiting_period}")


__all__ = ["SNM", "SystemParams"]
