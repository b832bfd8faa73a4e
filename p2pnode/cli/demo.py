"""`sonm-p2p demo`: a seed and four nodes on loopback, as real daemon processes.

Each node is told only the seed's address; the demo waits until every node holds
a connection to every other one (found through peer exchange), prints who sees
whom, and stops them all with SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import tomli_w
from rich.console import Console
from rich.table import Table

from p2pnode.api.auth import read_token
from p2pnode.errors import LocalError, UserError
from p2pnode.ready import read_ready


def register(subparsers: Any) -> None:
    demo = subparsers.add_parser("demo", help="run a seed and a few nodes on loopback")
    demo.add_argument("--nodes", type=int, default=4, help="nodes besides the seed (1..16)")
    demo.add_argument("--timeout", type=float, default=40.0, help="seconds to wait (5..300)")
    demo.add_argument("--keep", action="store_true", help="keep the temporary data dirs")
    demo.set_defaults(func=cmd_demo)


@dataclass
class NodeProcess:
    """One `sonm-p2p run` child process and its data dir."""

    name: str
    data_dir: Path
    proc: subprocess.Popen[bytes]
    log_path: Path

    def ready(self) -> dict[str, Any] | None:
        return read_ready(self.data_dir)

    def api(self, path: str) -> Any:
        info = self.ready()
        token = read_token(self.data_dir)
        if not info or not token:
            return None
        try:
            r = httpx.get(
                info["api_url"] + path, headers={"Authorization": f"Bearer {token}"}, timeout=2.0
            )
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    def post(self, path: str, body: dict[str, Any]) -> Any:
        info = self.ready()
        token = read_token(self.data_dir)
        if not info or not token:
            return None
        try:
            r = httpx.post(
                info["api_url"] + path,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=5.0,
            )
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code in (200, 201) else None

    def stop(self, timeout: float = 3.0) -> float:
        """SIGTERM and wait; returns seconds taken (kill -9 if it overruns)."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return time.monotonic() - t0


def write_config(path: Path, data_dir: Path, role: str, bootstrap: list[str], **net: Any) -> None:
    config = {
        "node": {"role": role, "data_dir": str(data_dir), "log_level": "INFO"},
        "network": {
            "listen_host": "127.0.0.1",
            "listen_port": 0,
            "bootstrap": bootstrap,
            "redial_interval": 0.5,
            "redial_max_interval": 5.0,
            "px_interval": 2.0,
            **net,
        },
        "api": {"host": "127.0.0.1", "port": 0},
    }
    path.write_bytes(tomli_w.dumps(config).encode())


DEMO_PASSWORD = "demo-only-password"


