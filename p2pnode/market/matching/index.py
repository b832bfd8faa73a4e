"""The ASK index: the book one node matches its BIDs against, fed by gossip.

Layout (why, in docs/market.md "Index"): new ASKs are appended to a small columnar
buffer as one packed record each, so an insert is one `struct` call and a few list
appends, and an index-wide Bloom filter (seen.py) clears a new id without asking
every segment whether it holds it; a full buffer becomes a sorted segment
(columns.Segment), and segments of similar size are merged, so every ASK is
rewritten O(log n) times in its life (a log-structured merge). A cancel or an
expiry clears the ASK's `alive` bit (a tombstone); a segment with too many
tombstones is rewritten without them at the next maintenance, in one batch.

A match asks every segment for its best row under a price bound that tightens as
winners are found (rows are in price order, so the bound is a prefix), skipping
rows with per-dimension bitmaps (an exact one settles its constraint) before
checking the survivors exactly; the buffer is checked exactly, whole. Ties on price
go to the ASK this index saw first.

Pure: no clock (expiry takes `now`), no I/O, the rating lookup is passed in.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from gossip.messages import ZERO_ADDRESS
from gossip.orders import Side
from p2pnode.market.matching.columns import (
    DURATION_DIM,
    FLAG_BLACKLIST,
    FLAG_COUNTERPARTY,
    FLAG_MIN_RATING,
    N_BENCH,
    N_DIMS,
    NET_BITS,
    Columns,
    Mask,
    Rows,
    Segment,
    Words,
    word_rows,
)
from p2pnode.market.matching.errors import CallerError, ConfigError, RemoteOrderError
from p2pnode.market.matching.rule import OrderView, RatingLookup, no_ratings
from p2pnode.market.matching.seen import IdFilter

PRICE_LIMIT = 1 << 128  # an ASK's price per hour must be below this (3.4e20 SNM)
_U64 = (1 << 64) - 1
_U32_MAX = (1 << 32) - 1
FIRST_WORDS = 256  # a segment is searched in word ranges growing 8-fold from at least this many
FIRST_CANDIDATES = 64  # ... or from as many as should hold this many candidate rows
MAX_BITMAPS = 8  # per segment, at most this many of the bitmaps a BID selects are ANDed:
DENSE_BITMAP = 0.5  # the exact ones, the sparsest, and those keeping out this share of rows
FULL_PASS_BITMAPS = 3  # ... the sparsest over the whole range, the rest at its non-zero words
FIRST_CANDIDATE_WORDS = 4  # a range's non-zero words are read in chunks growing 4-fold from this
NET_MASK = sum(NET_BITS)  # the network flags that have bitmaps


@dataclass(frozen=True)
class IndexParams:
    """How the index trades insert cost, match cost and memory."""

    buffer_rows: int = 2048  # new ASKs checked whole before they are sorted into a segment
    growth: int = 4  # a segment is merged into the one before it unless that is this much larger
    levels: int = 8  # bitmaps per dimension per segment: 8 bits (1 byte) per ASK per dimension
    compact_ratio: float = 0.25  # rewrite a segment once this share of its rows is tombstones
    early_cancels: int = 65_536  # cancelled ids remembered, to refuse late copies (oldest go)

    def validate(self) -> None:
        if not 16 <= self.buffer_rows <= 1 << 20:
            raise ConfigError(f"buffer_rows must be in [16, 1048576], got {self.buffer_rows}")
        if not 2 <= self.growth <= 64:
            raise ConfigError(f"growth must be in [2, 64], got {self.growth}")
        if not 1 <= self.levels <= 64:
            raise ConfigError(f"levels must be in [1, 64], got {self.levels}")
        if not 0.0 < self.compact_ratio <= 1.0:
            raise ConfigError(f"compact_ratio must be in (0, 1], got {self.compact_ratio}")
        if not 0 <= self.early_cancels <= 1 << 24:
            raise ConfigError(f"early_cancels must be in [0, 16777216], got {self.early_cancels}")


@dataclass(frozen=True)
class Match:
    """The ASK that wins a BID: the cheapest that passes every constraint, then the earliest."""

    order_id: bytes
    author: bytes
    price_per_hour: int
    seq: int  # arrival order in this index (the tie-break)


@dataclass
class Query:
    """A BID prepared once against the index's tables, then checked segment by segment."""

    hi: int
    lo: int
    duration: int
    dims: np.ndarray  # benchmark dimensions the BID needs (> 0)
    req: np.ndarray  # ... and the minimum per dimension
    dim_reqs: list[tuple[int, int]]  # (dimension, minimum), the duration included
    need: dict[int, int]  # the same pairs, by dimension
    net: int
    cp: int  # interned counterparty the ASK author must be; 0 = anyone, -1 = unknown address
    author: bytes
    author_idx: int  # 0 when the BID's author has no ASK here
    black: np.ndarray  # interned addresses the BID refuses (only those known here)
    min_rating: int
    rating: RatingLookup
    _author_rating: int | None = None
    _ratings: dict[int, int] = field(default_factory=dict)

    def author_rating(self) -> int:
        if self._author_rating is None:
            self._author_rating = self.rating(self.author)
        return self._author_rating

    def rating_of(self, idx: int, address: bytes) -> int:
        got = self._ratings.get(idx)
        if got is None:
            got = self._ratings[idx] = self.rating(address)
        return got


