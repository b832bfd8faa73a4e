"""A whole market on one machine: anvil with the contracts deployed, a hub wallet
created through the factory and registered, and daemons as separate `sonm-p2p run`
processes over loopback.

`sonm-p2p demo` walks through it step by step and the multi-process integration
tests stand on it, so the demo shows exactly the network the tests check. The
pieces are separate (`deploy`, `LocalNet.start`, `open_net`) because the demo
prints a line after each one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import tomli_w

from p2pnode import keys
from p2pnode.api.auth import read_token
from p2pnode.errors import LocalError
from p2pnode.ready import read_ready

PASSWORD = "localnet-only-password"  # the dev accounts' keystores; loopback use only
CHAIN_ID = 31337  # anvil's
ACCEPT_TIMEOUT = 8.0
ROOT = Path(__file__).resolve().parent.parent
DEMO_IMAGE = "localhost/busybox:latest"  # built locally by scripts/setup-engine


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


def light_keystore(path: Path, key: str, password: str = PASSWORD) -> None:
    """A keystore the daemons open in milliseconds: the production scrypt cost (2^18)
    takes seconds per node on a loaded machine and protects nothing on loopback."""
    from eth_account import Account

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            Account.encrypt(
                bytes.fromhex(key.removeprefix("0x")), password, kdf="scrypt", iterations=2**10
            )
        )
    )
    path.chmod(0o600)


def engine_problem(image: str = DEMO_IMAGE) -> str | None:
    """Why no task can run here (no engine, or it lacks the image), or None."""
    from p2pnode.executor import Engine, EngineError, engine_address

    address = engine_address()
    try:
        engine = Engine.connect(address)
    except EngineError as exc:
        return str(exc)
    try:
        engine.image(image, pull=False)
    except EngineError:
        return f"the engine at {address or '(default)'} has no {image}; run scripts/setup-engine"
    finally:
        engine.close()
    return None


@dataclass
class Deployment:
    """The contracts on a fresh chain, a registered hub wallet, funded dev accounts."""

    chain: Any
    system: Any
    addresses: Path
    dao: str
    wallet: str
    keys: dict[str, str]  # node name -> private key
    txs: dict[str, str]  # what -> tx hash: "wallet", "register", "fund"


# dev account index of each node that holds a key (0 is the DAO/deployer)
KEY_INDEX = {"supplier": 1, "con_a": 2, "con_b": 3, "direct": 4}


def deploy(
    anvil_url: str, base: Path, extra_keys: dict[str, int] | None = None, hub_name: str = "hub-a"
) -> Deployment:
    """Deploy the contracts, create the hub's wallet through the factory, fund it with
    the deposit and register it (which whitelists it), and give every consumer tokens.
    `extra_keys` (name -> dev key index >= 5) get keystores too."""
    from eth_account import Account

    from contracts.anvil import dev_private_keys
    from contracts.chain import rpc_chain
    from contracts.deploy import System, SystemParams, deploy_system
    from contracts.hubsetup import create_wallet, register_hub
    from contracts.params import SNM

    chain = rpc_chain(anvil_url)
    extra = dict(extra_keys or {})
    k = dev_private_keys(max([5, *(i + 1 for i in extra.values())]))
    dao = Account.from_key(k[0]).address
    hub = Account.from_key(k[KEY_INDEX["supplier"]]).address
    params = SystemParams(
        initial_supply=10_000_000 * SNM,
        deposit=1_000 * SNM,
        lock_bps=1_000,
        payout_period=3_600,
        waiting_period=600,
    )
    addresses = deploy_system(chain, deployer=dao, params=params)
    path = base / "addresses.json"
    addresses.save(path)
    system = System.connect(chain, addresses)
    wallet, created = create_wallet(system, hub)
    funded = system.token.transfer(wallet, 2_000 * SNM, sender=dao)
    registered = register_hub(
        system, wallet, hub, name=hub_name, multiaddrs=["/ip4/127.0.0.1/tcp/4001"]
    )
    for name in ("con_a", "con_b", "direct"):
        system.token.transfer(
            Account.from_key(k[KEY_INDEX[name]]).address, 10_000 * SNM, sender=dao
        )
    names = {name: k[i] for name, i in KEY_INDEX.items()}
    names.update({name: k[i] for name, i in extra.items()})
    for name, key in names.items():
        if name != "direct":  # a key for tests that sign by hand, no daemon
            light_keystore(base / name / "keystore.json", key)
    txs = {"wallet": created, "fund": funded.tx_hash, "register": registered.txs["register"]}
    return Deployment(chain, system, path, dao, wallet, names, txs)


def make_blocks(chain: Any, stop: threading.Event) -> None:
    """A live chain makes a block every few seconds; anvil only makes one per
    transaction, and a deal's end is judged by block time."""
    while not stop.wait(1.0):
        try:
            chain.mine()
        except Exception:
            return


