"""`sonm-p2p demo`: the whole market on one machine, as separate daemon processes.

A local chain (anvil) gets the contracts; a hub creates its wallet through the
factory and registers; a seed, the hub and a consumer start as `sonm-p2p run`
processes; the hub's slot becomes an ASK, the consumer's BID matches it, the deal is
proposed and accepted on chain, the task runs in a container at the hub, its logs
stream to the consumer, its results come back under a receipt the consumer checks,
the deal closes and the hub's wallet is paid. Each step prints one line: the time
since the start and the on-chain fact behind it.

Where the node has the `worker` role, two workers start too and their steps run
(joining the hub, the task on a worker, the hub paying them, their trust tables);
where the node has none, those steps are left out. The network itself is
p2pnode.localnet's, the one the integration tests check.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import tomli_w
from rich.console import Console
from rich.markup import escape

from p2pnode.api.auth import read_token
from p2pnode.errors import LocalError, UserError
from p2pnode.localnet import (
    DEMO_IMAGE,
    LocalNet,
    NodeProcess,
    deploy,
    engine_problem,
    make_blocks,
    wait_ready,
)

__all__ = ["NodeProcess", "start_node", "wait_ready", "write_config"]

PRICE_PER_HOUR = 3_600 * 10**13  # wei: 0.036 SNM an hour, 10^13 wei a second
WORKER_PAY_PER_HOUR = 3_600 * 10**12  # what the hub pays a joined worker
WORKER_KEYS = {"worker1": 5, "worker2": 6}  # anvil dev key index of each worker
TASK_SCRIPT = (
    "echo hello from the container; for i in 1 2 3; do echo step $i; sleep 0.2; done; "
    "echo 42 > /results/answer.txt"
)


def register(subparsers: Any) -> None:
    demo = subparsers.add_parser(
        "demo", help="run a whole market on this machine: chain, hub, consumer, a paid task"
    )
    demo.add_argument("--timeout", type=float, default=300.0, help="seconds to allow (20..600)")
    demo.add_argument(
        "--keep",
        action="store_true",
        help="leave the network running (for `sonm-p2p ui` and the CLI) until Ctrl-C",
    )
    demo.set_defaults(func=cmd_demo)


def has_workers() -> bool:
    """Whether this build has remote workers (the `worker` role)."""
    from p2pnode.config import ROLES

    return "worker" in ROLES


@dataclass
class Story:
    """The demo's state as its steps go: the network, and what each step found."""

    console: Console
    base: Path
    deadline: float
    t0: float = field(default_factory=time.monotonic)
    anvil_url: str = ""
    net: LocalNet | None = None
    chain: Any = None
    engine_problem: str | None = None
    workers: dict[str, str] = field(default_factory=dict)  # name -> address
    slot_worker: str | None = None
    deal_id: int = 0
    wallet_before: int = 0
    facts: dict[str, Any] = field(default_factory=dict)

    def line(self, text: str) -> None:
        self.console.print(f"[{time.monotonic() - self.t0:5.1f}s] {escape(text)}", soft_wrap=True)

    @property
    def n(self) -> LocalNet:
        if self.net is None:
            raise LocalError("the network is not up")
        return self.net

    def wait(self, cond: Callable[[], Any], what: str, poll: float = 0.2) -> Any:
        while time.monotonic() < self.deadline:
            try:
                value = cond()
            except (httpx.HTTPError, LocalError):
                value = None
            if value:
                return value
            time.sleep(poll)
        raise LocalError(f"timed out waiting for {what} (see the logs in {self.base})")


def _snm(wei: int) -> str:
    return f"{wei / 10**18:.6f} SNM"


def _events(story: Story, name: str) -> Any:
    """The Deals contract's `name` event for the demo's deal."""
    for record in story.n.system.deals.events(names=[name]):
        if int(record.args["deal_id"]) == story.deal_id:
            return record
    return None


# ---- the steps, in order -------------------------------------------------------------