# An ASK's fixed-width fields as `add` packs them (little-endian, no padding); packing
# is also the range check: struct refuses a value its field cannot hold.
_ROW = struct.Struct(f"<4Q{N_BENCH}QIHBB32s")
_ROW_DTYPE = np.dtype(
    [
        ("price_hi", "<u8"),
        ("price_lo", "<u8"),
        ("seq", "<u8"),
        ("valid_until", "<u8"),
        ("bench", "<u8", (N_BENCH,)),
        ("duration", "<u4"),
        ("min_rating", "<u2"),
        ("net", "u1"),
        ("flags", "u1"),
        ("ids", "V32"),
    ]
)
assert _ROW_DTYPE.itemsize == _ROW.size


class _Buffer:
    """Newly added ASKs, unsorted, in arrival order.

    An add appends one packed row (`_ROW`) and its two interned addresses; the rows
    are written into the numpy columns in one go when something reads them (a match,
    a flush): one `frombuffer` of the joined rows and one slice assignment per column
    cost far less than converting a dozen Python ints per ASK.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._cols = Columns(capacity)
        self._alive = np.zeros(capacity, np.bool_)
        self._pending: list[bytes] = []
        self._authors: list[int] = []
        self._cps: list[int] = []
        self._written = 0
        self.rows: dict[bytes, int] = {}
        self.n = 0
        self.any_hi = False  # whether any row's price reaches 2**64

    def append(self, order_id: bytes, row: bytes, author: int, cp: int, hi: int) -> None:
        if hi:
            self.any_hi = True
        self._pending.append(row)
        self._authors.append(author)
        self._cps.append(cp)
        self.rows[order_id] = self.n
        self.n += 1

    @property
    def cols(self) -> Columns:
        if self._pending:
            self._sync()
        return self._cols

    @property
    def alive(self) -> Mask:
        if self._pending:
            self._sync()
        return self._alive

    def _sync(self) -> None:
        a = self._written
        b = a + len(self._pending)
        c = self._cols
        rows = np.frombuffer(b"".join(self._pending), _ROW_DTYPE)
        for name in ("price_hi", "price_lo", "seq", "valid_until", "duration", "min_rating"):
            getattr(c, name)[a:b] = rows[name]
        c.net[a:b] = rows["net"]
        c.flags[a:b] = rows["flags"]
        c.ids[a:b] = rows["ids"]
        c.bench[:, a:b] = rows["bench"].T
        c.author[a:b] = self._authors
        c.cp[a:b] = self._cps
        self._alive[a:b] = True
        self._pending, self._authors, self._cps = [], [], []
        self._written = b

    def live_rows(self) -> Rows:
        return np.flatnonzero(self.alive[: self.n])

    def take_live(self) -> Columns:
        return self.cols.take(self.live_rows())

    def clear(self) -> None:
        self._pending, self._authors, self._cps = [], [], []
        self._alive[: self._written] = False
        self._written = 0
        self.rows.clear()
        self.n = 0
        self.any_hi = False


class AskIndex:
    """ASKs indexed for matching one BID at a time; see the module docstring."""

    def __init__(self, params: IndexParams | None = None) -> None:
        self.params = params or IndexParams()
        self.params.validate()
        self._buf = _Buffer(self.params.buffer_rows)
        self._segments: list[Segment] = []  # oldest (lowest seqs) first
        self._seq = 0
        self._live = 0
        # interned addresses: authors and counterparties of live ASKs; 0 is "anyone"
        self._addr_idx: dict[bytes, int] = {}
        self._addrs: list[bytes | None] = [ZERO_ADDRESS]
        self._refs: list[int] = [0]  # live rows naming each interned address
        self._free: list[int] = []
        self._blacklists: dict[int, frozenset[bytes]] = {}  # by seq
        # ids cancelled here or before they arrived, so a late or repeated copy stays out
        self._cancelled: OrderedDict[bytes, None] = OrderedDict()
        self._now = 0  # the last `now` given to expire: older windows are refused
        self._seen = IdFilter()  # every id in the segments and the buffer, and some gone

    # -- what gossip feeds ---------------------------------------------------------

    def add(self, order_id: bytes, order: OrderView) -> bool:
        """Index an ASK; False when it is here already, was cancelled, or has expired.

        `order` is a validated gossip.orders.Order (or a projection with its fields).
        """
        side = getattr(order, "side", Side.ASK)
        if side != Side.ASK or len(order_id) != 32:
            raise CallerError(
                f"the index holds ASKs; got side {side!r}"
                if side != Side.ASK
                else f"order_id must be 32 bytes, got {len(order_id)}"
            )
        price = order.price_per_hour
        valid_until = order.valid_until
        seq = self._seq + 1
        blacklist = order.blacklist
        try:
            row = _ROW.pack(
                price >> 64,
                price & _U64,
                seq,
                min(valid_until, _U64),
                *order.benchmarks,
                order.duration,
                order.min_rating,
                order.network,
                (FLAG_BLACKLIST if blacklist else 0)
                | (FLAG_COUNTERPARTY if order.counterparty != ZERO_ADDRESS else 0)
                | (FLAG_MIN_RATING if order.min_rating else 0),
                order_id,
            )
        except (struct.error, TypeError):
            raise RemoteOrderError(_unfit(order_id, order)) from None
        if order_id in self._cancelled or valid_until < self._now:
            return False
        buf = self._buf
        if order_id in buf.rows or (self._seen.may_hold(order_id) and self._in_segments(order_id)):
            return False
        self._seq = seq
        if blacklist:
            self._blacklists[seq] = frozenset(blacklist)
        cp = order.counterparty
        buf.append(
            order_id,
            row,
            self._intern(order.author),
            self._intern(cp) if cp != ZERO_ADDRESS else 0,
            price >> 64,
        )
        self._live += 1
        if self._seen.add(order_id):
            self._seen.rebuild([s.cols.ids for s in self._segments] + [buf.cols.ids[: buf.n]])
        if buf.n == buf.capacity:
            self._flush()
        return True

    def cancel(self, order_id: bytes, author: bytes | None = None) -> bool:
        """Tombstone an ASK; False if it is not here. Either way a later add of it is refused.

        `author`, when given, is the cancellation's signer: it must be the ASK's author.
        """
        where = self._locate(order_id)
        if where is not None:
            seg, row = where
            cols = self._buf.cols if seg is None else seg.cols
            if author is not None and self._addrs[int(cols.author[row])] != author:
                raise RemoteOrderError(
                    f"cancel of {order_id.hex()} signed by 0x{author.hex()}, not by its author"
                )
        cap = self.params.early_cancels
        if cap:
            if order_id in self._cancelled:
                self._cancelled.move_to_end(order_id)
            else:
                self._cancelled[order_id] = None
                if len(self._cancelled) > cap:
                    self._cancelled.popitem(last=False)
        if where is None:
            return False
        if seg is None:
            self._buf.alive[row] = False
            del self._buf.rows[order_id]
        else:
            seg.kill(row)
        self._forget_one(cols, row)
        if seg is not None and seg.dead >= self.params.compact_ratio * seg.n:
            self._maintain()
        return True

    def expire(self, now: int) -> int:
        """Tombstone every ASK whose window ended before `now`; how many went."""
        self._now = max(self._now, now)
        gone = 0
        buf = self._buf
        n = buf.n
        old = np.flatnonzero(buf.alive[:n] & (buf.cols.valid_until[:n] < np.uint64(now)))
        if len(old):
            buf.alive[old] = False
            for row in old:
                del buf.rows[buf.cols.ids[row].tobytes()]
            self._forget(buf.cols, old)
            gone += len(old)
        for seg in self._segments:
            expired = seg.cols.valid_until < np.uint64(now)
            if not expired.any():
                continue
            rows = np.flatnonzero(expired & self._alive_mask(seg))
            if not len(rows):
                continue
            for row in rows:
                seg.kill(int(row))
            self._forget(seg.cols, rows)
            gone += len(rows)
        if gone:
            self._maintain()
        return gone

    def __len__(self) -> int:
        return self._live

    def __contains__(self, order_id: bytes) -> bool:
        return self._locate(order_id) is not None

    # -- matching ----------------------------------------------------------------------

    def match(self, bid: OrderView, rating: RatingLookup = no_ratings) -> Match | None:
        """The ASK that wins `bid` under SONM's rule, or None."""
        q = self.prepare(bid, rating)
        if q.cp < 0:
            return None
        best: tuple[int, int, int] | None = None  # (price, seq, row)
        best_where: Segment | None = None
        hi, lo = q.hi, q.lo
        for seg in sorted(self._segments, key=lambda s: -s.live):
            row = _segment_best(seg, q, hi, lo, self)
            if row < 0:
                continue
            cand = _key(seg.cols, row)
            if best is None or cand < best:
                best, best_where = cand, seg
                hi, lo = cand[0] >> 64, cand[0] & _U64
        row = self._buffer_best(q, hi, lo)
        if row >= 0:
            cand = _key(self._buf.cols, row)
            if best is None or cand < best:
                best, best_where = cand, None
        if best is None:
            return None
        cols = self._buf.cols if best_where is None else best_where.cols
        r = best[2]
        return Match(
            order_id=cols.ids[r].tobytes(),
            author=self._address(int(cols.author[r])),
            price_per_hour=best[0],
            seq=best[1],
        )

    def prepare(self, bid: OrderView, rating: RatingLookup) -> Query:
        """The BID in the index's terms (interned addresses, clamped price)."""
        side = getattr(bid, "side", Side.BID)
        if side != Side.BID:
            raise CallerError(f"only a BID is matched against the ASK index; got side {side!r}")
        if len(bid.benchmarks) != N_BENCH:
            raise CallerError(f"{N_BENCH} benchmarks expected, got {len(bid.benchmarks)}")
        price = min(bid.price_per_hour, PRICE_LIMIT - 1)
        needs = [(d, v) for d, v in enumerate(bid.benchmarks) if v]
        dims = np.array([d for d, _ in needs], np.intp)
        req = np.array([v for _, v in needs], np.uint64)
        dim_reqs = list(needs)
        if bid.duration:
            dim_reqs.append((DURATION_DIM, int(bid.duration)))
        cp = 0
        if bid.counterparty != ZERO_ADDRESS:
            cp = self._addr_idx.get(bid.counterparty, -1)
        black = [self._addr_idx[a] for a in bid.blacklist if a in self._addr_idx]
        return Query(
            hi=price >> 64,
            lo=price & _U64,
            duration=int(bid.duration),
            dims=dims,
            req=req,
            dim_reqs=dim_reqs,
            need=dict(dim_reqs),
            net=int(bid.network),
            cp=cp,
            author=bid.author,
            author_idx=self._addr_idx.get(bid.author, 0),
            black=np.asarray(black, dtype=np.uint32),
            min_rating=int(bid.min_rating),
            rating=rating,
        )

    def _buffer_best(self, q: Query, hi: int, lo: int) -> int:
        """The buffer is small and unsorted: every check on whole column slices, no gather."""
        buf = self._buf
        n = buf.n
        if not n:
            return -1
        cols = buf.cols
        pl = cols.price_lo[:n]
        if buf.any_hi:
            ph = cols.price_hi[:n]
            m = (ph < np.uint64(hi)) | ((ph == np.uint64(hi)) & (pl <= np.uint64(lo)))
            m &= buf.alive[:n]
        elif hi:
            m = buf.alive[:n].copy()
        else:
            m = pl <= np.uint64(lo)
            m &= buf.alive[:n]
        if q.duration:
            m &= cols.duration[:n] >= q.duration
        if len(q.dims) == 1:
            m &= cols.bench[q.dims[0], :n] >= q.req[0]
        elif len(q.dims):
            m &= (cols.bench[q.dims, :n] >= q.req[:, None]).all(axis=0)
        if q.net:
            m &= (cols.net[:n] & q.net) == q.net
        rows = np.flatnonzero(m)
        if not len(rows):
            return -1
        rows = self.check_rows(cols, rows, q, [], 0)
        if len(rows) > 1:
            rows = rows[np.lexsort((cols.seq[rows], cols.price_lo[rows], cols.price_hi[rows]))]
        return self.first_passing(cols, rows, q)

    # -- the exact checks, shared by match and explain ---------------------------------

    def check_rows(
        self,
        cols: Columns,
        rows: Rows,
        q: Query,
        left: list[tuple[int, int]],
        net: int,
    ) -> Rows:
        """`rows` less those that fail a constraint numpy can check on them at once.

        `left`: the (dimension, minimum) pairs, duration included, and `net`: the
        network bits that the bitmaps did not settle exactly; the rest hold already.
        The ASK's own terms are left to `first_passing`.
        """
        m: Mask | None = None
        for dim, needed in left:
            col = cols.duration if dim == DURATION_DIM else cols.bench[dim]
            ok = col[rows] >= needed
            m = ok if m is None else m & ok
        if net:
            ok = (cols.net[rows] & net) == net
            m = ok if m is None else m & ok
        if q.cp or len(q.black):
            author = cols.author[rows]
            ok = author == q.cp if q.cp else ~np.isin(author, q.black)
            if q.cp and len(q.black):
                ok &= ~np.isin(author, q.black)
            m = ok if m is None else m & ok
        if m is not None:
            rows = rows[m]
        return rows

    def first_passing(self, cols: Columns, rows: Rows, q: Query) -> int:
        """The first of `rows` that passes what `check_rows` left, one row at a time.

        Left: the ASK's own terms (counterparty, blacklist, minimum rating: a few per
        cent of ASKs set one, and their flags say which) and the ASK author's rating.
        A row at a time, so a BID that the first rows pass reads nothing of the others.
        """
        flags = cols.flags[rows].tolist()
        authors = cols.author[rows].tolist() if q.min_rating else flags
        for k, row in enumerate(rows.tolist()):
            f = flags[k]
            if f:
                if f & FLAG_COUNTERPARTY and int(cols.cp[row]) != q.author_idx:
                    continue
                if f & FLAG_MIN_RATING and int(cols.min_rating[row]) > q.author_rating():
                    continue
                if f & FLAG_BLACKLIST and q.author in self._blacklists.get(int(cols.seq[row]), ()):
                    continue
            if q.min_rating:
                idx = authors[k]
                if q.rating_of(idx, self._address(idx)) < q.min_rating:
                    continue
            return int(row)
        return -1

    # -- inside --------------------------------------------------------------------------

    def parts(self) -> Iterator[tuple[Columns, Rows]]:
        """Every part of the book with its live rows (for explain and audits)."""
        for seg in self._segments:
            yield seg.cols, seg.live_rows()
        yield self._buf.cols, self._buf.live_rows()

    def address(self, idx: int) -> bytes:
        return self._address(idx)

    def blacklist_of(self, seq: int) -> frozenset[bytes]:
        return self._blacklists.get(seq, frozenset())

    def nbytes(self) -> int:
        """Bytes the index holds: arrays, plus an estimate for its Python tables."""
        arrays = sum(s.nbytes() for s in self._segments) + self._buf._cols.nbytes()
        arrays += self._buf.alive.nbytes + 8 * len(self._refs) + self._seen.nbytes()
        tables = 150 * (len(self._addr_idx) + len(self._buf.rows) + len(self._cancelled))
        tables += sum(120 + 60 * len(b) for b in self._blacklists.values())
        return arrays + tables

    def interned(self) -> int:
        """Addresses held for live ASKs (authors and counterparties); freed with the ASKs."""
        return len(self._addr_idx)

    def remembered_cancels(self) -> int:
        return len(self._cancelled)

    def segment_sizes(self) -> list[int]:
        return [s.n for s in self._segments]

    def _address(self, idx: int) -> bytes:
        addr = self._addrs[idx]
        if addr is None:  # pragma: no cover - a live row never points at a freed slot
            raise AssertionError(f"address slot {idx} is free")
        return addr

    def _alive_mask(self, seg: Segment) -> Mask:
        return np.unpackbits(seg.alive.view(np.uint8), bitorder="little")[: seg.n].view(np.bool_)

    def _in_segments(self, order_id: bytes) -> bool:
        """Whether a segment holds `order_id`, alive or as a tombstone not yet compacted."""
        return any(seg.find(order_id) >= 0 for seg in self._segments)

    def _locate(self, order_id: bytes) -> tuple[Segment | None, int] | None:
        row = self._buf.rows.get(order_id)
        if row is not None:
            return None, row
        for seg in self._segments:
            row = seg.find(order_id)
            if row >= 0:
                return (seg, row) if seg.is_alive(row) else None
        return None

    def _intern(self, address: bytes) -> int:
        idx = self._addr_idx.get(address)
        if idx is None:
            if self._free:
                idx = self._free.pop()
                self._addrs[idx] = address
            else:
                idx = len(self._addrs)
                self._addrs.append(address)
                self._refs.append(0)
            self._addr_idx[address] = idx
        self._refs[idx] += 1
        return idx

    def _forget_one(self, cols: Columns, row: int) -> None:
        """A cancel: what `_forget` does, for one row, without numpy's per-call cost."""
        self._live -= 1
        self._unref(int(cols.author[row]), 1)
        cp = int(cols.cp[row])
        if cp:
            self._unref(cp, 1)
        if cols.flags[row] & FLAG_BLACKLIST:
            self._blacklists.pop(int(cols.seq[row]), None)

    def _forget(self, cols: Columns, rows: Rows) -> None:
        """Release what dead rows held: address references and blacklists."""
        self._live -= len(rows)
        refs = np.concatenate([cols.author[rows], cols.cp[rows]])
        idx, counts = np.unique(refs[refs > 0], return_counts=True)
        for i, c in zip(idx.tolist(), counts.tolist(), strict=True):
            self._unref(i, c)
        flagged = rows[(cols.flags[rows] & FLAG_BLACKLIST) != 0]
        for seq in cols.seq[flagged].tolist():
            self._blacklists.pop(int(seq), None)

    def _unref(self, idx: int, count: int) -> None:
        left = self._refs[idx] - count
        self._refs[idx] = left
        if left == 0:
            addr = self._addrs[idx]
            if addr is not None:
                del self._addr_idx[addr]
            self._addrs[idx] = None
            self._free.append(idx)

    def _flush(self) -> None:
        """Sort the buffer into a new segment, then merge and compact as the policy says."""
        cols = self._buf.take_live()
        self._buf.clear()
        if cols.n:
            self._segments.append(Segment(cols.take(cols.price_order()), self.params.levels))
        self._maintain()

    def _maintain(self) -> None:
        """Compact tombstone-heavy segments; merge a segment into an older one of similar size."""
        p = self.params
        segs: list[Segment] = []
        for seg in self._segments:
            if seg.dead and seg.dead >= p.compact_ratio * seg.n:
                seg = self._rebuild([seg]) if seg.live else None  # type: ignore[assignment]
            if seg is not None:
                segs.append(seg)
        while len(segs) >= 2 and segs[-2].live < p.growth * segs[-1].live:
            merged = self._rebuild([segs[-2], segs[-1]])
            segs[-2:] = [merged]
        self._segments = segs

    def _rebuild(self, segs: list[Segment]) -> Segment:
        """One segment of the live rows of `segs` (consecutive, oldest first).

        Each input is already in price order and has its rows in id order, so
        both orders of the result come from merging sorted runs (a stable sort
        finds the runs), not from sorting a million rows afresh.
        """
        parts, by_key, sorted_keys, offset = [], [], [], 0
        for s in segs:
            if not s.dead:  # nothing to leave out: the segment's columns and id order as they are
                parts.append(s.cols)
                by_key.append(s.key_rows.astype(np.intp) + offset)
                sorted_keys.append(s.key_sorted)
                offset += s.n
                continue
            live = s.live_rows()
            parts.append(s.cols.take(live))
            where = np.full(s.n, -1, np.intp)  # old row -> position among the live rows
            where[live] = np.arange(len(live))
            k = where[s.key_rows]
            by_key.append(k[k >= 0] + offset)
            sorted_keys.append(s.key_sorted[k >= 0])
            offset += len(live)
        cols = Columns.concat(parts) if len(parts) > 1 else parts[0]
        key_order = np.concatenate(by_key)
        keys = np.concatenate(sorted_keys)
        if len(segs) > 1:  # each run is in key order already: a stable sort merges them
            by = np.argsort(keys, kind="stable")
            key_order, keys = key_order[by], keys[by]
        if len(segs) > 1:
            perm = cols.price_order()
            cols = cols.take(perm)
            new_row = np.empty(len(perm), np.intp)
            new_row[perm] = np.arange(len(perm))
            key_order = new_row[key_order]
        return Segment(cols, self.params.levels, key_order, keys)


