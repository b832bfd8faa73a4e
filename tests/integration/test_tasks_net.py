"""A deal's task end to end, between real daemons over loopback: anvil for the chain,
podman for the containers. A BID is matched and the deal accepted (the network of
tests/integration/test_deals_net.py), the consumer hands its task to the hub over
/sonm/task/1, the task runs under the slot's limits, its logs reach the consumer,
and its results arrive with a signed receipt that verifies; a tampered archive is
refused, and closing the deal early stops the task.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from p2pnode.api.auth import read_token
from tests.conftest import run_cli
from tests.executor.conftest import IMAGE, _engine_problem
from tests.integration.test_deals_net import CHEAP, Net, _wait, open_net

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SLOT_RAM = 2**28  # what Net.bid asks for
SLOT_CORES = 1


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    problem = _engine_problem()
    if problem is not None:
        if os.environ.get("SONM_REQUIRE_ENGINE") == "1":
            pytest.fail(f"{problem}; SONM_REQUIRE_ENGINE=1")
        pytest.skip(f"{problem}; set SONM_REQUIRE_ENGINE=1 to fail instead")
    hub = {"executor": {"allowed_images": [IMAGE]}}
    with open_net(tmp_path_factory.mktemp("tasks"), ("con_a",), hub) as n:
        body = {
            "slot_id": "t1",
            "cpu_cores": SLOT_CORES,
            "ram_bytes": SLOT_RAM,
            "duration": 3600,
            "price_per_hour": str(CHEAP * 3600),
        }
        added = n.call("supplier", "POST", "/slots", body)
        assert added.status_code == 201, added.text
        yield n


def _accepted_deal(net: Net, duration: int) -> dict[str, Any]:
    before = {d["deal_id"] for d in net.deals("con_a")}
    net.bid("con_a", duration=duration, price_per_hour=CHEAP * 3600)
    return _wait(  # type: ignore[no-any-return]
        lambda: [
            d
            for d in net.deals("con_a")
            if d["status"] == "accepted" and d["deal_id"] not in before
        ],
        60,
        "the consumer's deal to be accepted",
    )[0]


def _logs(net: Net, deal_id: int, node_name: str = "con_a", **params: Any) -> dict[str, bytes]:
    """A task's output through a node's API: the consumer's (asked of the hub), or on
    the hub (`supplier`), what it serves from its engine or relays from its worker."""
    node = net.nodes[node_name]
    info, token = node.ready(), read_token(node.data_dir)
    assert info and token
    out: dict[str, bytes] = {"stdout": b"", "stderr": b"", "end": b""}
    with httpx.stream(
        "GET",
        f"{info['api_url']}/tasks/{deal_id}/logs",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    ) as resp:
        assert resp.status_code == 200, resp.read()
        for line in resp.iter_lines():
            record = json.loads(line)
            assert record["stream"] != "error", record
            out[record["stream"]] += base64.b64decode(record["data"])
    return out


def hub_tasks(net: Net) -> dict[str, Any]:
    """The hub's web-view `tasks` section: the first event of its live feed."""
    node = net.nodes["supplier"]
    info, token = node.ready(), read_token(node.data_dir)
    assert info and token
    with httpx.stream(
        "GET",
        f"{info['api_url']}/ui/events",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: "):
                return json.loads(line[6:])["tasks"]  # type: ignore[no-any-return]
    raise AssertionError("the feed sent no snapshot")


def _results(net: Net, deal_id: int, dest: Path) -> httpx.Response:
    def ready() -> httpx.Response | None:
        r = net.call("con_a", "POST", f"/tasks/{deal_id}/results", {"dest": str(dest)})
        return None if r.status_code == 409 and "not finished" in r.text else r

    return _wait(ready, 30, "the task to finish")  # type: ignore[no-any-return]


def test_task_runs_under_the_slot_and_its_results_verify(net: Net, tmp_path: Path) -> None:
    from eth_account import Account

    from gossip.eip712 import SigningDomain
    from p2pnode.executor import Receipt, verify_receipt

    deal = _accepted_deal(net, 600)
    deal_id = deal["deal_id"]
    # an image off the hub's allow-list is refused with the reason; nothing runs
    refused = net.call("con_a", "POST", f"/tasks/{deal_id}", {"image": "docker.io/library/alpine"})
    assert refused.status_code == 409 and "allow" in refused.text, refused.text
    script = (
        "cat /sys/fs/cgroup/memory.max 2>/dev/null "
        "|| cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
        "cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo "
        "$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us); "
        "for i in 1 2 3; do echo line $i; sleep 0.2; done; "
        "echo warn >&2; echo done > /results/out.txt"
    )
    started = run_cli(
        *("task", "start", "--data-dir", str(net.nodes["con_a"].data_dir), str(deal_id)),
        *("--image", IMAGE, "--", "sh", "-c", script),
    )
    assert started.returncode == 0, started.stderr
    assert f"task deal-{deal_id} of deal {deal_id}: started" in started.stdout
    again = net.call("con_a", "POST", f"/tasks/{deal_id}", {"image": IMAGE})
    assert again.status_code == 409 and "exists already" in again.text
    logs = _logs(net, deal_id, follow="true")
    lines = logs["stdout"].decode().splitlines()
    # the slot's memory limit, then its CPU quota: quota / period is the slot's cores
    assert lines[0] == str(SLOT_RAM) and lines[2:] == ["line 1", "line 2", "line 3"], lines
    quota, period = lines[1].split()
    assert int(quota) == SLOT_CORES * int(period), lines[1]
    assert logs["stderr"] == b"warn\n" and logs["end"] in (b"running", b"finished")
    tail = run_cli(
        *("task", "logs", "--data-dir", str(net.nodes["con_a"].data_dir), str(deal_id)),
        *("--tail", "1"),
    )
    assert tail.returncode == 0 and tail.stdout == "line 3\n" and tail.stderr == "warn\n"
    # the hub's operator sees the same output, and the task among those the hub runs
    # (the end marker is the state when each stream ended: the task may have finished
    # between the two reads)
    hub_logs = _logs(net, deal_id, "supplier", follow="true")
    assert hub_logs["end"] in (b"running", b"finished")
    assert {k: v for k, v in hub_logs.items() if k != "end"} == {
        k: v for k, v in logs.items() if k != "end"
    }
    task = hub_tasks(net)[str(deal_id)]
    assert task["worker"] == "local" and task["image"] == IMAGE
    assert task["state"] in ("running", "finished") and task["deal_status"] == "accepted"

    got = _results(net, deal_id, tmp_path / "out")
    assert got.status_code == 200, got.text
    body = got.json()
    assert "out.txt" in body["files"]
    assert (tmp_path / "out" / "out.txt").read_text() == "done\n"
    receipt = Receipt.from_dict(body["receipt"])
    supplier = bytes.fromhex(Account.from_key(net.keys["supplier"]).address[2:])
    archive = Path(body["archive"]).read_bytes()
    verify_receipt(
        receipt,
        domain=SigningDomain(chain_id=31337),
        supplier=supplier,
        deal_id=deal_id,
        results_sha256=hashlib.sha256(archive).digest(),
        stdout_sha256=hashlib.sha256(logs["stdout"]).digest(),
        stderr_sha256=hashlib.sha256(logs["stderr"]).digest(),
    )
    assert receipt.exit_code == 0 and receipt.reason == "exited"

    # the hub's archive changed after it signed: the consumer refuses it
    served = net.nodes["supplier"].data_dir / "executor" / "tasks" / f"deal-{deal_id}"
    tar = served / "results.tar"
    data = bytearray(tar.read_bytes())
    data[600] ^= 0xFF
    tar.write_bytes(bytes(data))
    bad = net.call("con_a", "POST", f"/tasks/{deal_id}/results", {"dest": str(tmp_path / "bad")})
    assert bad.status_code == 502 and "does not match the receipt" in bad.text, bad.text
    assert list((tmp_path / "bad").iterdir()) == []  # nothing unpacked
    closed = net.call("con_a", "POST", f"/deals/{deal_id}/close")
    assert closed.status_code == 200, closed.text


def test_closing_the_deal_early_stops_its_task(net: Net, tmp_path: Path) -> None:
    _wait(lambda: net.asks_seen("con_a"), 30, "the slot's fresh ASK")
    deal = _accepted_deal(net, 600)
    deal_id = deal["deal_id"]
    start = {"image": IMAGE, "command": ["sh", "-c", "echo up; sleep 600"]}
    started = net.call("con_a", "POST", f"/tasks/{deal_id}", start)
    assert started.status_code == 201, started.text
    _wait(lambda: b"up" in _logs(net, deal_id)["stdout"], 20, "the task's first line")
    token = net.system.token
    consumer = net.system.chain.w3.eth.account.from_key(net.keys["con_a"]).address
    wallet_before, consumer_before = token.balance_of(net.wallet), token.balance_of(consumer)
    t0 = time.monotonic()
    closed = net.call("con_a", "POST", f"/deals/{deal_id}/close")
    assert closed.status_code == 200, closed.text
    got = _results(net, deal_id, tmp_path / "out")
    assert got.status_code == 200, got.text
    assert got.json()["receipt"]["reason"] == "closed"
    assert time.monotonic() - t0 < 30
    # the split for the time the deal ran, exactly, with its task running
    chain_deal = net.system.deals.deal(deal_id)
    [closed_ev] = net.system.deals.events(names=["DealClosed"])[-1:]
    assert closed_ev.args["deal_id"] == deal_id and closed_ev.args["preterm"] is True
    elapsed = closed_ev.args["timestamp"] - chain_deal.start_time
    assert 0 <= elapsed < deal["duration"]
    paid, refunded = chain_deal.paid, chain_deal.refunded
    assert paid == chain_deal.price * elapsed and paid + refunded == chain_deal.escrow
    assert token.balance_of(net.wallet) - wallet_before == paid
    assert token.balance_of(consumer) - consumer_before == refunded


def test_blob_input_logs_since_and_a_follower_across_a_consumer_restart(
    net: Net, tmp_path: Path
) -> None:
    """A 3 MB input blob named by hash is fetched by the hub from the consumer and
    checked (a wrong hash is refused with the reason, nothing recorded); `task logs
    --since` gives what was written after a time; and `task logs --follow` goes on
    across a kill -9 and restart of the consumer's daemon with no line lost or
    printed twice."""
    import signal
    import subprocess
    import sys

    from p2pnode.localnet import wait_ready
    from tests.conftest import ROOT

    _wait(lambda: net.asks_seen("con_a"), 30, "the slot's fresh ASK")
    deal_id = _accepted_deal(net, 600)["deal_id"]
    data_dir = str(net.nodes["con_a"].data_dir)
    blob = tmp_path / "in.bin"
    blob.write_bytes(os.urandom(3 * 2**20))
    digest = hashlib.sha256(blob.read_bytes()).hexdigest()

    wrong = {
        "image": IMAGE,
        "command": ["true"],
        "blobs": {"data/in.bin": {"file": str(blob), "sha256": "ab" * 32, "size": 3 * 2**20}},
    }
    refused = net.call("con_a", "POST", f"/tasks/{deal_id}", wrong)
    assert refused.status_code == 409, refused.text
    assert f"blob data/in.bin: sha256 {digest} does not match the {'ab' * 32}" in refused.text

    lines = 80
    # the lines begin when the test says so (a file it puts into the task's work dir,
    # as the hub's disk is this machine's): the follower's own start takes seconds here
    script = (
        "sha256sum data/in.bin | cut -c1-64; echo early; while [ ! -e go ]; do sleep 0.1; done; "
        f"i=0; while [ $i -lt {lines} ]; do i=$((i+1)); echo line $i; sleep 0.1; done"
    )
    started = run_cli(
        *("task", "start", "--data-dir", data_dir, str(deal_id), "--image", IMAGE),
        *("--blob", f"data/in.bin={blob}", "--", "sh", "-c", script),
    )
    assert started.returncode == 0, started.stderr  # not "exists already": nothing was kept
    assert f"task deal-{deal_id} of deal {deal_id}: started" in started.stdout

    out_path = tmp_path / "follow.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SONM_")}
    command = [sys.executable, "-m", "p2pnode.cli.main", "task", "logs", "--follow"]
    with open(out_path, "wb") as out:
        follower = subprocess.Popen(
            [*command, "--data-dir", data_dir, str(deal_id)],
            stdout=out,
            stderr=subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
    try:
        _wait(lambda: b"early\n" in out_path.read_bytes(), 60, "the task's first lines")
        time.sleep(0.2)
        since = time.time()
        time.sleep(0.2)
        work = net.nodes["supplier"].data_dir / "executor" / "tasks" / f"deal-{deal_id}" / "work"
        (work / "go").touch()
        _wait(lambda: b"line 5\n" in out_path.read_bytes(), 30, "the task's 5th line")
        consumer = net.nodes["con_a"]
        consumer.proc.send_signal(signal.SIGKILL)
        consumer.proc.wait(10)
        at_kill = out_path.read_bytes().count(b"\n")
        wait_ready(net.start("con_a", "consumer"), time.monotonic() + 60)
        _, err = follower.communicate(timeout=90)
        assert follower.returncode == 0, err
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait(10)
    expected = f"{digest}\nearly\n" + "".join(f"line {i}\n" for i in range(1, lines + 1))
    whole = _logs(net, deal_id)["stdout"].decode()
    assert whole == expected  # all of it, at the hub
    assert at_kill < lines  # the restart fell while the task was still writing
    assert out_path.read_text() == expected  # each line once, in order

    later = run_cli("task", "logs", "--data-dir", data_dir, str(deal_id), "--since", str(since))
    assert later.returncode == 0, later.stderr
    assert later.stdout == "".join(f"line {i}\n" for i in range(1, lines + 1))
    hour_ago = int((time.time() - 3600) * 1000)
    both = _logs(net, deal_id, since_ms=hour_ago, tail=2)["stdout"].decode()
    assert both == f"line {lines - 1}\nline {lines}\n"  # the later of since and tail

    got = _results(net, deal_id, tmp_path / "out")
    assert got.status_code == 200, got.text
    assert got.json()["receipt"]["exit_code"] == 0
    closed = net.call("con_a", "POST", f"/deals/{deal_id}/close")  # the slot for the next test
    assert closed.status_code == 200, closed.text


def _fresh_deal(net: Net, duration: int) -> dict[str, Any]:
    """The slot's ASK back on offer (the test before closed its deal), then a deal on it."""
    _wait(lambda: net.asks_seen("con_a"), 30, "the slot's fresh ASK")
    return _accepted_deal(net, duration)


OOM_DEAL_SECONDS = 20  # time to start the task, see it killed and fetch its results


def test_an_oom_killed_task_is_reported_with_its_exit_code_and_reason(
    net: Net, tmp_path: Path
) -> None:
    from eth_account import Account

    from gossip.eip712 import SigningDomain
    from p2pnode.executor import Receipt, verify_receipt

    # a short deal, left to reach its end: the hub is paid exactly price x duration
    token = net.system.token
    wallet_before = token.balance_of(net.wallet)
    deal_id = _fresh_deal(net, OOM_DEAL_SECONDS)["deal_id"]
    # one buffer larger than the slot's memory (memory and swap limits are equal)
    hog = f"echo filling; exec dd if=/dev/zero of=/dev/null bs={SLOT_RAM + 2**26} count=1"
    started = net.call("con_a", "POST", f"/tasks/{deal_id}", {"image": IMAGE,
                       "command": ["sh", "-c", hog]})  # fmt: skip
    assert started.status_code == 201, started.text
    got = _results(net, deal_id, tmp_path / "out")
    assert got.status_code == 200, got.text
    body = got.json()
    receipt = Receipt.from_dict(body["receipt"])
    assert receipt.reason == "oom-killed" and receipt.exit_code == 137, body["receipt"]
    verify_receipt(
        receipt,
        domain=SigningDomain(chain_id=31337),
        supplier=bytes.fromhex(Account.from_key(net.keys["supplier"]).address[2:]),
        deal_id=deal_id,
        results_sha256=hashlib.sha256(Path(body["archive"]).read_bytes()).digest(),
    )
    assert _logs(net, deal_id)["stdout"] == b"filling\n"
    closed = _wait(
        lambda: (x := net.deal("supplier", deal_id)) and x["status"] == "closed" and x,
        OOM_DEAL_SECONDS + 30,
        "the hub to close the deal at its end",
    )
    assert closed["paid"] == str(CHEAP * OOM_DEAL_SECONDS) and closed["refunded"] == "0"
    assert token.balance_of(net.wallet) - wallet_before == CHEAP * OOM_DEAL_SECONDS


def test_hub_killed_mid_task_restarts_reattaches_and_the_consumer_gets_the_results(
    net: Net, tmp_path: Path
) -> None:
    """kill -9 of the hub while its task runs: the container runs on; the restarted
    hub finds it by label and re-attaches its logs and deadline; the task, still
    running, ends after the restart, and the consumer fetches the whole output and
    results of that one run."""
    import signal

    from p2pnode.cli.demo import wait_ready
    from p2pnode.executor import Receipt

    deal_id = _fresh_deal(net, 600)["deal_id"]
    # the task runs until the test drops a file into its work dir (a bind mount of
    # the hub's task directory): it is certainly running across the kill and restart
    script = (
        "echo begun; while [ ! -e go ]; do sleep 0.2; done; "
        "echo ended; echo kept > /results/out.txt"
    )
    started = net.call("con_a", "POST", f"/tasks/{deal_id}", {"image": IMAGE,
                       "command": ["sh", "-c", script]})  # fmt: skip
    assert started.status_code == 201, started.text
    _wait(lambda: b"begun" in _logs(net, deal_id)["stdout"], 20, "the task's first line")
    supplier = net.nodes["supplier"]
    info = supplier.ready()
    assert info is not None
    port = int(info["addrs"][0].split("/tcp/", 1)[1].split("/", 1)[0])
    killed_at = time.time()
    supplier.proc.send_signal(signal.SIGKILL)
    supplier.proc.wait(10)
    # the consumer keeps the hub's address from the ASK: the hub comes back on it
    restarted = net.start("supplier", "supplier", hub=True, port=port)
    wait_ready(restarted, time.monotonic() + 90)
    # the restarted hub serves the running task's log, re-read from the engine
    _wait(lambda: _logs(net, deal_id)["stdout"] == b"begun\n", 30, "the re-attached log")
    work = net.nodes["supplier"].data_dir / "executor" / "tasks" / f"deal-{deal_id}" / "work"
    (work / "go").write_text("")
    got = _results(net, deal_id, tmp_path / "out")
    assert got.status_code == 200, got.text
    body = got.json()
    receipt = Receipt.from_dict(body["receipt"])
    assert receipt.reason == "exited" and receipt.exit_code == 0, body["receipt"]
    assert receipt.started_at_ms / 1000 < killed_at  # the run from before the kill
    assert receipt.ended_at_ms / 1000 > killed_at
    assert (tmp_path / "out" / "out.txt").read_text() == "kept\n"
    logs = _logs(net, deal_id)
    assert logs["stdout"] == b"begun\nended\n"  # the whole output of the one run
    assert receipt.stdout_sha256 == hashlib.sha256(logs["stdout"]).digest()
    hub_row = net.deal("supplier", deal_id)
    assert hub_row is not None and hub_row["status"] == "accepted"  # the deal runs on
    closed = net.call("con_a", "POST", f"/deals/{deal_id}/close")
    assert closed.status_code == 200, closed.text


def test_task_starts_the_hub_must_refuse_reach_the_sender_with_the_reason(net: Net) -> None:
    """Over /sonm/task/1 from a host of the test's own: a start signed by someone who is
    not the deal's consumer, one whose spec is malformed, and one for a deal no longer
    accepted each get the hub's signed refusal naming why; nothing runs."""
    import trio
    from eth_account import Account
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from multiaddr import Multiaddr

    from gossip.eip712 import SigningDomain
    from p2pnode.executor import TaskSpec
    from p2pnode.host import muxer_options, security_options
    from p2pnode.market import taskwire as w
    from tests.integration.test_deals_net import _exchange

    domain = SigningDomain(chain_id=31337)
    consumer_key = bytes.fromhex(net.keys["con_a"].removeprefix("0x"))
    consumer = bytes.fromhex(Account.from_key(consumer_key).address[2:])
    stranger = Account.create()
    hub = bytes.fromhex(Account.from_key(net.keys["supplier"]).address[2:])
    info = net.nodes["supplier"].ready()
    assert info is not None
    target = info_from_p2p_addr(Multiaddr(info["addrs"][0]))
    spec = w.pack_spec(TaskSpec(image=IMAGE, command=("sh", "-c", "echo never")))
    deal_id = _fresh_deal(net, 600)["deal_id"]

    def start(key: bytes, signer: bytes, packed: bytes) -> bytes:
        msg = w.TaskStart(signer, deal_id, packed, int(time.time()) + 60)
        return w.frame(w.sign(msg, domain, key))

    async def ask(payloads: list[bytes]) -> list[Any]:
        out: list[Any] = []
        kp = create_new_key_pair()
        host = new_host(key_pair=kp, sec_opt=security_options(kp), muxer_opt=muxer_options())
        async with host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            await host.connect(target)
            for payload in payloads:
                raw = await _exchange(host, target.peer_id, payload, TProtocol(w.PROTOCOL_ID))
                [frame] = w.reader().feed(raw)
                out.append(w.decode(frame, domain, expect=(w.TaskAnswer,)))
        return out

    stranger_key = bytes(stranger.key)
    stranger_addr = bytes.fromhex(stranger.address[2:])
    answers = trio.run(
        ask,
        [
            start(stranger_key, stranger_addr, spec),
            start(consumer_key, consumer, b"\x93\x01\x02"),  # not a spec's msgpack array
        ],
    )
    closed = net.call("con_a", "POST", f"/deals/{deal_id}/close")
    assert closed.status_code == 200, closed.text
    [late] = trio.run(ask, [start(consumer_key, consumer, spec)])
    reasons = [a.reason for a in [*answers, late]]
    assert all(a.ok == 0 and a.hub == hub and a.deal_id == deal_id for a in [*answers, late])
    assert f"deal {deal_id} is not the sender's" in reasons[0], reasons
    assert "spec" in reasons[1], reasons
    assert f"deal {deal_id} is " in reasons[2] and "not accepted" in reasons[2], reasons
    tasks = net.nodes["supplier"].data_dir / "executor" / "tasks"
    assert not (tasks / f"deal-{deal_id}").exists()  # nothing was recorded, nothing ran


def test_a_task_file_started_and_its_results_fetched_through_the_cli(
    net: Net, tmp_path: Path
) -> None:
    """`sonm-p2p task start DEAL --file task.toml` and `sonm-p2p task results DEAL -o DIR`,
    the commands an operator types, against the live network."""
    deal_id = _fresh_deal(net, 600)["deal_id"]
    data_dir = str(net.nodes["con_a"].data_dir)
    task_file = tmp_path / "task.toml"
    task_file.write_text(
        f'image = "{IMAGE}"\n'
        'command = ["sh", "-c", "wc -l < data/in.txt > /results/count; echo $MODE"]\n'
        "[env]\n"
        'MODE = "fast"\n'
        "[[inputs]]\n"
        'path = "data/in.txt"\n'
        'content = "one\\ntwo\\n"\n'
    )
    started = run_cli(
        "task", "start", "--data-dir", data_dir, str(deal_id), "--file", str(task_file)
    )
    assert started.returncode == 0, started.stderr
    assert f"task deal-{deal_id} of deal {deal_id}: started" in started.stdout
    out = tmp_path / "out"

    def fetched() -> Any:
        got = run_cli("task", "results", "--data-dir", data_dir, str(deal_id), "-o", str(out))
        return None if got.returncode != 0 and "not finished" in got.stderr else got

    got = _wait(fetched, 30, "the task to finish")
    assert got.returncode == 0, got.stderr
    assert f"deal {deal_id}: " in got.stdout and "receipt verified (exit 0, exited" in got.stdout
    assert (out / "count").read_text().strip() == "2"
    assert _logs(net, deal_id)["stdout"] == b"fast\n"
    closed = net.call("con_a", "POST", f"/deals/{deal_id}/close")
    assert closed.status_code == 200, closed.text


def test_a_consumer_gone_mid_download_leaves_the_other_deals_served(
    net: Net, tmp_path: Path
) -> None:
    """A host holding the consumer's key asks for a large archive, takes its header and a
    few bytes, then vanishes mid-download; the same hub still serves another deal's logs
    and results, and the first archive whole to the consumer's node afterwards."""
    import trio
    from eth_account import Account
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from multiaddr import Multiaddr

    from gossip.eip712 import SigningDomain
    from p2pnode.host import muxer_options, security_options
    from p2pnode.market import taskwire as w

    def run_one(script: str) -> int:
        deal_id = _fresh_deal(net, 600)["deal_id"]
        body = {"image": IMAGE, "command": ["sh", "-c", script]}
        started = net.call("con_a", "POST", f"/tasks/{deal_id}", body)
        assert started.status_code == 201, started.text
        _wait(lambda: hub_tasks(net)[str(deal_id)]["state"] == "finished", 30, "the task's end")
        closed = net.call("con_a", "POST", f"/deals/{deal_id}/close")  # the slot, for the next
        assert closed.status_code == 200, closed.text
        return deal_id  # type: ignore[no-any-return]

    big = run_one("head -c 33554432 /dev/urandom > /results/big.bin")
    small = run_one("echo second; echo ok > /results/ok.txt")
    domain = SigningDomain(chain_id=31337)
    key = bytes.fromhex(net.keys["con_a"].removeprefix("0x"))
    consumer = bytes.fromhex(Account.from_key(key).address[2:])
    info = net.nodes["supplier"].ready()
    assert info is not None
    target = info_from_p2p_addr(Multiaddr(info["addrs"][0]))
    seen: dict[str, Any] = {}

    async def main() -> None:
        kp = create_new_key_pair()
        host = new_host(key_pair=kp, sec_opt=security_options(kp), muxer_opt=muxer_options())
        async with host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            await host.connect(target)
            stream = await host.new_stream(target.peer_id, [TProtocol(w.PROTOCOL_ID)])
            request = w.ResultsRequest(consumer, big, int(time.time()) + 60)
            await stream.write(w.frame(w.sign(request, domain, key)))
            reader, got = w.reader(), 0
            with trio.fail_after(30):
                while not seen.get("header"):
                    frames = reader.feed(await stream.read(65536), at_most=1)
                    if frames:
                        seen["header"] = w.decode(frames[0], domain, expect=(w.ResultsHeader,))
                got = len(reader.pending())
                while got < 2**20:  # the download is under way
                    got += len(await stream.read(65536))
            seen["got"] = got
            # then the consumer is gone: the connection drops mid-transfer, no goodbye
            await host.disconnect(target.peer_id)

    trio.run(main)
    assert seen["header"].size > 2**25 and seen["got"] < seen["header"].size
    logs = _logs(net, small)
    assert logs["stdout"] == b"second\n"
    got = _results(net, small, tmp_path / "small")
    assert got.status_code == 200, got.text
    assert (tmp_path / "small" / "ok.txt").read_text() == "ok\n"
    whole = _results(net, big, tmp_path / "big")
    assert whole.status_code == 200, whole.text
    assert (tmp_path / "big" / "big.bin").stat().st_size == 2**25
