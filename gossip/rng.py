"""The randomness a protocol core may use, injected by its driver.

Cores never import `random` (tests/test_sans_io.py): the daemon passes a seeded
or system-seeded `random.Random`, the simulator one `random.Random(seed)` per node,
so a run is reproducible from its seed. Only the four methods below are used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class RandomSource(Protocol):
    def random(self) -> float: ...

    def shuffle(self, x: list[Any]) -> None: ...

    def sample(self, population: Sequence[T], k: int) -> list[T]: ...

    def getrandbits(self, k: int) -> int: ...


def sample(rng: RandomSource, population: list[T], k: int) -> list[T]:
    """`rng.sample(population, k)` for a `random.Random` (or SystemRandom): the
    same draws from `getrandbits` and the same picks, as CPython 3.11 writes
    `Random.sample` over `_randbelow_with_getrandbits`.

    Why not call `rng.sample`: it is Python code, and every heartbeat of every
    router picks its gossip and mesh peers with it (3 % of a 10^5-node
    simulation); compiled with the router, this one is several times faster.
    A seed gives the peers it always gave (tests/gossip/test_rng.py holds the
    two to the same results).
    """
    n = len(population)
    if not 0 <= k <= n:
        raise ValueError("Sample larger than population or is negative")
    getrandbits = rng.getrandbits
    result: list[T] = []
    setsize = 21  # size of a small set minus size of an empty list
    if k > 5:
        setsize += 4 ** math.ceil(math.log(k * 3, 4))  # table size for big sets
    if n <= setsize:
        pool = list(population)
        for i in range(k):
            m = n - i
            bits = m.bit_length()
            j = getrandbits(bits)
            while j >= m:
                j = getrandbits(bits)
            result.append(pool[j])
            pool[j] = pool[m - 1]  # move non-selected item into vacancy
    else:
        selected: set[int] = set()
        bits = n.bit_length()
        for _ in range(k):
            j = getrandbits(bits)
            while j >= n or j in selected:
                j = getrandbits(bits)
            selected.add(j)
            result.append(population[j])
    return result
