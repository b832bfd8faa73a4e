"""From a BID placed to its deal Accepted on chain, over loopback with anvil, next to
the same chain transactions sent directly by the contracts client, same run.

The flow: the consumer daemon's API takes the BID, its market service matches it
against the supplier's ASK in its book, opens /sonm/deal/1 to the hub (Noise over
TCP), gets a reservation, approves and proposes on the Deals registry, tells the hub
the deal id; the hub's daemon checks the proposal and accepts on chain. Timed from
the POST /orders call until the benchmark process sees the deal Accepted on chain.

Baseline: the chain work alone — approve, propose (consumer) and accept (hub owner)
sent one after the other by `contracts` from this process, as a script using the
client would. The ratio says what the deal protocol, the matching and the daemons'
upkeep add on top of the transactions themselves.

    .venv/bin/python -m benchmarks.deal_flow [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import tomli_w

from contracts.anvil import AnvilProcess, dev_private_keys
from contracts.chain import rpc_chain
from contracts.deploy import System, SystemParams, deploy_system
from contracts.params import SNM
from p2pnode import keys
from p2pnode.api.auth import read_token
from p2pnode.ready import read_ready

PASSWORD = "bench-only"
PRICE_PER_SECOND = 10**12
ROOT = Path(__file__).resolve().parent.parent


def _keystore(path: Path, key: str) -> None:
    from eth_account import Account

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            Account.encrypt(
                bytes.fromhex(key.removeprefix("0x")), PASSWORD, kdf="scrypt", iterations=2**10
            )
        )
    )
    path.chmod(0o600)


def _start(base: Path, name: str, role: str, chain: dict[str, Any], **market: Any) -> Any:
    data_dir = base / name
    data_dir.mkdir(parents=True, exist_ok=True)
    boot = []
    if name != "seed":
        info = read_ready(base / "seed")
        assert info is not None
        boot = [info["addrs"][0]]
    cfg = {
        "node": {"role": role, "data_dir": str(data_dir), "log_level": "WARNING"},
        "network": {"listen_port": 0, "bootstrap": boot, "redial_interval": 0.5},
        "api": {"port": 0},
        "chain": chain,
        "market": market,
    }
    path = base / f"{name}.toml"
    path.write_bytes(tomli_w.dumps(cfg).encode())
    env = {k: v for k, v in os.environ.items() if not k.startswith("SONM_")}
    env[keys.PASSWORD_ENV] = PASSWORD
    log = open(base / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the child
    return subprocess.Popen(
        [sys.executable, "-m", "p2pnode.cli.main", "run", "--config", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )


def _wait_ready(data_dir: Path, proc: Any, timeout: float = 120) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        info = read_ready(data_dir)
        if info and info.get("pid") == proc.pid:
            return info
        if proc.poll() is not None:
            raise SystemExit(f"{data_dir.name} exited; see {data_dir.parent}/{data_dir.name}.log")
        time.sleep(0.1)
    raise SystemExit(f"{data_dir.name} not ready")


class Api:
    def __init__(self, data_dir: Path) -> None:
        info = read_ready(data_dir)
        assert info is not None
        self.url = info["api_url"]
        self.headers = {"Authorization": f"Bearer {read_token(data_dir)}"}

    def __call__(self, method: str, path: str, body: Any = None) -> Any:
        r = httpx.request(method, self.url + path, json=body, headers=self.headers, timeout=30)
        r.raise_for_status()
        return r.json()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    from eth_account import Account

    params = SystemParams(deposit=1_000 * SNM, payout_period=3600, waiting_period=600)
    with AnvilProcess() as anvil, tempfile.TemporaryDirectory(prefix="deal-bench-") as tmp:
        base = Path(tmp)
        chain = rpc_chain(anvil.url)
        k = dev_private_keys(5)
        dao, hub, consumer, hub2, consumer2 = (Account.from_key(x) for x in k)
        addresses = deploy_system(chain, deployer=dao.address, params=params)
        addresses.save(base / "addresses.json")
        system = System.connect(chain, addresses)
        wallets = []
        for owner in (hub, hub2):
            wallet, _ = system.factory.create_wallet(sender=owner.address)
            system.token.transfer(wallet, 2_000 * SNM, sender=dao.address)
            system.wallet(wallet).register("hub", ["/ip4/127.0.0.1/tcp/1"], sender=owner.address)
            wallets.append(wallet)
        for who in (consumer, consumer2):
            system.token.transfer(who.address, 100_000 * SNM, sender=dao.address)

        # baseline: the chain transactions alone, sent by the contracts client
        direct = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            escrow = PRICE_PER_SECOND * 3600
            system.token.approve(system.deals.address, escrow, sender=consumer2)
            deal_id, _ = system.deals.propose(
                wallets[1], PRICE_PER_SECOND, 3600, b"\x01" * 32, sender=consumer2
            )
            system.deals.accept(deal_id, sender=hub2)
            direct.append(time.perf_counter() - t0)

        chain_cfg = {
            "rpc": anvil.url,
            "addresses": str(base / "addresses.json"),
            "chain_id": 31337,
        }
        _keystore(base / "supplier" / "keystore.json", k[1])
        _keystore(base / "consumer" / "keystore.json", k[2])
        procs = {"seed": _start(base, "seed", "seed", chain_cfg)}
        _wait_ready(base / "seed", procs["seed"])
        procs["supplier"] = _start(base, "supplier", "supplier", chain_cfg, hub_wallet=wallets[0])
        procs["consumer"] = _start(base, "consumer", "consumer", chain_cfg)
        try:
            for name in ("supplier", "consumer"):
                _wait_ready(base / name, procs[name])
            supplier, cons = Api(base / "supplier"), Api(base / "consumer")
            # one slot: each round's deal is closed early by the consumer, the hub
            # places a fresh ASK for the freed slot, and the next round waits for it
            supplier(
                "POST",
                "/slots",
                {
                    "slot_id": "s0",
                    "cpu_cores": 1,
                    "ram_bytes": 2**26,
                    "price_per_hour": str(PRICE_PER_SECOND * 3600),
                    "duration": 3600,
                },
            )
            flow = []
            for _ in range(args.rounds):
                end = time.monotonic() + 120
                while not cons("GET", "/orders?side=ask")["orders"]:
                    if time.monotonic() > end:
                        raise SystemExit("the consumer never saw an ASK")
                    time.sleep(0.1)
                count = system.deals.deal_count()
                t0 = time.perf_counter()
                cons(
                    "POST",
                    "/orders",
                    {
                        "side": "bid",
                        "price_per_hour": str(PRICE_PER_SECOND * 3600),
                        "duration": 3600,
                        "cpu_cores": 1,
                    },
                )
                while True:
                    n = system.deals.deal_count()
                    if n > count and int(system.deals.deal(n).status) == 2:
                        break
                    if time.perf_counter() - t0 > 60:
                        raise SystemExit("no deal accepted within 60 s")
                    time.sleep(0.01)
                flow.append(time.perf_counter() - t0)
                end = time.monotonic() + 30
                while not any(d["status"] == "accepted" for d in cons("GET", "/deals")["deals"]):
                    if time.monotonic() > end:
                        raise SystemExit("the consumer never recorded its deal")
                    time.sleep(0.05)
                cons("POST", f"/deals/{n}/close")
        finally:
            for proc in procs.values():
                proc.send_signal(signal.SIGTERM)
            for proc in procs.values():
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def fmt(xs: list[float]) -> str:
        return f"median {statistics.median(xs):.3f} s  min {min(xs):.3f}  max {max(xs):.3f}"

    print(f"rounds: {args.rounds} (anvil on loopback, load average {os.getloadavg()[0]:.1f})")
    print(f"baseline  approve+propose+accept by the contracts client: {fmt(direct)}")
    print(f"deal flow BID placed -> deal Accepted on chain (daemons): {fmt(flow)}")
    ratio = statistics.median(flow) / statistics.median(direct)
    print(f"ratio: deal flow median / baseline median = {ratio:.2f}x  (target: flow < 2 s)")


if __name__ == "__main__":
    main()
