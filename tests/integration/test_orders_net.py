"""Real daemons: an ASK placed with `sonm-p2p order ask` on one node reaches another
node's order book over gossip, and `sonm-p2p order cancel` follows it. (The listing
command itself is tested against a served API in tests/node/test_orders_cli.py; here
the other node is polled through its API, a CLI process per poll costs seconds.)"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from p2pnode import keys
from p2pnode.api.auth import read_token
from p2pnode.cli.demo import NodeProcess, wait_ready
from tests.conftest import run_cli

pytestmark = pytest.mark.integration

# seconds a daemon may take to come up: its imports alone are seconds of CPU, and
# on two cores it may start beside the other test process's daemons
STARTUP_S = 90

FAST = {"redial_interval": 0.5, "redial_max_interval": 4.0, "px_interval": 2.0}
KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
PASSWORD = "orders-test"


def _orders(node: NodeProcess, query: str = "") -> list[dict[str, object]]:
    """Polled through the API directly: a CLI process per poll would cost seconds."""
    data = node.api("/orders" + query)
    return list(data["orders"]) if data else []


def _post(node: NodeProcess, path: str, body: dict[str, object]) -> httpx.Response:
    info, token = node.ready(), read_token(node.data_dir)
    assert info and token
    return httpx.post(
        info["api_url"] + path, json=body, headers={"Authorization": f"Bearer {token}"}
    )


def _metric(node: NodeProcess, name: str) -> float:
    info, token = node.ready(), read_token(node.data_dir)
    assert info and token
    text = httpx.get(
        info["api_url"] + "/metrics", headers={"Authorization": f"Bearer {token}"}
    ).text
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    return values[0] if values else 0.0


def _wait_for(cond: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.25)
    return cond()


@pytest.mark.slow
def test_an_ask_travels_and_its_cancellation_follows(
    spawn_node: Callable[..., NodeProcess], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys.import_private_key(tmp_path / "supplier" / "keystore.json", KEY, PASSWORD)
    monkeypatch.setenv(keys.PASSWORD_ENV, PASSWORD)  # inherited by the daemons
    seed = spawn_node("seed", "seed", **FAST)
    seed_addr = wait_ready(seed, time.monotonic() + STARTUP_S)["addrs"][0]
    supplier = spawn_node("supplier", "supplier", [seed_addr], **FAST)
    consumer = spawn_node("consumer", "consumer", [seed_addr], **FAST)
    for node in (supplier, consumer):
        wait_ready(node, time.monotonic() + STARTUP_S)

    placed = run_cli(
        *("order", "ask", "--data-dir", str(supplier.data_dir), "--price", "0.25"),
        *("--cpu", "4", "--ram", "8GiB", "--geo", "DE", "--json"),
    )
    assert placed.returncode == 0, placed.stderr
    order_id = json.loads(placed.stdout)["order"]["order_id"]

    # published at once, or re-sent by the supplier once its mesh has formed
    assert _wait_for(lambda: [o["order_id"] for o in _orders(consumer)] == [order_id], 20)
    [seen] = _orders(consumer, f"?side=ask&min_ram_bytes={4 * 2**30}&geo=DE")
    assert seen["own"] is False and seen["cpu_cores"] == 4 and seen["order_id"] == order_id
    assert seen["author"] == "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"

    # the consumer has no account: it can list, not sign
    refused = _post(consumer, "/orders", {"side": "bid", "price_per_hour": "1", "duration": 0})
    assert refused.status_code == 409 and "keys new" in refused.text

    # the supplier's account signed its peer record; it crossed the peers topic to the
    # consumer (and the seed) and passed the validator's two signature checks there
    assert _wait_for(lambda: _metric(supplier, "sonm_peer_topic_published") >= 1, 20)
    assert _wait_for(lambda: _metric(consumer, "sonm_peer_topic_received") >= 1, 20)
    assert _metric(consumer, "sonm_peer_topic_published") == 0  # no account: listens only
    # the consumer validated them in its two worker processes (node.validation's
    # default), none of which failed
    assert _metric(consumer, "sonm_pubsub_driver_validation_worker_processes") == 2
    assert _metric(consumer, "sonm_pubsub_driver_validation_worker_failures") == 0
    assert _metric(consumer, "sonm_pubsub_driver_validation_jobs") >= 2

    cancelled = run_cli("order", "cancel", "--data-dir", str(supplier.data_dir), order_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert _wait_for(lambda: _orders(consumer) == [], 20)
    assert [o["cancelled"] for o in _orders(consumer, "?include_cancelled=true")] == [True]
