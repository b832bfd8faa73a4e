"""Columnar storage of ASKs: the buffer new orders land in and the sorted segments.

Why columns: one BID is matched by comparing a few numbers per ASK, and numpy does
that for thousands of ASKs per call; Python objects per ASK would cost both the
time (a loop) and the memory (several hundred bytes each). Every column is fixed
width, so an ASK costs a known number of bytes (see docs/market.md, "Index").

A `Segment` is immutable apart from its `alive` bits: rows sorted by (price,
arrival), plus per-dimension bitmaps. For each benchmark (and the duration) the
segment picks up to `levels` thresholds from its own values and keeps, per
threshold, one bit per row: "this row's value reaches the threshold". A BID that
needs at least r looks up the highest threshold <= r and ANDs that bitmap in: a
superset of the rows that can match, 64 rows per machine word, so the rows that
cannot match are skipped without being read. What survives is checked exactly.
"""

from __future__ import annotations

from bisect import bisect_right

import numpy as np
import numpy.typing as npt

from gossip.orders import BENCHMARK_NAMES

N_BENCH = len(BENCHMARK_NAMES)
DURATION_DIM = N_BENCH  # the duration is indexed like one more benchmark
N_DIMS = N_BENCH + 1
NET_BITS = (1, 2)  # network flag bits a BID may need (NetworkType: 1 out, 3 in/out)
FLAG_BLACKLIST = 1  # the ASK has a blacklist (kept beside the index, by seq)
FLAG_COUNTERPARTY = 2  # the ASK names a counterparty
FLAG_MIN_RATING = 4  # the ASK asks a minimum rating of the BID's author
THRESHOLD_SAMPLE = 1024  # values a segment samples to choose its thresholds
BLOOM_BITS = 16  # per row: a lookup of an absent id reads two bits, false positive ~1.4 %

U64 = npt.NDArray[np.uint64]
Words = npt.NDArray[np.uint64]
Rows = npt.NDArray[np.intp]
Mask = npt.NDArray[np.bool_]


class Columns:
    """The fixed-width fields of n ASKs, one numpy array per field."""

    __slots__ = (
        "author",
        "bench",
        "cp",
        "duration",
        "flags",
        "ids",
        "min_rating",
        "n",
        "net",
        "price_hi",
        "price_lo",
        "seq",
        "valid_until",
    )

    def __init__(self, n: int) -> None:
        self.n = n
        self.price_hi: U64 = np.zeros(n, np.uint64)  # price = hi * 2**64 + lo
        self.price_lo: U64 = np.zeros(n, np.uint64)
        self.seq: U64 = np.zeros(n, np.uint64)  # arrival order in this index
        self.duration = np.zeros(n, np.uint32)
        # one row per benchmark (column-major): a segment's bitmaps and the exact checks
        # read one benchmark over many ASKs, which a row per ASK would make a strided read
        self.bench: U64 = np.zeros((N_BENCH, n), np.uint64)
        self.net = np.zeros(n, np.uint8)
        self.author = np.zeros(n, np.uint32)  # interned address (index.py)
        self.cp = np.zeros(n, np.uint32)  # interned counterparty, 0 = anyone
        self.min_rating = np.zeros(n, np.uint16)
        self.valid_until: U64 = np.zeros(n, np.uint64)
        self.flags = np.zeros(n, np.uint8)
        self.ids = np.zeros(n, "V32")

    def arrays(self) -> list[np.ndarray]:
        return [
            self.price_hi,
            self.price_lo,
            self.seq,
            self.duration,
            self.bench,
            self.net,
            self.author,
            self.cp,
            self.min_rating,
            self.valid_until,
            self.flags,
            self.ids,
        ]

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays())

    def take(self, rows: Rows) -> Columns:
        out = Columns(0)
        out.n = len(rows)
        for name in Columns.__slots__:
            if name != "n":
                axis = 1 if name == "bench" else 0
                setattr(out, name, np.take(getattr(self, name), rows, axis=axis))
        return out

    @staticmethod
    def concat(parts: list[Columns]) -> Columns:
        out = Columns(0)
        out.n = sum(p.n for p in parts)
        for name in Columns.__slots__:
            if name != "n":
                axis = 1 if name == "bench" else 0
                setattr(out, name, np.concatenate([getattr(p, name) for p in parts], axis=axis))
        return out

    def price_order(self) -> Rows:
        """Rows by price; equal prices keep their current (arrival) order: stable."""
        if not self.price_hi.any():
            return np.argsort(self.price_lo, kind="stable")
        return np.lexsort((self.price_lo, self.price_hi))

    def price_at_most(self, hi: int, lo: int, rows: Rows | None = None) -> Mask:
        """Which rows cost at most hi * 2**64 + lo (unsorted rows: the buffer)."""
        ph = self.price_hi if rows is None else self.price_hi[rows]
        pl = self.price_lo if rows is None else self.price_lo[rows]
        return (ph < np.uint64(hi)) | ((ph == np.uint64(hi)) & (pl <= np.uint64(lo)))


