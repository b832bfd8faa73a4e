"""The order book at its caps: what one insert and one cancel cost when the book is full.

The book is filled to `max_orders` foreign orders (many signers, a few large) and
`max_cancels` cancels of orders not seen, then timed inserting more orders (each
one over the cap evicts) and more cancels. The baseline is the same inserts into an
empty book in the same run: each ratio is full / empty. Also printed: the database
size. The signatures are not checked by the book, so the orders carry a dummy one.

Usage: python benchmarks/book_caps.py [--orders 200000] [--cancels 50000] [--samples 2000]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

from gossip import codec
from gossip.eip712 import SigningDomain
from gossip.orders import Order, OrderCancel, Side
from p2pnode.market.book import BookLimits, OrderBook
from p2pnode.storage import Storage

DOMAIN = SigningDomain(chain_id=31337)
T0 = 1_700_000_000
SIG = b"\x01" * 64 + b"\x1b"


def _order(author: int, nonce: int) -> tuple[Order, bytes, bytes]:
    o = Order.create(
        author=author.to_bytes(20, "big"),
        side=Side.ASK,
        price_per_hour=10**16 + nonce,
        duration=3600,
        nonce=nonce,
        valid_from=T0,
        valid_until=T0 + 86_400 + nonce % 1000,
        cpu_cores=1,
    )
    o = dataclasses.replace(o, signature=SIG)
    return o, o.order_id(DOMAIN), codec.encode(o)


def _cancel(author: int, nonce: int) -> tuple[OrderCancel, bytes]:
    c = OrderCancel(
        author=author.to_bytes(20, "big"),
        order_id=(nonce + 1).to_bytes(32, "big"),
        nonce=nonce,
        valid_from=T0,
        valid_until=T0 + 86_400,
    )
    c = dataclasses.replace(c, signature=SIG)
    return c, codec.encode(c)


def _author(i: int) -> int:
    """Signers of different sizes: every 10th order from large ones (1000 orders each,
    the per-signer cap), the rest from small ones (7 each)."""
    return 1 + i // 10_000 if i % 10 == 0 else 10**5 + i // 7


def fill(book: OrderBook, orders: int, cancels: int) -> None:
    for i in range(orders):
        o, oid, data = _order(_author(i), i)
        book.add(o, oid, data, T0, own=False, published=True)
    for i in range(cancels):
        c, data = _cancel(5000 + i // 40, 10**8 + i)
        book.apply_cancel(c, data, T0, own=False, published=True)


def time_ops(book: OrderBook, start: int, samples: int) -> tuple[list[float], list[float]]:
    inserts, cancels = [], []
    for i in range(start, start + samples):
        o, oid, data = _order(10**6 + i, i)
        t0 = time.perf_counter()
        book.add(o, oid, data, T0, own=False, published=True)
        inserts.append((time.perf_counter() - t0) * 1e3)
        c, cdata = _cancel(2 * 10**6 + i, 10**9 + i)
        t0 = time.perf_counter()
        book.apply_cancel(c, cdata, T0, own=False, published=True)
        cancels.append((time.perf_counter() - t0) * 1e3)
    return inserts, cancels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--orders", type=int, default=200_000)
    ap.add_argument("--cancels", type=int, default=50_000)
    ap.add_argument("--samples", type=int, default=2000)
    args = ap.parse_args()
    limits = BookLimits(max_orders=args.orders, max_cancels=args.cancels)
    with tempfile.TemporaryDirectory() as d:
        empty = OrderBook(Storage.open_in(Path(d) / "empty"), limits=limits)
        e_ins, e_can = time_ops(empty, 0, args.samples)
        full_storage = Storage.open_in(Path(d) / "full")
        full = OrderBook(full_storage, limits=limits)
        t0 = time.perf_counter()
        fill(full, args.orders, args.cancels)
        fill_s = time.perf_counter() - t0
        f_ins, f_can = time_ops(full, args.orders, args.samples)
        size = sum(p.stat().st_size for p in (Path(d) / "full").iterdir())
    print(
        f"filled {args.orders} orders + {args.cancels} cancels in {fill_s:.1f} s; "
        f"database {size / 2**20:.1f} MiB; book now {full.count()} orders, "
        f"{full.cancel_count()} cancels; evicted {full.counters.evicted}"
    )
    print(f"{'':22}{'empty p50/p99 ms':>20}{'full p50/p99 ms':>20}{'ratio p99 (full/empty)':>26}")
    for name, e, f in (("order insert", e_ins, f_ins), ("cancel (unknown id)", e_can, f_can)):
        ep50, ep99 = statistics.median(e), sorted(e)[int(0.99 * len(e))]
        fp50, fp99 = statistics.median(f), sorted(f)[int(0.99 * len(f))]
        print(f"{name:22}{ep50:9.3f} /{ep99:8.3f}{fp50:11.3f} /{fp99:8.3f}{fp99 / ep99:26.2f}")


if __name__ == "__main__":
    main()
