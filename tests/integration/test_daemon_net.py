"""Real `sonm-p2p run` processes on loopback: discovery from one seed, kill -9 and
restart, the API's token, refusal of plaintext, and a fast SIGTERM."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import multiaddr
import pytest
import trio

from p2pnode.api.auth import read_token
from p2pnode.cli.demo import NodeProcess, wait_ready
from tests.conftest import free_port, run_cli

pytestmark = pytest.mark.integration

# seconds a daemon may take to come up: its imports alone are seconds of CPU, and
# on two cores it may start beside the other test process's daemons
STARTUP_S = 90

FAST = {"redial_interval": 0.5, "redial_max_interval": 4.0, "px_interval": 2.0}


def _connected(node: NodeProcess) -> set[str]:
    data = node.api("/peers?connected_only=true")
    return {p["peer_id"] for p in data["peers"]} if data else set()


def _wait_for(cond: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.25)
    return cond()


@pytest.mark.slow
def test_six_daemons_from_one_seed_then_kill9_and_restart(
    spawn_node: Callable[..., NodeProcess],
) -> None:
    seed = spawn_node("seed", "seed", min_connections=5, **FAST)
    seed_addr = wait_ready(seed, time.monotonic() + STARTUP_S)["addrs"][0]
    nodes = [
        spawn_node(f"n{i}", "consumer", [seed_addr], min_connections=5, **FAST) for i in range(5)
    ]
    ids = {n.name: wait_ready(n, time.monotonic() + STARTUP_S)["peer_id"] for n in nodes}

    # every daemon holds >= 4 peers within 20 s of running, told only the seed
    t0 = time.monotonic()
    assert _wait_for(lambda: all(len(_connected(n)) >= 4 for n in nodes), 20), {
        n.name: len(_connected(n)) for n in nodes
    }
    print(f"5 daemons reached >= 4 peers {time.monotonic() - t0:.1f}s after all were ready")

    victim = nodes[2]
    known_before = victim.api("/peers")["known"]
    assert known_before >= 5
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(10)

    # its peer table is on disk after kill -9 (WAL: committed rows survive)
    db = sqlite3.connect(victim.data_dir / "node.sqlite3")
    stored = {row[0] for row in db.execute("SELECT peer_id FROM peers")}
    db.close()
    seed_id = seed_addr.rsplit("/", 1)[1]
    assert seed_id in stored and len(stored - {ids["n2"], seed_id}) >= 4, stored

    # the others notice the loss
    others = [n for n in nodes if n is not victim]
    assert _wait_for(lambda: all(ids["n2"] not in _connected(n) for n in others), 10)

    restarted = spawn_node("n2", "consumer", [seed_addr], min_connections=5, **FAST)
    info = wait_ready(restarted, time.monotonic() + STARTUP_S)
    assert info["peer_id"] == ids["n2"]  # same identity from the data dir
    assert restarted.api("/peers")["known"] >= len(stored)  # the table was reloaded, not relearned
    t1 = time.monotonic()
    assert _wait_for(lambda: len(_connected(restarted)) >= 4, 20), _connected(restarted)
    print(f"restarted daemon back to >= 4 peers in {time.monotonic() - t1:.1f}s")
    assert _wait_for(lambda: sum(ids["n2"] in _connected(n) for n in others) >= 3, 10)


def test_api_needs_the_token(spawn_node: Callable[..., NodeProcess]) -> None:
    node = spawn_node("solo", "seed", **FAST)
    info = wait_ready(node, time.monotonic() + STARTUP_S)
    url = info["api_url"]
    assert url.startswith("http://127.0.0.1:")
    for path in ("/status", "/peers", "/metrics", "/openapi.json"):
        assert httpx.get(url + path, timeout=5).status_code == 401
        assert (
            httpx.get(url + path, headers={"Authorization": "Bearer nope"}, timeout=5).status_code
            == 401
        )
    token = (node.data_dir / "api.token").read_text().strip()
    ok = httpx.get(url + "/status", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert ok.status_code == 200 and ok.json()["peer_id"] == info["peer_id"]
    assert "pubsub" in ok.json()["services"]

    # the CLI reads the token and the API URL from the data dir
    status = run_cli("status", "--data-dir", str(node.data_dir))
    assert status.returncode == 0, status.stderr
    assert info["peer_id"] in status.stdout and "seed" in status.stdout
    peers = run_cli("peers", "--data-dir", str(node.data_dir), "--json")
    assert peers.returncode == 0, peers.stderr
    assert json.loads(peers.stdout)["connected"] == 0
    (node.data_dir / "api.token").write_text("not-the-token\n")
    refused = run_cli("status", "--data-dir", str(node.data_dir))
    assert refused.returncode == 2 and "refused the token" in refused.stderr


def test_status_without_a_running_node_is_one_line(tmp_path: Path) -> None:
    result = run_cli("status", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"sonm-p2p: error: no API token in {tmp_path}: has the node in this data dir run yet?"
    )
    (tmp_path / "api.token").write_text("t\n")
    env = {"SONM_API_PORT": str(free_port())}
    result = run_cli("peers", "--data-dir", str(tmp_path), env=env)
    assert result.returncode == 2 and "not answering" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


async def _dial_with(security: str, target: str) -> tuple[bool, str]:
    """Dial `target` from a bare py-libp2p host offering only `security`."""
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport

    from p2pnode.host import muxer_options, security_options

    kp = create_new_key_pair()
    if security == "plaintext":
        sec: dict[TProtocol, Any] = {TProtocol(PLAINTEXT_PROTOCOL_ID): InsecureTransport(kp)}
    else:
        sec = security_options(kp)
    host = new_host(key_pair=kp, sec_opt=sec, muxer_opt=muxer_options())
    listen = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
    async with host.run([listen]):
        try:
            with trio.fail_after(10):
                await host.connect(info_from_p2p_addr(multiaddr.Multiaddr(target)))
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return bool(host.get_connected_peers()), "connected"


def test_plaintext_dial_is_refused_noise_is_accepted(
    spawn_node: Callable[..., NodeProcess],
) -> None:
    node = spawn_node("target", "seed", **FAST)
    target = wait_ready(node, time.monotonic() + STARTUP_S)["addrs"][0]
    ok, why = trio.run(_dial_with, "plaintext", target)
    assert not ok, why
    assert "TooSlow" not in why  # refused in the security negotiation, not left hanging
    assert node.api("/status")["connections"] == 0
    ok, why = trio.run(_dial_with, "noise", target)  # the control: same dial, Noise offered
    assert ok, why


def _metric(node: NodeProcess, name: str) -> float | None:
    info, token = node.ready(), read_token(node.data_dir)
    assert info and token
    text = httpx.get(
        info["api_url"] + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=5
    ).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_sigterm_stops_within_two_seconds(spawn_node: Callable[..., NodeProcess]) -> None:
    seed = spawn_node("seed", "seed", **FAST)
    seed_addr = wait_ready(seed, time.monotonic() + STARTUP_S)["addrs"][0]
    node = spawn_node("node", "consumer", [seed_addr], **FAST)
    wait_ready(node, time.monotonic() + STARTUP_S)
    # a `run` process is one daemon: once ready, its start-up heap leaves the
    # collector's walks (p2pnode/heap.py), logged and exported
    assert _wait_for(lambda: "start-up heap frozen" in node.log_path.read_text(), 10)
    frozen = _metric(node, "sonm_gc_frozen_objects")
    assert frozen is not None and frozen > 10_000, frozen
    assert _wait_for(lambda: len(_connected(node)) == 1, 10)  # stop it while it has a live peer
    t0 = time.monotonic()
    node.proc.send_signal(signal.SIGTERM)
    code = node.proc.wait(5)
    took = time.monotonic() - t0
    assert code == 0
    assert took < 2.0, took
    assert not (node.data_dir / "ready.json").exists()  # it went through its clean exit path