def pack(mask: Mask) -> Words:
    """A bool per row -> 64 rows per little-endian word (row i is bit i % 64)."""
    n = len(mask)
    padded = np.zeros(((n + 63) >> 6) << 6, np.bool_)
    padded[:n] = mask
    return np.packbits(padded, bitorder="little").view("<u8").astype(np.uint64, copy=False)


def unpack(words: Words, n: int) -> Mask:
    bits = np.unpackbits(words.view(np.uint8), bitorder="little")
    return bits[:n].view(np.bool_)


def word_rows(words: Words, word_numbers: Rows) -> Rows:
    """The row numbers of the set bits of `words`, whose word numbers are `word_numbers`."""
    loc = np.flatnonzero(np.unpackbits(words.view(np.uint8), bitorder="little"))
    return (word_numbers[loc >> 6] << 6) + (loc & 63)


class Segment:
    """Sorted, indexed, immutable rows; only their `alive` bits change (cancel, expiry)."""

    __slots__ = (
        "alive",
        "alive_bytes",
        "all_hi_zero",
        "bitmaps",
        "bloom",
        "bloom_mask",
        "cols",
        "counts",
        "dead",
        "key_rows",
        "key_sorted",
        "maxv",
        "net_bitmaps",
        "net_counts",
        "thresholds",
    )

    def __init__(
        self,
        cols: Columns,
        levels: int,
        key_rows: Rows | None = None,
        key_sorted: U64 | None = None,
    ) -> None:
        """`cols` must already be in (price, seq) order and hold live rows only.

        `key_rows`, when the caller knows it (a merge), is the rows in id order, and
        `key_sorted` their ids' first words.
        """
        n = cols.n
        self.cols = cols
        self.dead = 0
        # the alive bits live in a bytearray that numpy views: a cancel flips one bit
        # with plain Python, the matcher ANDs the same memory as uint64 words
        self.alive_bytes = bytearray(pack(np.ones(n, np.bool_)).tobytes())
        self.alive: Words = np.frombuffer(self.alive_bytes, dtype="<u8")
        self.all_hi_zero = not cols.price_hi.any()
        words4 = cols.ids.view(">u8").reshape(n, 4)
        keys = words4[:, 0].astype(np.uint64)
        if key_rows is None:
            key_rows = np.argsort(keys, kind="stable")
        self.key_rows = key_rows.astype(np.uint32)
        self.key_sorted: U64 = keys[key_rows] if key_sorted is None else key_sorted
        # ids are digests: two of their other 8-byte words are two independent hashes
        size = 64
        while size < n * BLOOM_BITS:
            size <<= 1
        self.bloom_mask = size - 1
        bits = np.zeros(size, np.bool_)
        bits[(words4[:, 1] & np.uint64(size - 1)).astype(np.intp)] = True
        bits[(words4[:, 2] & np.uint64(size - 1)).astype(np.intp)] = True
        self.bloom = np.packbits(bits, bitorder="little").tobytes()  # bytes: fast to index
        nw = (n + 63) >> 6
        self.bitmaps: Words = np.zeros((N_DIMS, levels, nw), np.uint64)
        self.thresholds: list[list[int]] = []
        self.counts: list[list[int]] = []  # rows set in each bitmap: how selective it is
        self.maxv: list[int] = []
        step = max(1, n // THRESHOLD_SAMPLE)
        padded = np.zeros(nw << 6, np.uint64)  # rows past n read as 0: below any threshold
        above = np.empty((levels, nw << 6), np.bool_)
        for d in range(N_DIMS):
            col = cols.duration if d == DURATION_DIM else cols.bench[d]
            self.maxv.append(int(col.max()) if n else 0)
            thr = _thresholds(col[::step], levels)
            self.thresholds.append(thr)
            if not thr:
                self.counts.append([])
                continue
            padded[:n] = col
            for i, t in enumerate(thr):  # one contiguous pass per threshold: SIMD compares
                np.greater_equal(padded, np.uint64(t), out=above[i])
            self.counts.append([int(np.count_nonzero(above[i])) for i in range(len(thr))])
            packed = np.packbits(above[: len(thr)], axis=1, bitorder="little")
            self.bitmaps[d, : len(thr)] = packed.view("<u8")
        self.net_counts = [int(((cols.net & bit) == bit).sum()) for bit in NET_BITS]
        self.net_bitmaps: Words = np.stack(
            [pack((cols.net & bit) == bit) for bit in NET_BITS]
        ).reshape(len(NET_BITS), nw)

    @property
    def n(self) -> int:
        return self.cols.n

    @property
    def live(self) -> int:
        return self.n - self.dead

    def nbytes(self) -> int:
        return (
            self.cols.nbytes()
            + self.alive.nbytes
            + self.key_rows.nbytes
            + self.key_sorted.nbytes
            + self.bitmaps.nbytes
            + len(self.bloom)
            + self.net_bitmaps.nbytes
        )

    def level(self, dim: int, needed: int) -> int:
        """The bitmap that is a superset of the rows reaching `needed` (-1: none helps)."""
        return bisect_right(self.thresholds[dim], needed) - 1

    def price_end(self, hi: int, lo: int) -> int:
        """How many leading rows cost at most hi * 2**64 + lo."""
        cols = self.cols
        if self.all_hi_zero:
            if hi:
                return cols.n
            return int(cols.price_lo.searchsorted(np.uint64(lo), side="right"))
        start = int(cols.price_hi.searchsorted(np.uint64(hi), side="left"))
        stop = int(cols.price_hi.searchsorted(np.uint64(hi), side="right"))
        return start + int(cols.price_lo[start:stop].searchsorted(np.uint64(lo), "right"))

    def find(self, order_id: bytes) -> int:
        """The row holding `order_id`, alive or not, or -1."""
        bloom, mask = self.bloom, self.bloom_mask
        h = int.from_bytes(order_id[8:16], "big") & mask
        if not (bloom[h >> 3] >> (h & 7)) & 1:
            return -1
        h = int.from_bytes(order_id[16:24], "big") & mask
        if not (bloom[h >> 3] >> (h & 7)) & 1:
            return -1
        key = np.uint64(int.from_bytes(order_id[:8], "big"))
        keys = self.key_sorted
        j = int(keys.searchsorted(key))
        n = len(keys)
        while j < n and keys[j] == key:
            row = int(self.key_rows[j])
            if self.cols.ids[row].tobytes() == order_id:
                return row
            j += 1
        return -1

    def is_alive(self, row: int) -> bool:
        return bool((self.alive_bytes[row >> 3] >> (row & 7)) & 1)

    def kill(self, row: int) -> None:
        self.alive_bytes[row >> 3] &= ~(1 << (row & 7)) & 0xFF
        self.dead += 1

    def live_rows(self) -> Rows:
        return np.flatnonzero(unpack(self.alive, self.n))


def _thresholds(sample: np.ndarray, levels: int) -> list[int]:
    """Up to `levels` positive thresholds spread over the sample's values.

    Few distinct values (GPU counts, core counts, RAM sizes) become exact
    thresholds; many become quantiles, so each bitmap splits the rows evenly.
    Any choice is correct (a bitmap at t <= r is a superset); this one is tight.
    """
    values = np.unique(sample)
    values = values[values > 0]
    if len(values) <= levels:
        return [int(v) for v in values]
    ordered = np.sort(sample[sample > 0])
    picks = ordered[(np.arange(levels) * len(ordered)) // levels]
    return sorted({int(v) for v in picks})
