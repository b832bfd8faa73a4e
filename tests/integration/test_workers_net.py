"""A hub with a remote worker, between real daemons over loopback: anvil for the
chain, podman for the containers. The hub announces itself; the worker hears it,
checks it on chain, asks its offer and joins it with a signed agreement; the hub
makes a slot of the worker's machine; a consumer's deal on that slot has its task
run by the worker's executor, its logs relayed and its results verified at the
consumer (the hub countersigns the worker's receipt); and the hub pays the worker
for its hours through HubWallet.transfer.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts.anvil import dev_private_keys
from p2pnode.cli.demo import wait_ready
from p2pnode.localnet import light_keystore
from tests.conftest import run_cli
from tests.executor.conftest import IMAGE, _engine_problem
from tests.integration.test_deals_net import CHEAP, Net, _wait, open_net
from tests.integration.test_tasks_net import _accepted_deal, _logs, _results, hub_tasks

# five daemons and anvil start in the first test's setup: allow for a loaded machine
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

PAY_PER_HOUR = 3_600 * 10**12  # wei: 10**12 per second joined
PAYOUT_PERIOD = 4.0
WORKER_DOWNLOAD = 250_000_000  # bit/s, as the worker's operator states it


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Net, str]]:
    problem = _engine_problem()
    if problem is not None:
        if os.environ.get("SONM_REQUIRE_ENGINE") == "1":
            pytest.fail(f"{problem}; SONM_REQUIRE_ENGINE=1")
        pytest.skip(f"{problem}; set SONM_REQUIRE_ENGINE=1 to fail instead")
    from eth_account import Account

    hub = {
        "workers": {
            "pay_per_hour": str(PAY_PER_HOUR),
            "payout_period": PAYOUT_PERIOD,
            "announce_interval": 2.0,
            "max_workers": 2,
        },
    }
    worker_cfg = {
        "executor": {"allowed_images": [IMAGE]},
        "worker": {"check_interval": 1.0},
        "hardware": {"net_download_bps": WORKER_DOWNLOAD},
    }
    base = tmp_path_factory.mktemp("workers")
    with open_net(base, ("con_a",), hub) as n:
        # started once the others are up: a worker and a hub dialling each other at
        # the same instant can be left with a connection no stream opens on
        key = dev_private_keys(6)[5]
        light_keystore(base / "worker" / "keystore.json", key)
        n.keys["worker"] = key
        # the worker measures its CPU as an operator would, before it starts: its scores
        # go to the hub with its join, and the ASKs for its slots carry them
        bench = run_cli("hardware", "--bench", "--data-dir", str(base / "worker"))
        assert bench.returncode == 0, bench.stderr
        n.start("worker", "worker", extra=worker_cfg)
        wait_ready(n.nodes["worker"], time.monotonic() + 180)
        yield n, Account.from_key(key).address.lower()


def _members(net: Net) -> list[dict[str, Any]]:
    r = net.call("supplier", "GET", "/workers")
    assert r.status_code == 200, r.text
    return list(r.json()["workers"])


def test_worker_joins_runs_the_task_and_is_paid(net: tuple[Net, str], tmp_path: Path) -> None:
    from eth_account import Account

    from gossip.eip712 import SigningDomain
    from p2pnode.executor import Receipt, verify_receipt

    n, worker = net
    joined = _wait(
        lambda: [m for m in _members(n) if m["worker"] == worker and m["active"]],
        240,  # announcements, the chain check, an offer, a join: slow on a loaded machine
        "the worker to join the hub",
    )[0]
    assert joined["pay_per_hour"] == str(PAY_PER_HOUR)
    seen = n.call("worker", "GET", "/workers").json()
    assert seen["role"] == "worker"
    assert seen["joined"]["hub_wallet"] == n.wallet.lower()

    # a slot that asks more than the worker signed it has is refused, naming what is short
    price = str(CHEAP * 3600)
    huge = {"slot_id": "big", "cpu_cores": 1, "ram_bytes": 2**60, "duration": 3600}
    refused = n.call(
        "supplier", "POST", "/slots", {**huge, "price_per_hour": price, "worker": worker}
    )
    assert refused.status_code == 409 and "RAM" in refused.text, refused.text
    body = {
        "slot_id": "w1",
        "cpu_cores": 1,
        "ram_bytes": 2**28,
        "duration": 3600,
        "price_per_hour": price,
        "worker": worker,
    }
    added = n.call("supplier", "POST", "/slots", body)
    assert added.status_code == 201, added.text
    assert added.json()["worker"] == worker
    # its ASK shows the worker's own scores: its CPU measured there, its link as stated
    (ask,) = _wait(lambda: n.asks_seen("con_a"), 60, "the remote slot's ASK")
    assert ask["benchmarks"]["net-download"] == WORKER_DOWNLOAD
    assert ask["benchmarks"]["cpu-sysbench-single"] > 0
    assert ask["benchmarks"]["cpu-sysbench-multi"] > 0

    deal = _accepted_deal(n, 600)
    deal_id = deal["deal_id"]
    script = "echo on the worker; echo done > /results/out.txt"
    started = n.call(
        "con_a", "POST", f"/tasks/{deal_id}", {"image": IMAGE, "command": ["sh", "-c", script]}
    )
    assert started.status_code == 201, started.text
    assert f"started on worker {worker}" in started.text

    logs = _logs(n, deal_id, follow="true")
    assert logs["stdout"] == b"on the worker\n"
    # on the hub: the task is listed on its worker, its output relayed from there
    assert hub_tasks(n)[str(deal_id)]["worker"] == worker
    assert _logs(n, deal_id, "supplier", follow="true")["stdout"] == b"on the worker\n"
    got = _results(n, deal_id, tmp_path / "out")
    assert got.status_code == 200, got.text
    out = got.json()
    assert (tmp_path / "out" / "out.txt").read_text() == "done\n"
    # the consumer's check: the hub (the deal's supplier) signed the receipt
    hub_addr = bytes.fromhex(Account.from_key(n.keys["supplier"]).address[2:])
    archive = Path(out["archive"]).read_bytes()
    domain = SigningDomain(chain_id=31337)
    receipt = Receipt.from_dict(out["receipt"])
    verify_receipt(
        receipt,
        domain=domain,
        supplier=hub_addr,
        deal_id=deal_id,
        results_sha256=hashlib.sha256(archive).digest(),
        stdout_sha256=hashlib.sha256(logs["stdout"]).digest(),
    )
    # the container ran on the worker: the worker signed the run, the hub kept its receipt
    assert (n.nodes["worker"].data_dir / "executor" / "tasks" / f"deal-{deal_id}").is_dir()
    assert not (n.nodes["supplier"].data_dir / "executor" / "tasks" / f"deal-{deal_id}").exists()
    kept = n.nodes["supplier"].data_dir / "workers" / "results" / f"deal-{deal_id}"
    theirs = Receipt.from_dict(json.loads((kept / "worker-receipt.json").read_text()))
    verify_receipt(
        theirs,
        domain=domain,
        supplier=bytes.fromhex(worker[2:]),
        deal_id=deal_id,
        results_sha256=hashlib.sha256(archive).digest(),
    )
    closed = n.call("con_a", "POST", f"/deals/{deal_id}/close")
    assert closed.status_code == 200, closed.text

    # payouts: every payout the hub recorded is a MinerPaid event on its wallet for
    # the worker, of that amount, and no more was recorded than the hours earned
    from web3 import Web3

    wallet = n.system.wallet(n.wallet)
    member = _wait(
        lambda: [m for m in _members(n) if m["worker"] == worker and int(m["paid"]) > 0],
        60,
        "a payout to the worker",
    )[0]
    assert int(member["paid"]) <= PAY_PER_HOUR * (member["hours"] + 1e-6)
    recorded = sorted(
        int(p["amount"])
        for p in n.call("supplier", "GET", "/workers").json()["payouts"]
        if p["worker"] == worker
    )
    miner = Web3.to_checksum_address(worker)
    on_chain = sorted(p.amount for p in wallet.payouts() if p.miner == miner)
    assert recorded and all(on_chain.count(a) >= recorded.count(a) for a in recorded)
    fee = 1_000  # open_net's lock_bps: the contract keeps this share until payday
    assert wallet.owed(miner) >= sum(a - a * fee // 10_000 for a in recorded) > 0
    # the operator's view: `sonm-p2p workers` on the hub, and the gauge
    shown = run_cli(
        "workers", "--data-dir", str(n.nodes["supplier"].data_dir), env={"COLUMNS": "250"}
    )
    assert shown.returncode == 0, shown.stderr
    assert worker in shown.stdout and "joined" in shown.stdout
    assert "sonm_workers_joined_workers 1.0" in n.call("supplier", "GET", "/metrics").text


def test_bad_worker_frames_get_a_signed_reason_and_the_cap_holds(
    net: tuple[Net, str], tmp_path: Path
) -> None:
    """A stranger speaks /sonm/worker/1 to the hub: every bad frame gets a signed
    refusal naming what was wrong; a good join is taken up to `workers.max_workers`
    (2 here, the real worker holds one), the next is refused, and a leave frees it."""
    import dataclasses

    import msgpack
    import trio
    from eth_account import Account
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from multiaddr import Multiaddr

    from gossip.eip712 import SigningDomain
    from p2pnode.hardware.detect import detect_hardware
    from p2pnode.signedframes import uvarint as _uvarint
    from p2pnode.worker import wire as w
    from tests.integration.test_deals_net import _exchange

    n, _ = net
    domain = SigningDomain(chain_id=31337)
    keys = [bytes.fromhex(k.removeprefix("0x")) for k in dev_private_keys(8)[6:8]]
    first, second = (bytes.fromhex(Account.from_key(k).address[2:]) for k in keys)
    hub = bytes.fromhex(Account.from_key(n.keys["supplier"]).address[2:])
    wallet = bytes.fromhex(n.wallet[2:])
    record = json.dumps(detect_hardware(tmp_path).to_dict(), sort_keys=True).encode()
    now = int(time.time())

    def join(who: bytes, key: bytes, **over: Any) -> w.JoinRequest:
        base = w.JoinRequest(
            who,
            hub,
            wallet,
            "/ip4/127.0.0.1/tcp/9",
            record,
            PAY_PER_HOUR,
            int(PAYOUT_PERIOD),
            1,
            now + 60,
        )
        return w.sign(dataclasses.replace(base, **over), domain, key)  # type: ignore[no-any-return]

    unsigned = msgpack.packb([*msgpack.unpackb(w.encode(join(first, keys[0])))[:-1], b""])
    forged = w.sign(join(first, keys[0]), domain, keys[1])
    cases: list[tuple[bytes, str]] = [
        (b"\xff\xff\x03", "frame: "),
        (b"\x03abc", "not valid msgpack"),
        (_uvarint(len(unsigned)) + unsigned, "signature: missing"),
        (w.frame(forged), "not made by the message's signer"),
        (w.frame(join(first, keys[0], valid_until=now - 5)), "request expired"),
        (w.frame(join(first, keys[0], wallet=bytes(20))), "addressed to another hub"),
        (w.frame(join(first, keys[0], pay_per_hour=1)), f"this hub pays {PAY_PER_HOUR}"),
        (w.frame(join(first, keys[0], hardware=b'{"cpu": 1}')), "hardware: "),
        (w.frame(join(first, keys[0], addr="/dns4/x/udp/1")), "addr: allowed"),
        (w.frame(join(first, keys[0])), "joined"),  # the second worker: at the cap
        (w.frame(join(second, keys[1])), "this hub has 2 workers, its most"),
        (w.frame(w.sign(w.LeaveNotice(first, hub, wallet, 2, now + 60), domain, keys[0])), "left"),
        (w.frame(join(second, keys[1])), "joined"),
    ]
    # and to the worker: orders from a hub it did not join, or not for it
    from p2pnode.executor.spec import TaskSpec
    from p2pnode.market import taskwire

    me_worker = bytes.fromhex(Account.from_key(n.keys["worker"]).address[2:])
    spec = taskwire.pack_spec(TaskSpec(image=IMAGE, command=("true",)))

    def order(worker: bytes) -> w.TaskOrder:
        msg = w.TaskOrder(first, worker, 99, first, spec, 1, 2**20, 0, 0, (), now + 600, now + 60)
        return w.sign(msg, domain, keys[0])  # type: ignore[no-any-return]

    to_worker: list[tuple[bytes, str]] = [
        (b"\x03abc", "not valid msgpack"),
        (w.frame(join(first, keys[0])), "TASK or LOGS or RESULTS or STOP expected"),
        (w.frame(order(me_worker)), "has not joined the sender's hub"),
        (w.frame(order(second)), "addressed to another worker"),
        (
            w.frame(w.sign(w.ResultsOrder(first, me_worker, 1, now + 60), domain, keys[0])),
            "was not handed here by the sender",
        ),
    ]
    answers: list[Any] = []
    worker_answers: list[Any] = []
    info = n.nodes["supplier"].ready()
    assert info is not None
    target = info_from_p2p_addr(Multiaddr(info["addrs"][0]))
    winfo = n.nodes["worker"].ready()
    assert winfo is not None
    worker_target = info_from_p2p_addr(Multiaddr(winfo["addrs"][0]))

    async def main() -> None:
        from libp2p.custom_types import TProtocol

        from p2pnode.host import muxer_options, security_options

        kp = create_new_key_pair()
        host = new_host(key_pair=kp, sec_opt=security_options(kp), muxer_opt=muxer_options())
        async with host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            await host.connect(target)
            for payload, _ in cases:
                raw = await _exchange(host, target.peer_id, payload, TProtocol(w.PROTOCOL_ID))
                [frame] = w.reader().feed(raw)
                answers.append(w.decode(frame, domain, expect=(w.HubAnswer,)))
            await host.connect(worker_target)
            for payload, _ in to_worker:
                raw = await _exchange(
                    host, worker_target.peer_id, payload, TProtocol(w.PROTOCOL_ID)
                )
                [frame] = w.reader().feed(raw)
                worker_answers.append(w.decode(frame, domain, expect=(w.WorkerAnswer,)))

    trio.run(main)
    for answer, (_, reason) in zip(worker_answers, to_worker, strict=True):
        assert answer.worker == me_worker and not answer.ok and reason in answer.reason, answer
    for answer, (_, reason) in zip(answers, cases, strict=True):
        assert answer.hub == hub and reason in answer.reason, answer.reason
        assert answer.ok == (reason in ("joined", "left"))
    members = {m["worker"]: m for m in _members(n)}
    assert not members["0x" + first.hex()]["active"]
    assert members["0x" + second.hex()]["active"]
