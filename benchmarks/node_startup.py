"""Start-to-ready time of one daemon, and memory per node, each against a bare
py-libp2p host measured in the same run.

1. Start-to-ready: wall time from spawning `sonm-p2p run` until its ready.json
   exists (host listening, discovery, services and API up), against spawning a
   Python process that builds a bare py-libp2p host, listens and writes a file.
2. RSS per node: one process starts N daemons (in-process, each with its own data
   dir, API and services), another starts N bare hosts that only listen; the RSS
   growth after the imports, divided by N.

Results are printed as ratios (daemon / bare host), so they mean the same on a
fast or slow machine. Usage: python benchmarks/node_startup.py [--nodes 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BARE_HOST = """
import sys, trio, multiaddr
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from p2pnode.host import muxer_options, security_options

async def main():
    kp = create_new_key_pair()
    host = new_host(key_pair=kp, sec_opt=security_options(kp), muxer_opt=muxer_options())
    async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        open(sys.argv[1], "w").write("ready")
        await trio.sleep(0.2)

trio.run(main)
"""


def _wait_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> float:
    t0 = time.perf_counter()
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before ready")
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError("not ready in time")
        time.sleep(0.005)
    return time.perf_counter()


def time_daemon(base: Path) -> float:
    from p2pnode.cli.demo import write_config

    data = base / "d"
    cfg = base / "d.toml"
    write_config(cfg, data, "consumer", [])
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "p2pnode.cli.main", "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        t1 = _wait_file(data / "ready.json", proc)
    finally:
        proc.terminate()
        proc.wait(10)
    return t1 - t0


def time_bare(base: Path) -> float:
    flag = base / "bare.ready"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", BARE_HOST, str(flag)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        t1 = _wait_file(flag, proc)
    finally:
        proc.wait(10)
    return t1 - t0


# -- memory: run inside a child process so each side starts from a clean heap ---


def _rss() -> int:
    import gc

    import psutil

    gc.collect()
    return int(psutil.Process().memory_info().rss)


def child_memory(kind: str, n: int) -> None:
    import multiaddr
    import trio
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair

    from p2pnode.config import build_config
    from p2pnode.daemon import Daemon
    from p2pnode.host import muxer_options, security_options

    base = Path(tempfile.mkdtemp(prefix="sonm-bench-"))

    async def main() -> dict[str, int]:
        # warm-up: one node of the kind, so import-time and first-use costs are not
        # charged to the N measured below
        before = 0
        async with trio.open_nursery() as nursery:
            stops: list[Daemon] = []
            for i in range(n + 1):
                if i == 1:
                    await trio.sleep(0.5)
                    before = _rss()
                if kind == "daemon":
                    cfg = build_config(
                        [
                            {
                                "node.data_dir": str(base / f"n{i}"),
                                "network.listen_port": 0,
                                "api.port": 0,
                            }
                        ]
                    )
                    d = Daemon(cfg)
                    await nursery.start(d.run)
                    stops.append(d)
                else:
                    kp = create_new_key_pair()
                    host = new_host(
                        key_pair=kp, sec_opt=security_options(kp), muxer_opt=muxer_options()
                    )
                    await nursery.start(_bare, host, multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0"))
            await trio.sleep(1.0)
            after = _rss()
            for d in stops:
                d.request_stop()
            nursery.cancel_scope.cancel()
        return {"before": before, "after": after}

    async def _bare(host: object, addr: object, *, task_status: object) -> None:
        async with host.run([addr]):  # type: ignore[attr-defined]
            task_status.started()  # type: ignore[attr-defined]
            await trio.sleep_forever()

    import logging

    logging.getLogger("libp2p").setLevel(logging.CRITICAL)
    print(json.dumps(trio.run(main)))


def measure_memory(kind: str, n: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--nodes", str(n)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return (data["after"] - data["before"]) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", choices=["daemon", "bare"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_memory(args.child, args.nodes)
        return
    sys.path.insert(0, str(ROOT))
    os.environ.pop("SONM_API_HOST", None)
    with tempfile.TemporaryDirectory() as tmp:
        daemon_times, bare_times = [], []
        for i in range(args.runs):
            run_dir = Path(tmp) / f"run{i}"
            run_dir.mkdir()
            bare_times.append(time_bare(run_dir))
            daemon_times.append(time_daemon(run_dir))
    d_ready, b_ready = statistics.median(daemon_times), statistics.median(bare_times)
    print(f"start-to-ready (median of {args.runs}, process spawn included):")
    print(f"  bare py-libp2p host: {b_ready:6.2f} s")
    print(f"  sonm-p2p daemon:     {d_ready:6.2f} s   ratio {d_ready / b_ready:.2f}x")
    bare_rss = measure_memory("bare", args.nodes)
    daemon_rss = measure_memory("daemon", args.nodes)
    print(f"RSS per node, {args.nodes} nodes in one process:")
    print(f"  bare py-libp2p host: {bare_rss / 2**20:7.2f} MiB")
    print(
        f"  sonm-p2p daemon:     {daemon_rss / 2**20:7.2f} MiB   ratio {daemon_rss / bare_rss:.2f}x"
    )


if __name__ == "__main__":
    main()
