"""A hub that never pays, between real daemons over loopback with anvil for the chain:
its stiffed worker's proof keeps a worker that gives it no trust at all off the hub.

Hub B takes one worker and its wallet holds nothing beyond the deposit the DAO
freezes, so every payout is refused. w0 joins it; w1, refused (B is full), waits.
No worker pre-trusts another, and neither has evidence about the other: each gives
the other no weight, so a plain "BAD" from w0 would move nothing at w1. Neither
runs poll rounds in the test's time (`poll_interval` is 10 minutes), so the one
way news about B reaches w1 is the question a worker asks about a hub before it
joins it. When B misses w0's first payday, w0 leaves B, and B is open again: the
very moment w1 would take the place. w1 asks about B first; w0's answer carries
its agreement as B's owner countersigned it; w1 checks the countersignature, that
its signer is the owner B's announcement named (checked on chain), and that B's
wallet paid w0 nothing since the start, warns itself off B, and never joins it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from contracts.anvil import dev_private_keys
from p2pnode.localnet import light_keystore, wait_ready
from tests.conftest import run_cli
from tests.integration.test_deals_net import ACCEPT_TIMEOUT, Net, _wait, open_net
from tests.integration.test_trust_net import DEPOSIT, _hubs, _joined, _metric, _workers_cfg

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(400)]

PAY = 3_600 * 10**12
PAYMENT_GRACE = 8.0


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Net, str]]:
    from eth_account import Account

    base = tmp_path_factory.mktemp("proof")
    # the network's own hub sets no pay: it takes no workers
    with open_net(base, ()) as n:
        keys = dev_private_keys(9)
        owner_b = Account.from_key(keys[5]).address
        wallet_b, _ = n.system.factory.create_wallet(sender=owner_b)
        n.system.token.transfer(wallet_b, DEPOSIT, sender=n.dao)
        n.system.wallet(wallet_b).register("hub-b", ["/ip4/127.0.0.1/tcp/4002"], sender=owner_b)
        light_keystore(base / "hub_b" / "keystore.json", keys[5])
        n.keys["hub_b"] = keys[5]
        n.start(
            "hub_b",
            "supplier",
            extra={
                "market": {
                    "accept_timeout": ACCEPT_TIMEOUT,
                    "reservation_ttl": 20.0,
                    "hub_wallet": wallet_b,
                },
                "workers": _workers_cfg(PAY, 1),
            },
        )
        wait_ready(n.nodes["hub_b"], time.monotonic() + 180)
        cfg = {
            # a loaded machine may take a while to carry the answers: 5 s for them
            "worker": {"check_interval": 1.0, "ask_wait": 5.0},
            "reputation": {
                "poll_interval": 600.0,  # no poll round: news comes by asking, or not at all
                "trust_interval": 2.0,
                "chain_interval": 1.0,
                "payment_grace": PAYMENT_GRACE,
            },
        }
        for i, key in enumerate(keys[6:8]):
            name = f"w{i}"
            light_keystore(base / name / "keystore.json", key)
            n.keys[name] = key
            n.start(name, "worker", extra=cfg)
        for name in ("w0", "w1"):
            wait_ready(n.nodes[name], time.monotonic() + 180)
        yield n, wallet_b.lower()


def _history(n: Net, name: str) -> list[dict[str, Any]]:
    body = n.call(name, "GET", "/workers").json()
    return list(body.get("history", []))


def test_a_stiffed_workers_proof_keeps_an_untrusting_worker_off_the_hub(
    net: tuple[Net, str],
) -> None:
    n, bad = net
    first = _wait(
        lambda: (j := {w: _joined(n, w) for w in ("w0", "w1")}) and any(j.values()) and j,
        120,
        "a worker to join B",
    )
    (stiffed,) = [w for w, hub in first.items() if hub == bad]
    other = "w1" if stiffed == "w0" else "w0"
    assert first[other] is None, first  # B takes one worker

    # B misses the first payday: its wallet refuses every payout
    _wait(
        lambda: _metric(n, "hub_b", "sonm_workers_payout_failures") >= 1,
        60,
        "B's wallet to refuse a payout",
    )
    # the stiffed worker leaves B by its own evidence; B is open again...
    _wait(lambda: _joined(n, stiffed) is None, 90, "the stiffed worker to leave B")

    # ...and the other worker asks again for B's offer (a full hub's is asked after
    # six looks), hears it open, asks the trust topic about B before joining, and
    # the stiffed worker's answer carries its proof
    view = _wait(
        lambda: (h := _hubs(n, other).get(bad)) and h["proven"] >= 1 and h["warning"] > 0 and h,
        90,
        "the other worker to hold the proof",
    )
    assert _metric(n, stiffed, "sonm_reputation_poll_proofs_sent") >= 1
    # it holds it with no trust in the stiffed worker: no weight went into the tally
    assert view["weight_negative"] == 0.0, view
    # and says so to its operator
    table = run_cli("hubs", "--data-dir", str(n.nodes[other].data_dir), env={"COLUMNS": "250"})
    assert table.returncode == 0, table.stderr
    assert "warned" in table.stdout and "1 proven" in table.stdout, table.stdout
    assert _metric(n, other, "sonm_reputation_poll_proofs_held") >= 1
    assert _metric(n, other, "sonm_reputation_poll_proofs_rejected") == 0
    # every question the other worker sent was one asked before a join: no poll round
    asked = _metric(n, other, "sonm_reputation_poll_questions_asked")
    assert asked >= 1 and _metric(n, other, "sonm_reputation_poll_questions_sent") == asked
    assert _metric(n, other, "sonm_workers_asked") >= 1

    def heard_b() -> dict[str, Any] | None:
        hubs = n.call(other, "GET", "/workers").json()["hubs"]
        return next((h for h in hubs if h["wallet"].lower() == bad and h["open"]), None)

    assert _wait(heard_b, 30, "B's offer heard open")["warned"] is True
    time.sleep(3.0)  # three more looks at the hubs with B open
    assert _joined(n, other) is None
    assert _hubs(n, other)[bad]["warning"] > 0
    assert not [m for m in n.call("hub_b", "GET", "/workers").json()["workers"] if m["active"]]
    # B was open from the moment the stiffed worker left, and the other worker
    # never joined it
    assert [m for m in _history(n, other) if m["hub_wallet"] == bad] == []