def _unfit(order_id: bytes, order: OrderView) -> str:
    """Which field of an ASK the columns cannot hold (gossip's validation allows more)."""
    price, bench = order.price_per_hour, order.benchmarks
    fields = (price, order.duration, order.min_rating, order.network, order.valid_until)
    if not all(isinstance(v, int) for v in (*fields, *bench)):
        why = "price_per_hour, duration, benchmarks, min_rating, network, valid_until: integers"
    elif not 0 <= price < PRICE_LIMIT:
        why = f"price_per_hour must be in [0, 2**128), got {price}"
    elif len(bench) != N_BENCH:
        why = f"{N_BENCH} benchmarks expected, got {len(bench)}"
    elif not 0 <= order.duration <= _U32_MAX:
        why = f"duration must be in [0, 2**32) s, got {order.duration}"
    elif min(bench) < 0 or max(bench) > _U64:
        why = f"benchmarks must be in [0, 2**64), got {bench}"
    elif not 0 <= order.min_rating <= 0xFFFF:
        why = f"min_rating must be in [0, 65535], got {order.min_rating}"
    elif order.valid_until < 0:
        why = f"valid_until must be >= 0, got {order.valid_until}"
    else:
        why = f"network must be in [0, 255], got {order.network}"
    return f"ASK {order_id.hex()}: {why}"