def start_node(
    name: str, base: Path, role: str, bootstrap: list[str], *, trader: bool = False, **net: Any
) -> NodeProcess:
    """Start one daemon; a `trader` gets an Ethereum account so it can sign orders."""
    data_dir = base / name
    data_dir.mkdir(parents=True, exist_ok=True)
    cfg = base / f"{name}.toml"
    write_config(cfg, data_dir, role, bootstrap, **net)
    log_path = base / f"{name}.log"
    env = dict(os.environ)
    env.pop("SONM_API_HOST", None)
    if trader:
        from p2pnode.keys import create_keystore

        create_keystore(data_dir / "keystore.json", DEMO_PASSWORD)
        env["SONM_KEY_PASSWORD"] = DEMO_PASSWORD
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "p2pnode.cli.main", "run", "--config", str(cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return NodeProcess(name, data_dir, proc, log_path)


def wait_ready(node: NodeProcess, deadline: float) -> dict[str, Any]:
    while time.monotonic() < deadline:
        info = node.ready()
        if info and info.get("pid") == node.proc.pid:
            return info
        if node.proc.poll() is not None:
            tail = node.log_path.read_text(errors="replace")[-800:]
            raise LocalError(f"{node.name} exited with {node.proc.returncode}:\n{tail}")
        time.sleep(0.1)
    raise LocalError(f"{node.name} was not ready in time")


def cmd_demo(args: argparse.Namespace) -> int:
    if not 1 <= args.nodes <= 16:
        raise UserError(f"--nodes = {args.nodes}: allowed 1..16")
    if not 5 <= args.timeout <= 300:
        raise UserError(f"--timeout = {args.timeout}: allowed 5..300")
    console = Console()
    base = Path(tempfile.mkdtemp(prefix="sonm-demo-"))
    nodes: list[NodeProcess] = []
    total = args.nodes + 1
    t0 = time.monotonic()
    deadline = t0 + args.timeout
    try:
        seed = start_node("seed", base, "seed", [], min_connections=total, max_connections=64)
        nodes.append(seed)
        seed_info = wait_ready(seed, deadline)
        seed_addr = seed_info["addrs"][0]
        console.print(f"seed up: {seed_addr}", soft_wrap=True)
        roles = ["supplier", "consumer"]
        for i in range(args.nodes):
            nodes.append(
                start_node(
                    f"node{i + 1}",
                    base,
                    roles[i % 2],
                    [seed_addr],
                    trader=i < 2,  # a supplier and a consumer that will place orders
                    min_connections=total - 1,
                    max_connections=64,
                )
            )
        infos = {n.name: wait_ready(n, deadline) for n in nodes}
        console.print(f"{total} daemons ready after {time.monotonic() - t0:.1f}s; discovering…")
        names = {info["peer_id"]: name for name, info in infos.items()}
        seen: dict[str, set[str]] = {}
        while time.monotonic() < deadline:
            seen = {}
            for n in nodes:
                data = n.api("/peers?connected_only=true")
                if data is not None:
                    seen[n.name] = {names.get(p["peer_id"], "?") for p in data["peers"]}
            if len(seen) == total and all(len(v) >= total - 1 for v in seen.values()):
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        _print_matrix(console, nodes, infos, seen)
        complete = len(seen) == total and all(len(v) >= total - 1 for v in seen.values())
        if complete:
            console.print(f"[green]every node sees every other node[/] ({elapsed:.1f}s)")
        else:
            console.print(f"[red]not fully connected after {elapsed:.1f}s[/]")
            return 1
        return 0 if _trade(console, nodes, deadline + 20.0) else 1
    finally:
        stops = [n.stop() for n in reversed(nodes)]
        if stops:
            console.print(f"stopped {len(stops)} daemons (slowest stop {max(stops):.2f}s)")
        if args.keep:
            console.print(f"data dirs and logs kept in {base}")
        else:
            _rmtree(base)


DEMO_ORDERS = (
    # node1 (a supplier) offers 4 cores and 8 GiB for 0.1 SNM an hour; node2 wants 2 cores
    ("node1", {"side": "ask", "price_per_hour": str(10**17), "duration": 7200,
               "cpu_cores": 4, "ram_bytes": 8 << 30, "network": "out"}),
    ("node2", {"side": "bid", "price_per_hour": str(2 * 10**17), "duration": 3600,
               "cpu_cores": 2, "ram_bytes": 4 << 30}),
)  # fmt: skip


def _trade(console: Console, nodes: list[NodeProcess], deadline: float) -> bool:
    """Sign and publish an ASK and a BID, then show every node receiving both by gossip."""
    by_name = {n.name: n for n in nodes}
    placed: dict[str, str] = {}
    for name, body in DEMO_ORDERS:
        if name not in by_name:
            continue
        t_wait = time.monotonic()
        result = None
        while result is None and time.monotonic() < deadline:
            result = by_name[name].post("/orders", body)
            if result is None or not result.get("published"):
                result = None
                time.sleep(0.3)  # its mesh may still be forming
        if result is None:
            console.print(f"[red]{name} could not publish its order[/]")
            return False
        placed[result["order"]["order_id"]] = name
        side = "an ASK" if body["side"] == "ask" else "a BID"
        console.print(
            f"{name} signed and published {side} "
            f"{result['order']['order_id'][:18]}… ({time.monotonic() - t_wait:.1f}s)"
        )
    t0 = time.monotonic()
    seen: dict[str, set[str]] = {}
    while time.monotonic() < deadline:
        seen = {}
        for n in nodes:
            data = n.api("/orders")
            got = {o["order_id"] for o in data["orders"]} if data else set()
            seen[n.name] = got & set(placed)
        if all(len(v) == len(placed) for v in seen.values()):
            break
        time.sleep(0.1)
    table = Table(title="orders each node has received (signed, validated, by gossip)")
    table.add_column("node")
    for oid, author in placed.items():
        table.add_column(f"{author}'s {oid[:10]}…", justify="center")
    for n in nodes:
        table.add_row(n.name, *["●" if oid in seen.get(n.name, ()) else "·" for oid in placed])
    console.print(table)
    done = all(len(v) == len(placed) for v in seen.values())
    if done:
        console.print(f"[green]every node holds every order[/] ({time.monotonic() - t0:.1f}s)")
    else:
        console.print("[red]some orders did not reach every node[/]")
    return done


def _print_matrix(
    console: Console,
    nodes: list[NodeProcess],
    infos: dict[str, dict[str, Any]],
    seen: dict[str, set[str]],
) -> None:
    table = Table(title="who sees whom (rows: the node asked; ● = connected)")
    table.add_column("node")
    table.add_column("role")
    table.add_column("peer id", no_wrap=True)
    for n in nodes:
        table.add_column(n.name, justify="center")
    table.add_column("peers", justify="right")
    for n in nodes:
        row_seen = seen.get(n.name, set())
        pid = infos[n.name]["peer_id"]
        table.add_row(
            n.name,
            infos[n.name]["role"],
            "…" + pid[-8:],
            *["-" if m.name == n.name else ("●" if m.name in row_seen else "·") for m in nodes],
            str(len(row_seen)),
        )
    console.print(table)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
