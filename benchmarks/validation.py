"""Validated messages per second of one node, next to the machine's recovery limit.

What a node can validate bounds what it can take from the network: every unique
application message costs a decode, an EIP-712 digest and a secp256k1 signature
recovery before it is stored or forwarded. This benchmark feeds one router frames of
distinct signed orders from `--authors` peers (one author each, ~256-byte orders,
20 to a frame, as they arrive off the wire: no sockets) and times how fast verdicts
come back and the messages are delivered, two ways, in the same process:

- on the loop: the router's synchronous validator (how the daemon validated
  before the validation pool), one message at a time;
- pooled: the daemon's configuration: p2pnode/validation_pool.py with `--threads`
  worker threads (decode, digest and recovery off the loop, verdicts in order).

And the machine's recovery limit: bare libsecp256k1 recoveries (coincurve, GIL
released) per second from `--threads` threads at once, and from one thread,
measured in every round right after the rounds above: this machine's speed drifts
by tens of percent within minutes, so a limit taken once, apart from them, is
taken at another speed. Every figure is its best round. The printed ratios say
what they divide by. Also printed: the CPU cost of each
validation step per message in one thread (decode, digest, recovery), since the
steps that hold the GIL bound what threads can add; and CPU per message of the
loop thread and of the whole process in each mode, which, unlike the wall rates,
hold when other work shares the machine's cores.

And, with `--baseline-commit REV`, the figure the issue called "today": the
on-the-loop rate of the tree at REV (7d11d4d is the code the figure of 6,300 msg/s
was measured on: its validator before decode and digest were slimmed, its router
not compiled), run by this script with `--loop-only` in a subprocess over that
tree, once per round, interleaved with the others. The ratio to it is printed
beside the one to this tree's own on-the-loop rate, which stays the headline:
only that one compares the same code.

    python -m benchmarks.validation [--authors 12] [--per-author 1000] [--threads 2]
        [--baseline-commit 7d11d4d]
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import coincurve
import psutil
import trio

from benchmarks.gossip_throughput import make_orders
from gossip import codec
from gossip.eip712 import SigningDomain, recover_address
from gossip.events import Delivered, ValidationRequest
from gossip.router import PROTOCOL_V11, GossipRouter
from gossip.topics import ORDERS_TOPIC
from gossip.validators import MessageValidator, make_validator
from gossip.wire import RPC, Message, frame

DOMAIN = SigningDomain(chain_id=31337)
PER_FRAME = 20


def _orders(args: tuple[int, int]) -> list[bytes]:
    seed, count = args
    return make_orders(count, seed=seed)


def signed_orders(authors: int, per_author: int) -> list[list[bytes]]:
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        return list(ex.map(_orders, [(seed, per_author) for seed in range(1, authors + 1)]))


def frames_of(per_author: list[list[bytes]]) -> list[tuple[bytes, bytes]]:
    """(peer, frame) in arrival order: the authors' frames interleaved."""
    out: list[list[tuple[bytes, bytes]]] = []
    for i, orders in enumerate(per_author):
        peer = b"peer-%03d" % i
        out.append(
            [
                (
                    peer,
                    frame(
                        RPC(
                            publish=[Message(ORDERS_TOPIC, o) for o in orders[j : j + PER_FRAME]]
                        ).encode()
                    ),
                )
                for j in range(0, len(orders), PER_FRAME)
            ]
        )
    return [f for group in zip(*out, strict=True) for f in group]


def new_router(peers: list[bytes], validator: MessageValidator | None) -> GossipRouter:
    router = GossipRouter(local_peer=b"target", rng=random.Random(1), validator=validator)
    router.subscribe(ORDERS_TOPIC, 0.0)
    for p in peers:
        router.add_peer(p, PROTOCOL_V11, False, 0.0)
    return router


