"""One BID against a book of ASKs: the index next to a Python scan and a numpy filter.

The book has realistic spreads (docs/market.md, "Figures"): machines from 2 to 64
cores with 2-8 GiB per core, 60 % without GPUs and a few with 8, prices that follow
the resources with noise, a few ASKs naming a counterparty, a blacklist or a
minimum rating. Two BIDs: an easy one (a 4-core, 8 GiB machine for an hour: a
large share of the book matches) and a hard one (8 GPUs with 80 GiB each,
16 cores, 10 Gbit/s, in/out network, a week: almost nothing matches).

Side by side, in one process, on the same book:

- index: `AskIndex.match` (p2pnode/market/matching), the book built with `add`;
- numpy filter: the whole book in numpy columns, one boolean mask per constraint
  the BID sets, then the cheapest (earliest on a tie) of the rows that pass;
- Python scan: the book as a list of order objects, the rule checked ask by ask
  with early exits, keeping the cheapest; the way one writes it without an index.

Ratios say what they divide: "scan/index 900x" is the scan's p50 over the index's.
Inserts and cancels are timed through `add` and `cancel` (merges and compactions
included). The default run is 10^5 ASKs; `--full` adds 10^6 (about a minute, ~2 GB),
where the Python scan is sampled with fewer repetitions.

    .venv/bin/python -m benchmarks.matching [--full] [--seed 1]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gossip.messages import ZERO_ADDRESS
from gossip.orders import BENCHMARK_INDEX, BENCHMARK_NAMES, NetworkType, Side
from p2pnode.market.matching import AskIndex, Match, explain

GIB = 2**30
SNM = 10**18
NB = len(BENCHMARK_NAMES)
NOW = 1_800_000_000


@dataclass(slots=True)
class PlainOrder:
    """An order as a user's script would hold it (the fields gossip.orders.Order has)."""

    author: bytes
    side: Side
    price_per_hour: int
    duration: int
    benchmarks: tuple[int, ...]
    network: int
    counterparty: bytes
    blacklist: tuple[bytes, ...]
    min_rating: int
    valid_until: int
    seq: int = 0


def rating(address: bytes) -> int:
    """Suppliers' ratings: a fixed function of the address, spread over 0..10000."""
    return (address[0] * 40) % 10_001