def _key(cols: Columns, row: int) -> tuple[int, int, int]:
    return ((int(cols.price_hi[row]) << 64) | int(cols.price_lo[row]), int(cols.seq[row]), row)


def _segment_best(seg: Segment, q: Query, hi: int, lo: int, index: AskIndex) -> int:
    """The first row of `seg` (in price, seq order) that passes every constraint, or -1."""
    if seg.live == 0:
        return -1
    end = seg.price_end(hi, lo)
    if end == 0:
        return -1
    n = seg.n
    # (rows set, order, bitmap, whether its threshold is the BID's minimum itself)
    candidates: list[tuple[int, int, Words, bool]] = []
    left: list[tuple[int, int]] = []  # (dimension, minimum) to check row by row
    for dim, needed in q.dim_reqs:
        if needed > seg.maxv[dim]:
            return -1
        level = seg.level(dim, needed)
        if level < 0:
            left.append((dim, needed))
            continue
        exact = seg.thresholds[dim][level] == needed
        count = seg.counts[dim][level]
        if count < n:
            candidates.append((count, dim, seg.bitmaps[dim, level], exact))
        elif not exact:  # every row reaches the threshold, which is below the minimum
            left.append((dim, needed))
    for i, bit in enumerate(NET_BITS):
        if q.net & bit and seg.net_counts[i] < n:
            candidates.append((seg.net_counts[i], N_DIMS + i, seg.net_bitmaps[i], True))
    # An exact bitmap (a threshold at the BID's minimum: the few values of cores, GPUs,
    # memory sizes, durations, network flags) settles its constraint for every row it
    # is ANDed over, so its exact check is skipped; an inexact one is a superset, worth
    # ANDing when sparse (it removes rows more cheaply than checking them), and its
    # constraint is checked on the survivors. A hard BID's AND leaves little more than
    # the rows that match. Which bitmaps are ANDed decides speed, never the answer.
    candidates.sort(key=lambda c: c[:2])
    maps: list[Words] = []
    left_net = q.net & ~NET_MASK  # flags no bitmap covers (none in NetworkType today)
    density = seg.live / n  # expected share of a range's rows that survive the AND
    for count, dim, bitmap, exact in candidates:
        if len(maps) < MAX_BITMAPS and (exact or not maps or count <= DENSE_BITMAP * n):
            maps.append(bitmap)
            density *= count / n
            if exact:
                continue
        if dim >= N_DIMS:
            left_net |= NET_BITS[dim - N_DIMS]
        else:
            left.append((dim, q.need[dim]))
    wend = (end + 63) >> 6
    w0 = 0
    # the first range should hold a few candidates (taking the bitmaps as independent):
    # an easy BID reads a few hundred words, a hard one ANDs its whole prefix in one go
    # rather than in a series of ranges, each with its own calls
    span = FIRST_WORDS
    if density * 64 * span < FIRST_CANDIDATES:
        span = wend if density <= 0 else max(span, int(FIRST_CANDIDATES / (64 * density)))
    full, rest = maps[:FULL_PASS_BITMAPS], maps[FULL_PASS_BITMAPS:]
    while w0 < wend:
        w1 = min(wend, w0 + span)
        # the sparsest bitmaps are ANDed over the whole range (without the alive bits
        # when the segment has no tombstones: they are all ones there) ...
        if seg.dead or not full:
            words = seg.alive[w0:w1].copy()
            for bm in full:
                np.bitwise_and(words, bm[w0:w1], out=words)
        else:
            words = full[0][w0:w1].copy()
            for bm in full[1:]:
                np.bitwise_and(words, bm[w0:w1], out=words)
        if w1 == wend and end & 63:
            words[-1] &= np.uint64((1 << (end & 63)) - 1)
        nz = np.flatnonzero(words)
        vals = words[nz]
        nz += w0
        if rest and len(nz):
            # ... and the others only at the few words that are still non-zero
            for bm in rest:
                vals &= bm[nz]
            keep = np.flatnonzero(vals)
            nz, vals = nz[keep], vals[keep]
        # candidates in row order, a few words at a time: a BID that many ASKs pass
        # stops in the first words, and only the words it reads are unpacked
        start, chunk = 0, FIRST_CANDIDATE_WORDS
        while start < len(nz):
            part = word_rows(vals[start : start + chunk], nz[start : start + chunk])
            part = index.check_rows(seg.cols, part, q, left, left_net)
            if len(part):
                row = index.first_passing(seg.cols, part, q)
                if row >= 0:
                    return row
            start += chunk
            chunk *= 4
        w0 = w1
        span *= 8
    return -1


__all__ = ["AskIndex", "IndexParams", "Match", "Query"]