def on_loop(
    frames: list[tuple[bytes, bytes]], peers: list[bytes], expect: int
) -> tuple[float, float, float]:
    """Messages delivered per second, validated synchronously inside the router; the
    loop thread's CPU µs per message; and the whole process's (the same here: one
    thread)."""
    validator = make_validator(DOMAIN, clock=time.time)
    router = new_router(peers, validator)
    delivered = 0
    t0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
    for peer, f in frames:
        router.receive(peer, f, 0.0)
        delivered += sum(1 for ev in router.events() if isinstance(ev, Delivered))
        router.drain()
    dt, cpu = time.perf_counter() - t0, time.thread_time() - c0
    total = time.process_time() - p0
    assert delivered == expect, (delivered, expect)
    return delivered / dt, cpu / delivered * 1e6, total / delivered * 1e6


async def pooled(
    frames: list[tuple[bytes, bytes]], peers: list[bytes], expect: int, threads: int, mode: str
) -> tuple[float, float, float]:
    """Messages delivered per second through the validation pool, as the driver runs it;
    the loop thread's CPU µs per message; and the whole process's (loop and worker
    threads; in "processes" mode the children's CPU is added)."""
    from p2pnode.validation_pool import PoolParams, ValidationPool

    validator = make_validator(DOMAIN, clock=time.time)
    router = new_router(peers, None)
    delivered = 0
    done = trio.Event()

    def after() -> None:
        nonlocal delivered
        for ev in router.events():
            if isinstance(ev, Delivered):
                delivered += 1
            elif isinstance(ev, ValidationRequest):
                pool.submit(ev.msg_id, ev.topic, ev.data, ev.received_from)
        router.drain()
        if delivered == expect:
            done.set()

    def deliver(msg_id: bytes, result: object) -> None:
        router.validation_done(msg_id, result, trio.current_time())  # type: ignore[arg-type]

    pool = ValidationPool(validator, deliver, after, PoolParams(threads=threads, mode=mode))
    pool.start()
    if mode == "processes":  # started once with the daemon: not part of the timing
        with trio.fail_after(30):
            while pool.metrics.validation_worker_processes < threads:
                await trio.sleep(0.01)
    pids = pool.child_pids
    t0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
    k0 = _children_cpu(pids)
    for peer, f in frames:
        router.receive(peer, f, trio.current_time())
        after()
        await pool.wait_for_room()
        await trio.lowlevel.checkpoint()
    await done.wait()
    dt, cpu = time.perf_counter() - t0, time.thread_time() - c0
    total = time.process_time() - p0 + _children_cpu(pids) - k0
    pool.close()
    return delivered / dt, cpu / delivered * 1e6, total / delivered * 1e6


def _children_cpu(pids: list[int]) -> float:
    """CPU seconds the worker processes have used so far (user and system): read
    before and after the timed part, so their start-up is not counted."""
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue  # replaced mid-round (the pool's metrics count it): not counted
        total += t.user + t.system
    return total