def make_book(n: int, seed: int) -> tuple[list[bytes], list[PlainOrder]]:
    rng = np.random.default_rng(seed)
    cores = rng.choice([2, 4, 8, 16, 32, 64], n, p=[0.15, 0.25, 0.25, 0.18, 0.12, 0.05])
    ram = cores * rng.choice([2, 4, 8], n) * GIB
    storage = rng.choice([100, 250, 500, 1000, 2000, 4000], n) * 10**9
    gpus = rng.choice([0, 1, 2, 4, 8], n, p=[0.6, 0.2, 0.1, 0.06, 0.04])
    gpu_mem = np.where(gpus > 0, rng.choice([8, 12, 16, 24, 40, 80], n), 0) * GIB
    single = rng.normal(1500, 300, n).clip(300, 3000).astype(np.int64)
    multi = (single * cores * rng.uniform(0.8, 1.0, n)).astype(np.int64)
    down = rng.choice([100, 1000, 10_000], n, p=[0.3, 0.6, 0.1]) * 10**6
    up = np.minimum(down, rng.choice([100, 1000, 10_000], n, p=[0.5, 0.45, 0.05]) * 10**6)
    eth = gpus * (gpu_mem // GIB) * rng.integers(500_000, 1_000_000, n)
    crypto = cores * rng.integers(50, 120, n)
    bench = np.zeros((n, NB), np.int64)
    for name, col in (
        ("cpu-sysbench-multi", multi),
        ("cpu-sysbench-single", single),
        ("cpu-cores", cores),
        ("ram-size", ram),
        ("storage-size", storage),
        ("net-download", down),
        ("net-upload", up),
        ("gpu-count", gpus),
        ("gpu-mem", gpu_mem),
        ("gpu-eth-hashrate", eth),
        ("cpu-cryptonight", crypto),
    ):
        bench[:, BENCHMARK_INDEX[name]] = col
    value = cores * 0.004 + (ram / GIB) * 0.001 + gpus * (gpu_mem / GIB) * 0.004
    price = (value * rng.lognormal(0, 0.25, n) * SNM).astype(np.float64)
    durations = rng.choice([3600, 86_400, 7 * 86_400, 30 * 86_400], n, p=[0.2, 0.3, 0.3, 0.2])
    network = rng.choice([0, 1, 3], n, p=[0.05, 0.25, 0.7])
    authors = [bytes([1 + (i % 250)]) + i.to_bytes(19, "big") for i in range(max(1, n // 100))]
    who = rng.integers(0, len(authors), n)
    special = rng.random((n, 3))
    until = NOW + rng.integers(3600, 31 * 86_400, n)
    ids_blob = rng.bytes(32 * n)
    consumers = [b"\xcc" + i.to_bytes(19, "big") for i in range(100)]
    asks: list[PlainOrder] = []
    price_list = [int(p) for p in price.tolist()]
    bench_rows = [tuple(r) for r in bench.tolist()]
    for i in range(n):
        asks.append(
            PlainOrder(
                author=authors[who[i]],
                side=Side.ASK,
                price_per_hour=price_list[i],
                duration=int(durations[i]),
                benchmarks=bench_rows[i],
                network=int(network[i]),
                counterparty=consumers[i % 100] if special[i, 0] < 0.01 else ZERO_ADDRESS,
                blacklist=(consumers[(i + 1) % 100],) if special[i, 1] < 0.01 else (),
                min_rating=5000 if special[i, 2] < 0.05 else 0,
                valid_until=int(until[i]),
                seq=i + 1,
            )
        )
    ids = [ids_blob[32 * i : 32 * i + 32] for i in range(n)]
    return ids, asks


def make_bid(hard: bool, book: list[PlainOrder]) -> PlainOrder:
    bench = [0] * NB
    if hard:
        needs = {
            "gpu-count": 8,
            "gpu-mem": 80 * GIB,
            "cpu-cores": 16,
            "net-download": 10_000 * 10**6,
        }
        network, duration, price = int(NetworkType.INBOUND_OUTBOUND), 7 * 86_400, 30 * SNM
    else:
        needs = {"cpu-cores": 4, "ram-size": 8 * GIB}
        network, duration, price = int(NetworkType.OUTBOUND), 3600, SNM // 10
    for name, v in needs.items():
        bench[BENCHMARK_INDEX[name]] = v
    return PlainOrder(
        author=b"\xcc" + (7).to_bytes(19, "big"),
        side=Side.BID,
        price_per_hour=price,
        duration=duration,
        benchmarks=tuple(bench),
        network=network,
        counterparty=ZERO_ADDRESS,
        blacklist=(),
        min_rating=2000,
        valid_until=NOW + 3600,
    )


# -- baseline 1: the Python scan -------------------------------------------------------


def python_scan(bid: PlainOrder, book: list[PlainOrder]) -> PlainOrder | None:
    best: PlainOrder | None = None
    need = [(i, v) for i, v in enumerate(bid.benchmarks) if v]
    for ask in book:
        if ask.price_per_hour > bid.price_per_hour or ask.duration < bid.duration:
            continue
        if best is not None and ask.price_per_hour >= best.price_per_hour:
            continue  # the book is in arrival order: an equal price came later
        bench = ask.benchmarks
        if not all(bench[i] >= v for i, v in need):
            continue
        if bid.network & ~ask.network:
            continue
        if bid.counterparty != ZERO_ADDRESS and ask.author != bid.counterparty:
            continue
        if ask.counterparty != ZERO_ADDRESS and ask.counterparty != bid.author:
            continue
        if ask.author in bid.blacklist or bid.author in ask.blacklist:
            continue
        if bid.min_rating and rating(ask.author) < bid.min_rating:
            continue
        if ask.min_rating and rating(bid.author) < ask.min_rating:
            continue
        best = ask
    return best


# -- baseline 2: the whole book as numpy columns, filtered whole ----------------------


class NumpyBook:
    def __init__(self, book: list[PlainOrder]) -> None:
        self.price = np.array([a.price_per_hour for a in book], np.uint64)
        self.duration = np.array([a.duration for a in book], np.uint32)
        self.bench_cols = [
            np.ascontiguousarray(np.array([a.benchmarks for a in book], np.uint64)[:, d])
            for d in range(NB)
        ]
        self.network = np.array([a.network for a in book], np.uint8)
        self.authors = sorted({a.author for a in book} | {a.counterparty for a in book})
        index = {a: i for i, a in enumerate(self.authors)}
        self.author = np.array([index[a.author] for a in book], np.int32)
        self.cp = np.array(
            [index[a.counterparty] if a.counterparty != ZERO_ADDRESS else -1 for a in book],
            np.int32,
        )
        self.min_rating = np.array([a.min_rating for a in book], np.uint16)
        refusing: dict[bytes, list[int]] = {}  # a BID author -> the ASKs that blacklist it
        for i, a in enumerate(book):
            for who in a.blacklist:
                refusing.setdefault(who, []).append(i)
        self.refusing = {who: np.array(rows, np.intp) for who, rows in refusing.items()}
        self.rating = np.array([rating(a) for a in self.authors], np.int64)
        self.index = index

    def match(self, bid: PlainOrder) -> int:
        price = np.uint64(min(bid.price_per_hour, 2**64 - 1))  # the book's prices fit in 64 bits
        m = (self.price <= price) & (self.duration >= bid.duration)
        for d, v in enumerate(bid.benchmarks):
            if v:
                m &= self.bench_cols[d] >= np.uint64(v)
        if bid.network:
            m &= (self.network & bid.network) == bid.network
        me = self.index.get(bid.author, -2)
        m &= (self.cp == -1) | (self.cp == me)
        if bid.min_rating:
            m &= self.rating[self.author] >= bid.min_rating
        m &= self.min_rating <= rating(bid.author)
        refusing = self.refusing.get(bid.author)
        if refusing is not None:
            m[refusing] = False
        rows = np.flatnonzero(m)
        if not len(rows):
            return -1
        return int(
            rows[np.argmin(self.price[rows])]
        )  # argmin: the first, earliest, of the cheapest


# -- timing ------------------------------------------------------------------------------


@dataclass
class Timing:
    """p50/p99 of wall-clock and of CPU time (this process's), in seconds.

    Both: on a machine shared with other work, wall time also counts the waits
    for a core; CPU time counts only what the call itself ran.
    """

    wall50: float
    wall99: float
    cpu50: float
    cpu99: float

    def text(self) -> str:
        return (
            f"wall p50 {ms(self.wall50)} p99 {ms(self.wall99)} | "
            f"CPU p50 {ms(self.cpu50)} p99 {ms(self.cpu99)}"
        )


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def timed(fn: Callable[[], object], reps: int) -> tuple[Timing, object]:
    """`fn` run `reps` times; its timings and its last result."""
    out: object = None
    wall, cpu = [], []
    for _ in range(reps):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    t = Timing(statistics.median(wall), _pct(wall, 99), statistics.median(cpu), _pct(cpu, 99))
    return t, out


def ms(s: float) -> str:
    return f"{s * 1000:8.3f} ms"


def run(n: int, seed: int, scan_reps: int) -> dict[str, float]:
    print(f"\n== {n:,} ASKs (seed {seed})")
    t0 = time.perf_counter()
    ids, book = make_book(n, seed)
    print(f"book generated in {time.perf_counter() - t0:.1f} s")
    gc.collect()
    gc.freeze()  # the book's objects are long-lived; keep the collector off them
    index = AskIndex()
    c0, t0 = time.process_time(), time.perf_counter()
    for oid, ask in zip(ids, book, strict=True):
        index.add(oid, ask)
    add_s, add_cpu = time.perf_counter() - t0, time.process_time() - c0
    per_ask = index.nbytes() / len(index)
    print(
        f"index: {n / add_s:,.0f} inserts/s wall, {n / add_cpu:,.0f}/s CPU (add, merges "
        f"included); {per_ask:.0f} bytes/ask; segments {index.segment_sizes()}"
    )
    nbook = NumpyBook(book)
    fig: dict[str, float] = {"inserts_per_s_cpu": n / add_cpu, "bytes_per_ask": per_ask}
    for label, hard in (("easy", False), ("hard", True)):
        bid = make_bid(hard, book)
        e = explain(index, bid, rating)
        ti, m = timed(lambda bid=bid: index.match(bid, rating), 300)  # type: ignore[misc]
        tn, nrow = timed(lambda bid=bid: nbook.match(bid), 30)  # type: ignore[misc]
        tp, prow = timed(lambda bid=bid: python_scan(bid, book), scan_reps)  # type: ignore[misc]
        assert isinstance(m, Match) and isinstance(nrow, int), label
        assert isinstance(prow, PlainOrder), label
        assert m.seq == nrow + 1 == prow.seq, (label, m, nrow, prow.seq)  # all three agree
        assert e.winner == m
        print(
            f"{label} BID: {e.matching:,} of {e.total:,} ASKs match "
            f"(explain: worst constraint {max(e.ruled_out, key=lambda c: e.ruled_out[c])})"
        )
        print(f"  index         {ti.text()}")
        print(
            f"  numpy filter  {tn.text()}  filter/index p50 "
            f"wall {tn.wall50 / ti.wall50:6.1f}x CPU {tn.cpu50 / ti.cpu50:6.1f}x"
        )
        print(
            f"  Python scan   {tp.text()}  scan/index p50 "
            f"wall {tp.wall50 / ti.wall50:6.1f}x CPU {tp.cpu50 / ti.cpu50:6.1f}x "
            f"({scan_reps} runs)"
        )
        fig.update(
            {
                f"{label}_index_cpu_p50_ms": ti.cpu50 * 1e3,
                f"{label}_index_cpu_p99_ms": ti.cpu99 * 1e3,
                f"{label}_scan_over_index_cpu": tp.cpu50 / ti.cpu50,
                f"{label}_filter_over_index_cpu": tn.cpu50 / ti.cpu50,
            }
        )
        t0 = time.perf_counter()
        explain(index, bid, rating)
        print(f"  explain       {ms(time.perf_counter() - t0)} (whole book)")
    rng = np.random.default_rng(seed + 1)
    victims = rng.choice(n, size=n * 3 // 10, replace=False)
    c0, t0 = time.process_time(), time.perf_counter()
    for v in victims.tolist():
        index.cancel(ids[v])
    cancel_s, cancel_cpu = time.perf_counter() - t0, time.process_time() - c0
    fig["cancels_per_s_cpu"] = len(victims) / cancel_cpu
    print(
        f"cancels: {len(victims) / cancel_s:,.0f}/s wall, {len(victims) / cancel_cpu:,.0f}/s CPU "
        f"(30 % of the book, compactions included); {len(index):,} left, "
        f"segments {index.segment_sizes()}"
    )
    gc.unfreeze()
    return fig


def main() -> None:
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="also 10^6 ASKs (about a minute)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    run(100_000, args.seed, scan_reps=10)
    if args.full:
        run(1_000_000, args.seed, scan_reps=3)


if __name__ == "__main__":
    main()
