"""The randomness a protocol core may use, injected by its driver.

Cores never import `random` (tests/test_sans_io.py): the daemon passes a seeded
or system-seeded `random.Random`, the simulator one `random.Random(seed)` per node,
so a run is reproducible from its seed. Only the four methods below are used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class RandomSource(Protocol):
    def random(self) -> float: ...

    def shuffle(self, x: list[Any]) -> None: ...

    def sample(self, population: Sequence[T], k: int) -> list[T]: ...

    def getrandbits(self, k: int) -> int: ...