def step_chain(story: Story) -> None:
    from contracts.anvil import AnvilProcess

    anvil = AnvilProcess().start()
    story.facts["anvil"] = anvil
    story.anvil_url = anvil.url
    story.line(f"local chain (anvil) answers at {anvil.url}, chain id 31337")
    # the seed knows nothing of the chain: it starts now, while the contracts deploy
    story.net = LocalNet(story.base, anvil.url, Path(), None, "", "", {}, {}, "")
    story.n.start("seed", "seed", chain=False)


def step_contracts(story: Story) -> None:
    d = deploy(story.anvil_url, story.base, dict(WORKER_KEYS) if has_workers() else None)
    story.chain = d.chain
    a = d.system.addresses
    story.line(f"contracts deployed: token {a.token}, whitelist {a.whitelist}, deals {a.deals}")
    story.line(f"hub wallet {d.wallet} created through the factory (tx {d.txs['wallet']})")
    balance = d.system.token.balance_of(d.wallet)
    story.line(
        f"hub wallet funded with its deposit (tx {d.txs['fund']}), registered and "
        f"whitelisted (tx {d.txs['register']}); balance {_snm(balance)}"
    )
    stop = threading.Event()
    threading.Thread(target=make_blocks, args=(d.chain, stop), daemon=True).start()
    story.facts["stop_blocks"] = stop
    n = story.n
    n.addresses, n.system, n.dao, n.wallet, n.keys = d.addresses, d.system, d.dao, d.wallet, d.keys
    if has_workers():
        story.n.hub_config = {
            "workers": {
                "pay_per_hour": str(WORKER_PAY_PER_HOUR),
                "payout_period": 4.0,
                "announce_interval": 2.0,
                "max_workers": 2,
            }
        }


def step_engine(story: Story) -> None:
    story.engine_problem = engine_problem()
    if story.engine_problem is None:
        story.line(f"container engine reachable, image {DEMO_IMAGE} present")
    else:
        story.line(f"no container engine: {story.engine_problem}; the task steps are left out")
    if story.engine_problem is None:
        story.n.hub_config["executor"] = {"allowed_images": [DEMO_IMAGE]}


def step_nodes(story: Story) -> None:
    from eth_account import Account

    n = story.n
    info = wait_ready(n.nodes["seed"], story.deadline)
    n.seed_addr = info["addrs"][0]
    n.start("supplier", "supplier", hub=True)
    n.start("con_a", "consumer")
    names = ["supplier", "con_a"]
    if has_workers():
        executor = {"allowed_images": [DEMO_IMAGE]} if story.engine_problem is None else {}
        for name in WORKER_KEYS:
            extra = {
                "executor": executor,
                "worker": {"check_interval": 1.0},
                # the demo's clock: payouts every 4 s, so polls, chain reads and the
                # grace for a late payment are seconds, and the two workers trust
                # each other from the start (they are the same operator's machines)
                "reputation": {
                    "poll_interval": 2.0,
                    "trust_interval": 2.0,
                    "chain_interval": 1.0,
                    "payment_grace": 20.0,
                    "pretrusted": [
                        Account.from_key(n.keys[w]).address.lower() for w in WORKER_KEYS
                    ],
                },
            }
            n.start(name, "worker", extra=extra)
            names.append(name)
    ids = {name: wait_ready(n.nodes[name], story.deadline)["peer_id"] for name in names}
    hub, con = ids["supplier"], ids["con_a"]
    story.line(
        f"daemons up: seed {info['peer_id'][-8:]} at {n.seed_addr}, hub …{hub[-8:]}, "
        f"consumer …{con[-8:]}" + (", workers worker1 and worker2" if has_workers() else "")
    )