def recovery_limit(pairs: list[tuple[bytes, bytes]], threads: int, seconds: float = 1.5) -> float:
    """Bare libsecp256k1 recoveries per second (wall) from `threads` threads at once."""
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def work(i: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            for dig, sig in pairs:
                coincurve.PublicKey.from_signature_and_message(
                    sig[:64] + bytes([sig[64] - 27]), dig, hasher=None
                )
            n += len(pairs)
        counts[i] = n

    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def step_costs(orders: list[bytes]) -> tuple[float, float, float]:
    """CPU µs per message of decode, digest and recovery (address included), one thread."""
    msgs = [codec.decode(o) for o in orders]
    t = time.process_time()
    for o in orders:
        codec.decode(o)
    dec = (time.process_time() - t) / len(orders) * 1e6
    t = time.process_time()
    digs = [m.digest(DOMAIN) for m in msgs]
    dig = (time.process_time() - t) / len(orders) * 1e6
    t = time.process_time()
    for m, d in zip(msgs, digs, strict=True):
        recover_address(d, m.signature)
    rec = (time.process_time() - t) / len(orders) * 1e6
    return dec, dig, rec


# The packages a tree's loop-only run imports (its benchmarks import the node too).
_TREE_PACKAGES = ("gossip", "benchmarks", "p2pnode", "contracts", "reputation", "simulations")
_ROOT = Path(__file__).resolve().parent.parent


class BaselineError(Exception):
    """The baseline tree could not be taken (the revision asked for) or its run failed
    (that tree's code); the message says which, with git's or the run's own words."""


def extract_tree(rev: str, into: Path) -> str:
    """The tree at `rev` (its Python packages) under `into`; its full commit id."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
            cwd=_ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        archive = subprocess.run(
            ["git", "archive", "--format=tar", commit, *_TREE_PACKAGES],
            cwd=_ROOT,
            check=True,
            capture_output=True,
        ).stdout
    except subprocess.CalledProcessError as exc:
        why = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr
        raise BaselineError(f"cannot take the tree at {rev!r}: {why.strip()}") from None
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):  # 3.11.4 on
            tar.extractall(into, filter="data")
        else:  # our own repository's archive
            tar.extractall(into)
    return commit


def tree_loop_rate(tree: Path, authors: int, per_author: int) -> tuple[float, float]:
    """One on-the-loop round of the tree under `tree` (msg/s, loop CPU µs per message),
    this script run over its packages: they come first on the path."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    run = subprocess.run(
        [
            sys.executable,
            __file__,
            "--loop-only",
            "--rounds",
            "1",
            "--authors",
            str(authors),
            "--per-author",
            str(per_author),
        ],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    if run.returncode:
        raise BaselineError(f"the baseline tree's run failed:\n{run.stderr[-4000:]}")
    out = run.stdout
    m = re.search(r"validated on the loop \(sync\): +([0-9.]+) msg/s, loop CPU ([0-9.]+)", out)
    if m is None:
        raise BaselineError(f"no on-the-loop figure in the baseline tree's output:\n{out}")
    return float(m.group(1)), float(m.group(2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--authors", type=int, default=12)
    ap.add_argument("--per-author", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--mode",
        choices=("both", "threads", "processes"),
        default="both",
        help="the pool's workers (p2pnode/validation_pool.py PoolParams.mode)",
    )
    ap.add_argument(
        "--loop-only",
        action="store_true",
        help="only the on-the-loop figure (runs against trees without the pool)",
    )
    ap.add_argument(
        "--baseline-commit",
        metavar="REV",
        help="also run the on-the-loop figure of the tree at REV (see the module docstring)",
    )
    a = ap.parse_args()
    if a.baseline_commit and a.loop_only:
        ap.error("--baseline-commit runs beside the pooled modes, not with --loop-only")
    logging.disable(logging.WARNING)
    tree_dir: tempfile.TemporaryDirectory[str] | None = None
    tree_commit = ""
    if a.baseline_commit:
        tree_dir = tempfile.TemporaryDirectory(prefix="validation-baseline-")
        try:
            tree_commit = extract_tree(a.baseline_commit, Path(tree_dir.name))
        except BaselineError as exc:
            tree_dir.cleanup()
            ap.error(str(exc))
    tree_rates: list[float] = []
    t = time.perf_counter()
    per_author = signed_orders(a.authors, a.per_author)
    print(f"signed {a.authors} x {a.per_author} orders in {time.perf_counter() - t:.1f} s")
    frames = frames_of(per_author)
    peers = [b"peer-%03d" % i for i in range(a.authors)]
    expect = a.authors * a.per_author
    sample = per_author[0][:500]
    msgs = [codec.decode(o) for o in sample]
    pairs = [(m.digest(DOMAIN), m.signature) for m in msgs]

    modes = ("threads", "processes") if a.mode == "both" else (a.mode,)
    loop_rates, loop_cpu, loop_all = [], [], []
    pool: dict[str, tuple[list[float], list[float], list[float]]] = {m: ([], [], []) for m in modes}
    limits_n: list[float] = []
    limits_1: list[float] = []
    for _ in range(a.rounds):  # interleaved, so a burst of load elsewhere hits all
        rate, cpu, total = on_loop(frames, peers, expect)
        loop_rates.append(rate)
        loop_cpu.append(cpu)
        loop_all.append(total)
        if a.loop_only:
            continue
        if tree_dir is not None:
            tree_rates.append(tree_loop_rate(Path(tree_dir.name), a.authors, a.per_author)[0])
        for mode in modes:
            rate, cpu, total = trio.run(pooled, frames, peers, expect, a.threads, mode)
            for series, v in zip(pool[mode], (rate, cpu, total), strict=True):
                series.append(v)
        # the limit too, each round: the machine's speed drifts within minutes
        limits_n.append(recovery_limit(pairs, a.threads))
        limits_1.append(recovery_limit(pairs, 1))
    if a.loop_only:
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
        print(
            f"validated on the loop (sync): {max(loop_rates):9.0f} msg/s, "
            f"loop CPU {min(loop_cpu):.1f} µs per message"
        )
        return
    limit_n, limit_1 = max(limits_n), max(limits_1)
    dec, dig, rec = step_costs(sample)
    loop_best = max(loop_rates)

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print(
        f"messages: {expect} distinct signed orders of {len(sample[0])} bytes, {PER_FRAME} a frame"
    )
    print(
        f"per message, one thread (CPU): decode {dec:.1f} µs, digest {dig:.1f} µs, "
        f"recovery {rec:.1f} µs"
    )
    print(f"  non-recovery / recovery: {(dec + dig) / rec:.2f}x")
    print(
        f"recovery limit, {a.threads} threads: {limit_n:9.0f} /s   (1 thread: {limit_1:.0f} /s, "
        f"{limit_n / limit_1:.2f}x)   rounds: " + ", ".join(f"{r:.0f}" for r in limits_n)
    )
    print(
        f"validated on the loop (sync):  {loop_best:9.0f} msg/s   rounds: "
        + ", ".join(f"{r:.0f}" for r in loop_rates)
    )
    if tree_rates:
        print(
            f"validated on the loop, tree {tree_commit[:7]}: {max(tree_rates):9.0f} msg/s"
            "   rounds: " + ", ".join(f"{r:.0f}" for r in tree_rates)
        )
    for mode in modes:
        rates, cpus, alls = pool[mode]
        best = max(rates)
        print(f"-- pooled, {a.threads} worker {mode}")
        print(f"validated: {best:9.0f} msg/s   rounds: " + ", ".join(f"{r:.0f}" for r in rates))
        print(f"pooled / on the loop: {best / loop_best:.2f}x (target >= 2x)")
        if tree_rates:
            print(
                f"pooled / on the loop of tree {tree_commit[:7]}: "
                f"{best / max(tree_rates):.2f}x (target >= 2x)"
            )
        print(
            f"event-loop thread CPU per message: on the loop {min(loop_cpu):.1f} µs, "
            f"pooled {min(cpus):.1f} µs ({min(loop_cpu) / min(cpus):.2f}x less)"
        )
        print(
            f"CPU per message, all threads{' and children' if mode == 'processes' else ''}: "
            f"on the loop {min(loop_all):.1f} µs, pooled {min(alls):.1f} µs "
            f"({min(alls) / min(loop_all):.2f}x the loop's)"
        )
        busy = best * alls[rates.index(best)] / 1e6
        print(f"cores busy in the best round (CPU per message x rate): {busy:.2f}")
        print(f"recovery limit / pooled: {limit_n / best:.2f}x (target <= 2.5x)")
    if tree_dir is not None:
        tree_dir.cleanup()


if __name__ == "__main__":
    main()