@dataclass
class LocalNet:
    base: Path
    anvil_url: str
    addresses: Path
    system: Any
    dao: str
    wallet: str
    keys: dict[str, str]
    nodes: dict[str, NodeProcess]
    seed_addr: str
    hub_config: dict[str, Any] = dataclasses.field(default_factory=dict)  # extra hub sections

    def start(
        self,
        name: str,
        role: str,
        *,
        hub: bool = False,
        extra: dict[str, Any] | None = None,
        chain: bool = True,
        port: int = 0,
    ) -> NodeProcess:
        """Start one daemon (its keystore, if any, is in base/name); with `chain`
        false it is told nothing of the chain (a seed needs none, and can then start
        before the contracts are deployed); `port` 0 lets it choose (a restart that
        peers must find at the address they kept passes the port it had)."""
        data_dir = self.base / name
        data_dir.mkdir(parents=True, exist_ok=True)
        cfg: dict[str, Any] = {
            "node": {"role": role, "data_dir": str(data_dir), "log_level": "INFO"},
            "network": {
                "listen_host": "127.0.0.1",
                "listen_port": port,
                "bootstrap": [self.seed_addr] if self.seed_addr else [],
                "redial_interval": 0.5,
                "redial_max_interval": 4.0,
                "px_interval": 2.0,
            },
            "api": {"host": "127.0.0.1", "port": 0},
            "chain": {
                "rpc": self.anvil_url,
                "addresses": str(self.addresses),
                "chain_id": CHAIN_ID,
            },
            "market": {"accept_timeout": ACCEPT_TIMEOUT, "reservation_ttl": 20.0},
        }
        if not chain:
            del cfg["chain"], cfg["market"]
        if hub:
            cfg["market"]["hub_wallet"] = self.wallet
            cfg.update(self.hub_config)
        cfg.update(extra or {})
        path = self.base / f"{name}.toml"
        path.write_bytes(tomli_w.dumps(cfg).encode())
        env = {k: v for k, v in os.environ.items() if not k.startswith("SONM_")}
        if "DOCKER_HOST" in os.environ:
            env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
        env[keys.PASSWORD_ENV] = PASSWORD
        log_path = self.base / f"{name}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "p2pnode.cli.main", "run", "--config", str(path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )
        node = NodeProcess(name, data_dir, proc, log_path)
        self.nodes[name] = node
        return node

    def call(self, name: str, method: str, path: str, body: Any = None) -> httpx.Response:
        node = self.nodes[name]
        info, token = node.ready(), read_token(node.data_dir)
        if not info or not token:
            raise LocalError(f"{name} has no API address or token yet")
        return httpx.request(
            method,
            info["api_url"] + path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    def deals(self, name: str) -> list[dict[str, Any]]:
        r = self.call(name, "GET", "/deals")
        return list(r.json()["deals"]) if r.status_code == 200 else []

    def deal(self, name: str, deal_id: int) -> dict[str, Any] | None:
        r = self.call(name, "GET", f"/deals/{deal_id}")
        return r.json() if r.status_code == 200 else None

    def bid(self, name: str, *, duration: int, price_per_hour: int) -> str:
        body = {
            "side": "bid",
            "price_per_hour": str(price_per_hour),
            "duration": duration,
            "cpu_cores": 1,
            "ram_bytes": 2**28,
            "valid_for": 600,
        }
        r = self.call(name, "POST", "/orders", body)
        if r.status_code != 201:
            raise LocalError(f"{name} could not place its BID: {r.text}")
        return str(r.json()["order"]["order_id"])

    def asks_seen(self, name: str) -> list[dict[str, Any]]:
        r = self.call(name, "GET", "/orders?side=ask")
        return list(r.json()["orders"]) if r.status_code == 200 else []

    def kill_all(self) -> None:
        for node in self.nodes.values():
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGKILL)
            node.proc.wait(10)


@contextlib.contextmanager
def open_net(
    base: Path,
    consumers: tuple[str, ...] = ("con_a", "con_b"),
    hub_config: dict[str, Any] | None = None,
    others: dict[str, tuple[str, int, dict[str, Any]]] | None = None,
    ready_timeout: float = 180.0,  # daemons start slowly on a loaded machine
) -> Iterator[LocalNet]:
    """anvil with the contracts deployed and a hub wallet registered, then a seed, a
    supplier (the hub, with `hub_config`'s extra sections) and the consumers, each
    with a funded account, and `others` (name -> role, anvil dev key index >= 5,
    extra config sections) started alongside them; every daemon is killed on the
    way out."""
    from contracts.anvil import AnvilProcess

    extra = dict(others or {})
    with AnvilProcess() as anvil:
        d = deploy(anvil.url, base, {name: i for name, (_, i, _) in extra.items()})
        stop_blocks = threading.Event()
        ticker = threading.Thread(target=make_blocks, args=(d.chain, stop_blocks), daemon=True)
        ticker.start()
        n = LocalNet(base, anvil.url, d.addresses, d.system, d.dao, d.wallet, d.keys, {}, "")
        n.hub_config = dict(hub_config or {})
        try:  # every daemon started is killed, also when the start itself fails
            seed = n.start("seed", "seed")
            n.seed_addr = wait_ready(seed, time.monotonic() + 60)["addrs"][0]
            n.start("supplier", "supplier", hub=True)
            for name in consumers:
                n.start(name, "consumer")
            for name, (role, _, cfg) in extra.items():
                n.start(name, role, extra=cfg)
            for name in ("supplier", *consumers, *extra):
                wait_ready(n.nodes[name], time.monotonic() + ready_timeout)
            yield n
        finally:
            stop_blocks.set()
            n.kill_all()