def step_workers_join(story: Story) -> None:
    """The workers hear the hub's announcement, check its wallet on chain, poll each
    other about it, and join it over /sonm/worker/1."""
    from eth_account import Account

    n = story.n
    for name in WORKER_KEYS:
        story.workers[name] = Account.from_key(n.keys[name]).address.lower()

    def joined() -> list[dict[str, Any]]:
        r = n.call("supplier", "GET", "/workers")
        members = r.json()["workers"] if r.status_code == 200 else []
        active = [m for m in members if m["active"] and m["worker"] in story.workers.values()]
        return active if len(active) == len(story.workers) else []

    members = story.wait(joined, "both workers to join the hub")
    pay = _snm(int(members[0]["pay_per_hour"]))
    story.line(f"worker1 and worker2 checked the hub on chain and joined it, paid {pay} an hour")
    story.slot_worker = story.workers["worker1"]


def step_slot_to_ask(story: Story) -> None:
    n = story.n
    body: dict[str, Any] = {
        "slot_id": "demo",
        "cpu_cores": 1,
        "ram_bytes": 2**28,
        "duration": 3600,
        "price_per_hour": str(PRICE_PER_HOUR),
    }
    if story.slot_worker:
        body["worker"] = story.slot_worker
    added = n.call("supplier", "POST", "/slots", body)
    if added.status_code != 201:
        raise LocalError(f"the hub refused its slot: {added.text}")
    asks = story.wait(lambda: n.asks_seen("con_a"), "the consumer to hear the slot's ASK")
    where = f" on {story.slot_worker}" if story.slot_worker else ""
    story.line(
        f"hub's slot{where} (1 core, 256 MiB, {_snm(PRICE_PER_HOUR)}/h) is ASK "
        f"{asks[0]['order_id'][:18]}…, gossiped to the consumer"
    )


def step_bid_to_deal(story: Story) -> None:
    n = story.n
    story.wallet_before = n.system.token.balance_of(n.wallet)
    bid = n.bid("con_a", duration=3600, price_per_hour=PRICE_PER_HOUR)
    story.line(f"consumer signed and published BID {bid[:18]}…")
    deal = story.wait(
        lambda: [d for d in n.deals("con_a") if d["status"] == "accepted"],
        "the deal to be accepted",
    )[0]
    story.deal_id = int(deal["deal_id"])
    proposed, accepted = _events(story, "DealProposed"), _events(story, "DealAccepted")
    story.line(
        f"BID matched the ASK: deal {story.deal_id} proposed by the consumer "
        f"(tx {proposed.tx_hash if proposed else '?'}, escrow {_snm(int(deal['escrow']))})"
    )
    story.line(
        f"deal {story.deal_id} accepted by the hub (tx {accepted.tx_hash if accepted else '?'})"
    )


