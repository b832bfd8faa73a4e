"""Which ids the index may hold: one Bloom filter over the whole index.

Every `add` must refuse an id the index holds already. Asking each segment (its own
Bloom filter, then a binary search) costs a few microseconds per segment, and almost
every id gossip delivers is new; one filter over all of them answers "surely not
here" for those with two bit reads. A "maybe" is settled by the segments as before,
so a false positive costs time, never a wrong answer.

The filter only grows between rebuilds (rows compacted away keep their bits); it is
rebuilt from the index's ids, sized for them, once it is full enough that false
positives would become common, so its cost per add stays constant.

Its two probes come from the id's last 8-byte word (ids are EIP-712 digests, so its
bits are uniform), which the segments' filters do not use: a false positive here is
independent of one there.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

BITS_PER_ID = 16  # after a rebuild: ~1 % false positives with two probes
MIN_BITS_PER_ID = 8  # ... rebuilt when it gets this full: ~5 %
MIN_SIZE = 1 << 14  # bits


class IdFilter:
    __slots__ = ("bits", "entries", "mask")

    def __init__(self) -> None:
        self.bits = bytearray(MIN_SIZE >> 3)
        self.mask = MIN_SIZE - 1
        self.entries = 0

    def may_hold(self, order_id: bytes) -> bool:
        """False: `order_id` was never added since the last rebuild nor given to it."""
        word = int.from_bytes(order_id[24:32], "big")
        bits, mask = self.bits, self.mask
        h = word & mask
        if not (bits[h >> 3] >> (h & 7)) & 1:
            return False
        h = (word >> 32) & mask
        return bool((bits[h >> 3] >> (h & 7)) & 1)

    def add(self, order_id: bytes) -> bool:
        """Remember `order_id`; True when the filter is due a `rebuild`."""
        word = int.from_bytes(order_id[24:32], "big")
        bits, mask = self.bits, self.mask
        h = word & mask
        bits[h >> 3] |= 1 << (h & 7)
        h = (word >> 32) & mask
        bits[h >> 3] |= 1 << (h & 7)
        self.entries += 1
        return self.entries * MIN_BITS_PER_ID > mask + 1

    def rebuild(self, ids: list[npt.NDArray[np.void]]) -> None:
        """Forget everything; hold exactly `ids` (32-byte ids, as the columns store them)."""
        n = sum(len(a) for a in ids)
        size = MIN_SIZE
        while size < n * BITS_PER_ID:
            size <<= 1
        bits = np.zeros(size, np.bool_)
        mask = np.uint64(size - 1)
        for a in ids:
            if len(a):
                word = a.view(">u8").reshape(len(a), 4)[:, 3].astype(np.uint64)
                bits[(word & mask).astype(np.intp)] = True
                bits[((word >> np.uint64(32)) & mask).astype(np.intp)] = True
        self.bits = bytearray(np.packbits(bits, bitorder="little").tobytes())
        self.mask = size - 1
        self.entries = n

    def nbytes(self) -> int:
        return len(self.bits)
