"""The shape every sans-IO protocol core follows.

A core is a state machine. Drivers (the trio daemon, the simulator, unit-test
builders) feed it input and the current time, then collect what it wants sent
and what happened. Because the core never reads a clock, sleeps or draws its own
randomness, the same object runs in real time over libp2p and in virtual time
in the simulator, and tests are deterministic.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol, TypeVar

PeerT = TypeVar("PeerT", bound=Hashable)


class SansIOCore(Protocol[PeerT]):
    def receive(self, peer: PeerT, frame: bytes, now: float) -> None:
        """Consume one frame from `peer` received at `now` (seconds)."""

    def on_timer(self, now: float) -> None:
        """Run whatever was due at or before `now`."""

    def next_deadline(self) -> float | None:
        """When `on_timer` next has work, or None when nothing is scheduled."""

    def drain(self) -> list[tuple[PeerT, bytes]]:
        """Frames to send, in order, and forget them."""

    def events(self) -> list[object]:
        """What happened since the last call (deliveries, peer changes), and forget them."""