def step_task(story: Story) -> None:
    """The consumer hands the task to the hub; it runs in a container; its logs
    stream back as it writes them."""
    n = story.n
    spec = {"image": DEMO_IMAGE, "command": ["sh", "-c", TASK_SCRIPT]}
    started = n.call("con_a", "POST", f"/tasks/{story.deal_id}", spec)
    if started.status_code != 201:
        raise LocalError(f"the task did not start: {started.text}")
    where = f" on worker {story.slot_worker}" if story.slot_worker else " at the hub"
    story.line(f"task of deal {story.deal_id} started in a container{where}")
    node = n.nodes["con_a"]
    info, token = node.ready(), read_token(node.data_dir)
    if not info or not token:
        raise LocalError("the consumer lost its API")
    streams: dict[str, bytes] = {"stdout": b"", "stderr": b""}
    with httpx.stream(
        "GET",
        f"{info['api_url']}/tasks/{story.deal_id}/logs",
        params={"follow": "true"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=max(5.0, story.deadline - time.monotonic()),
    ) as resp:
        for raw in resp.iter_lines():
            record = json.loads(raw)
            if record["stream"] == "error":
                raise LocalError(f"the log stream broke: {record}")
            if record["stream"] in streams:
                chunk = base64.b64decode(record["data"])
                streams[record["stream"]] += chunk
                for text in chunk.decode(errors="replace").splitlines():
                    story.line(f"  consumer reads the task's {record['stream']}: {text}")
    story.facts["logs"] = streams


def step_results(story: Story) -> None:
    """The results come back with the hub's signed receipt; the consumer checks it
    against what it received."""
    from eth_account import Account

    from gossip.eip712 import SigningDomain
    from p2pnode.executor import Receipt, verify_receipt

    n = story.n
    dest = story.base / "results"

    def fetch() -> httpx.Response | None:
        r = n.call("con_a", "POST", f"/tasks/{story.deal_id}/results", {"dest": str(dest)})
        return None if r.status_code == 409 and "not finished" in r.text else r

    got = story.wait(fetch, "the task to finish")
    if got.status_code != 200:
        raise LocalError(f"no results: {got.text}")
    body = got.json()
    receipt = Receipt.from_dict(body["receipt"])
    logs = story.facts["logs"]
    signer = Account.from_key(n.keys["supplier"]).address
    verify_receipt(
        receipt,
        domain=SigningDomain(chain_id=31337),
        supplier=bytes.fromhex(signer[2:]),
        deal_id=story.deal_id,
        results_sha256=hashlib.sha256(Path(body["archive"]).read_bytes()).digest(),
        stdout_sha256=hashlib.sha256(logs["stdout"]).digest(),
        stderr_sha256=hashlib.sha256(logs["stderr"]).digest(),
    )
    answer = (dest / "answer.txt").read_text().strip()
    story.line(
        f"results back: answer.txt = {answer}; receipt (exit {receipt.exit_code}) signed by "
        f"the hub {signer}, verified over the archive and both logs"
    )


def step_close_and_pay(story: Story) -> None:
    n = story.n
    closed = n.call("con_a", "POST", f"/deals/{story.deal_id}/close")
    if closed.status_code != 200:
        raise LocalError(f"the deal did not close: {closed.text}")
    row = story.wait(
        lambda: (d := n.deal("con_a", story.deal_id)) and d["status"] == "closed" and d,
        "the close to be recorded",
    )
    event = _events(story, "DealClosed")
    after = n.system.token.balance_of(n.wallet)
    story.line(
        f"deal {story.deal_id} closed by the consumer (tx {event.tx_hash if event else '?'}): "
        f"hub paid {_snm(int(row['paid']))}, consumer refunded {_snm(int(row['refunded']))}"
    )
    story.line(
        f"hub wallet {n.wallet}: {_snm(story.wallet_before)} -> {_snm(after)} "
        f"(+{after - story.wallet_before} wei)"
    )


def step_workers_paid(story: Story) -> None:
    """The hub pays its workers from its wallet, on its payout period."""
    n = story.n

    def paid() -> list[dict[str, Any]]:
        r = n.call("supplier", "GET", "/workers")
        members = r.json()["workers"] if r.status_code == 200 else []
        done = [m for m in members if m["worker"] in story.workers.values() and int(m["paid"]) > 0]
        return done if len(done) == len(story.workers) else []

    story.wait(paid, "the hub to pay both workers")
    from web3 import Web3

    wallet = n.system.wallet(n.wallet)
    events = wallet.events(names=["MinerPaid"])
    for address in story.workers.values():
        miner = Web3.to_checksum_address(address)
        mine = [e for e in events if Web3.to_checksum_address(e.args["miner"]) == miner]
        paid_wei = sum(int(e.args["amount"]) for e in mine)
        story.line(
            f"hub paid worker {miner} {_snm(paid_wei)} through its wallet "
            f"(tx {mine[-1].tx_hash if mine else '?'}); claimable by the worker: "
            f"{_snm(wallet.owed(miner))}"
        )


def step_trust(story: Story) -> None:
    """The workers' trust tables: the hub that paid them turns safe."""
    n = story.n
    wallet = n.wallet.lower()
    first = n.call("worker1", "GET", "/hubs")
    if first.status_code == 404:
        story.line("this build has no reputation service (/hubs): the trust step is left out")
        return

    def safe(name: str) -> dict[str, Any] | None:
        r = n.call(name, "GET", "/hubs")
        hubs = r.json()["hubs"] if r.status_code == 200 else []
        mine = [h for h in hubs if h["hub"].lower() == wallet and h["status"] == "safe"]
        return mine[0] if mine else None

    for name in WORKER_KEYS:
        hub = story.wait(functools.partial(safe, name), f"{name} to find the hub safe")
        story.line(f"{name}'s trust table: hub {wallet} safe ({hub['why']})")


def steps(story: Story) -> list[Callable[[Story], None]]:
    """The story's steps; the worker steps only where the build has workers, the task
    steps only where a container engine answers."""
    out: list[Callable[[Story], None]] = [step_chain, step_contracts, step_engine, step_nodes]
    workers = has_workers()
    if workers:
        out.append(step_workers_join)
    out += [step_slot_to_ask, step_bid_to_deal]
    out.append(_if_engine(step_task))
    out.append(_if_engine(step_results))
    out.append(step_close_and_pay)
    if workers:
        out += [step_workers_paid, step_trust]
    return out


def _if_engine(step: Callable[[Story], None]) -> Callable[[Story], None]:
    def run(story: Story) -> None:
        if story.engine_problem is None:
            step(story)

    run.__name__ = step.__name__
    return run


def cmd_demo(args: argparse.Namespace) -> int:
    if not 20 <= args.timeout <= 600:
        raise UserError(f"--timeout = {args.timeout}: allowed 20..600")
    console = Console()
    base = Path(tempfile.mkdtemp(prefix="sonm-demo-"))
    story = Story(console, base, time.monotonic() + args.timeout)
    console.print(f"sonm-p2p demo: a whole market on this machine (data and logs in {base})")
    ok = False
    try:
        for step in steps(story):
            step(story)
        ok = True
        story.line("done: the hub was paid for a task whose results the consumer verified")
        if args.keep:
            _keep(story)
    except LocalError as exc:
        story.line(f"failed: {exc}")
    except KeyboardInterrupt:
        pass
    finally:
        _teardown(story, keep_files=args.keep or not ok)
    return 0 if ok else 1


def _keep(story: Story) -> None:
    n = story.n
    me = f"{sys.executable} -m p2pnode.cli.main" if not shutil.which("sonm-p2p") else "sonm-p2p"
    con, hub = n.nodes["con_a"].data_dir, n.nodes["supplier"].data_dir
    story.console.print(
        "\nThe network keeps running until Ctrl-C. To watch it:\n"
        f"  web view (consumer): {me} ui --data-dir {con}\n"
        f"  web view (hub):      {me} ui --data-dir {hub}\n"
        f"  the CLI:             {me} peers --data-dir {con}\n"
        f"                       {me} orders --data-dir {con}\n"
        f"  the chain:           {story.anvil_url} (contracts in {n.addresses})",
        soft_wrap=True,
    )
    # Ctrl-C or SIGTERM ends it through the same tear-down (a shell that started us in
    # the background may have left SIGINT ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    while True:
        time.sleep(3600)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _teardown(story: Story, *, keep_files: bool) -> None:
    stops = [node.stop() for node in reversed(list(story.net.nodes.values()))] if story.net else []
    stop_blocks = story.facts.get("stop_blocks")
    if stop_blocks is not None:
        stop_blocks.set()
    anvil = story.facts.get("anvil")
    if anvil is not None:
        anvil.stop()
    if stops:
        story.console.print(f"stopped {len(stops)} daemons and the chain")
    if keep_files:
        story.console.print(f"data dirs and logs kept in {story.base}")
    else:
        shutil.rmtree(story.base, ignore_errors=True)


# ---- loopback nodes without a chain (used by the network tests) -------------------------


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
