"""Real daemons, real chain (anvil over JSON-RPC), real libp2p streams: a supplier's
slot becomes an ASK, a consumer's BID matches it, the two nodes reserve, propose
and accept a deal on the Deals registry, and close it at its end or early.

One network per module (seed, supplier, two consumers) and the tests run in file
order on it, each leaving the supplier's slots free or occupied as the next needs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio

from contracts.anvil import find_anvil
from p2pnode import localnet
from p2pnode.localnet import ACCEPT_TIMEOUT, LocalNet, wait_ready
from tests.conftest import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PRICE_PER_SECOND = 10**12  # wei; 0.0036 SNM per hour
CHEAP, DEAR = PRICE_PER_SECOND, 2 * PRICE_PER_SECOND
Net = LocalNet


def _wait(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    value = cond()
    assert value, f"timed out after {timeout} s waiting for {what}"
    return value


def _frame(payload: bytes) -> bytes:
    assert len(payload) < 128
    return bytes([len(payload)]) + payload


@contextlib.contextmanager
def open_net(
    base: Path,
    consumers: tuple[str, ...] = ("con_a", "con_b"),
    hub_config: dict[str, Any] | None = None,
    others: dict[str, tuple[str, int, dict[str, Any]]] | None = None,
) -> Iterator[Net]:
    """p2pnode.localnet's network (anvil, contracts, a registered hub wallet, a seed,
    the hub, `consumers` and `others`), or skip when anvil is missing (fail under
    SONM_REQUIRE_ANVIL=1)."""
    if find_anvil() is None:
        if os.environ.get("SONM_REQUIRE_ANVIL") == "1":
            pytest.fail("SONM_REQUIRE_ANVIL=1 but anvil is not installed")
        pytest.skip("anvil not installed (run scripts/setup-tools)")
    with localnet.open_net(base, consumers, hub_config, others) as n:
        yield n


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    with open_net(tmp_path_factory.mktemp("deals")) as n:
        yield n


def test_slots_fit_the_worker_and_become_asks(net: Net) -> None:
    d = str(net.nodes["supplier"].data_dir)
    price = f"{CHEAP * 3600}wei"
    too_big = run_cli(
        *("slot", "add", "--data-dir", d, "huge", "--cpu", "1", "--ram", "1000TiB"),
        *("--price", price, "--duration", "1h"),
    )
    assert too_big.returncode == 2
    assert "slot huge does not fit: RAM: asks 1024000 GiB" in too_big.stderr
    added = run_cli(
        *("slot", "add", "--data-dir", d, "s1", "--cpu", "1", "--ram", "512MiB"),
        *("--price", price, "--duration", "2h"),
    )
    assert added.returncode == 0, added.stderr
    body = {"slot_id": "s2", "cpu_cores": 1, "ram_bytes": 2**29, "duration": 7200}
    odd = net.call("supplier", "POST", "/slots", {**body, "price_per_hour": "3601"})
    assert odd.status_code == 422 and "multiple of 3600 wei" in odd.text
    dear = net.call("supplier", "POST", "/slots", {**body, "price_per_hour": str(DEAR * 3600)})
    assert dear.status_code == 201, dear.text
    slots = net.call("supplier", "GET", "/slots").json()["slots"]
    assert [s["slot_id"] for s in slots] == ["s1", "s2"]
    assert all(s["gpus"] == [] for s in slots)  # named GPUs: tests/market/test_slots.py
    # both consumers hear both ASKs, each naming the hub's wallet and address
    for name in ("con_a", "con_b"):
        asks = _wait(
            lambda name=name: len(net.asks_seen(name)) == 2 and net.asks_seen(name),
            30,
            f"{name} to see the ASKs",
        )
        assert {a["price_per_hour"] for a in asks} == {str(CHEAP * 3600), str(DEAR * 3600)}
        assert all(a["properties"]["hub-wallet"] == net.wallet.lower() for a in asks)
        assert all(a["cpu_cores"] == 1 and a["ram_bytes"] == 2**29 for a in asks)


def test_bid_to_accepted_deal_and_close_at_end_pays_the_hub_exactly(net: Net) -> None:
    token = net.system.token
    before = token.balance_of(net.wallet)
    bid_id = net.bid("con_a", duration=4, price_per_hour=CHEAP * 3600)
    deal = _wait(
        lambda: [d for d in net.deals("con_a") if d["status"] == "accepted"],
        30,
        "the consumer's deal to be accepted",
    )[0]
    assert deal["bid_id"] == bid_id and deal["role"] == "consumer"
    assert deal["price_per_second"] == str(CHEAP) and deal["escrow"] == str(CHEAP * 4)
    hub_view = _wait(lambda: net.deal("supplier", deal["deal_id"]), 10, "the hub's row")
    assert hub_view["role"] == "supplier" and hub_view["slot_id"] == "s1"
    assert hub_view["ask_id"] == deal["ask_id"]
    # the BID is withdrawn once its deal starts; the slot's ASK too
    _wait(
        lambda: net.call("con_a", "GET", f"/orders/{bid_id}").json()["cancelled"],
        10,
        "the BID to be cancelled",
    )
    _wait(
        lambda: deal["ask_id"] not in {a["order_id"] for a in net.asks_seen("con_b")},
        15,
        "the taken slot's ASK to be withdrawn",
    )
    # the hub closes it at its end: exactly price x duration reaches the wallet
    closed = _wait(
        lambda: (x := net.deal("supplier", deal["deal_id"])) and x["status"] == "closed" and x,
        30,
        "the hub to close the deal at its end",
    )
    assert closed["paid"] == str(CHEAP * 4) and closed["refunded"] == "0"
    assert token.balance_of(net.wallet) - before == CHEAP * 4
    _wait(
        lambda: (x := net.deal("con_a", deal["deal_id"])) and x["status"] == "closed",
        10,
        "the consumer to see the close",
    )
    # and the slot is on offer again, under a fresh ASK
    _wait(lambda: len(net.asks_seen("con_b")) == 2, 20, "a fresh ASK for the freed slot")


def test_two_consumers_race_for_one_slot_and_the_loser_takes_the_next(net: Net) -> None:
    bids = {
        name: net.bid(name, duration=3600, price_per_hour=DEAR * 3600)
        for name in ("con_a", "con_b")
    }
    got = {}
    for name in ("con_a", "con_b"):
        got[name] = _wait(
            lambda name=name: [
                d
                for d in net.deals(name)
                if d["status"] == "accepted" and d["bid_id"] == bids[name]
            ],
            40,
            f"{name}'s deal",
        )[0]
    a, b = got["con_a"], got["con_b"]
    assert a["ask_id"] != b["ask_id"]
    assert {a["price_per_second"], b["price_per_second"]} == {str(CHEAP), str(DEAR)}
    hub_rows = {d["deal_id"]: d for d in net.deals("supplier") if d["status"] == "accepted"}
    assert {hub_rows[a["deal_id"]]["slot_id"], hub_rows[b["deal_id"]]["slot_id"]} == {"s1", "s2"}
    # no consumer escrowed twice: every other deal of theirs was closed or cancelled
    for name in ("con_a", "con_b"):
        live = [d for d in net.deals(name) if d["status"] != "closed"]
        assert len(live) == 1


def test_preterm_close_splits_exactly(net: Net) -> None:
    token = net.system.token
    [deal] = [d for d in net.deals("con_a") if d["status"] == "accepted"]
    consumer = net.system.chain.w3.eth.account.from_key(net.keys["con_a"]).address
    wallet_before = token.balance_of(net.wallet)
    consumer_before = token.balance_of(consumer)
    time.sleep(1.5)
    done = run_cli(
        "deal",
        "close",
        "--data-dir",
        str(net.nodes["con_a"].data_dir),
        str(deal["deal_id"]),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    chain_deal = net.system.deals.deal(deal["deal_id"])
    [closed_ev] = net.system.deals.events(names=["DealClosed"])[-1:]
    assert closed_ev.args["deal_id"] == deal["deal_id"] and closed_ev.args["preterm"] is True
    elapsed = closed_ev.args["timestamp"] - chain_deal.start_time
    assert 1 <= elapsed < deal["duration"]
    paid, refunded = chain_deal.paid, chain_deal.refunded
    assert paid == chain_deal.price * elapsed and paid + refunded == chain_deal.escrow
    assert row["status"] == "closed" and row["paid"] == str(paid)
    assert token.balance_of(net.wallet) - wallet_before == paid
    assert token.balance_of(consumer) - consumer_before == refunded
    shown = run_cli("deal", "--data-dir", str(net.nodes["con_a"].data_dir), str(deal["deal_id"]))
    assert shown.returncode == 0 and "closed" in shown.stdout
    listed = run_cli("deals", "--data-dir", str(net.nodes["con_a"].data_dir), "--json")
    assert listed.returncode == 0, listed.stderr
    mine = {d["deal_id"]: d for d in json.loads(listed.stdout)["deals"]}
    assert mine[deal["deal_id"]]["status"] == "closed"
    assert mine[deal["deal_id"]]["refunded"] == str(refunded)
    _wait(
        lambda: (x := net.deal("supplier", deal["deal_id"])) and x["status"] == "closed",
        10,
        "the hub to see the preterm close",
    )


async def _exchange(host: Any, target: Any, payload: bytes, protocol: Any = None) -> bytes:
    from libp2p.custom_types import TProtocol

    from p2pnode.market import dealwire

    stream = await host.new_stream(target, [protocol or TProtocol(dealwire.PROTOCOL_ID)])
    await stream.write(payload)
    out = b""
    with trio.move_on_after(10):
        while True:
            try:
                chunk = await stream.read(4096)
            except Exception:
                break
            if not chunk:
                break
            out += chunk
    with contextlib.suppress(Exception):
        await stream.close()
    return out


def test_malformed_deal_messages_are_refused_with_a_reason(net: Net) -> None:
    """A stranger's host speaks /sonm/deal/1 badly, or replays its own signed request;
    each attempt gets a signed "no" with the reason, and the hub goes on serving (the
    next test makes a deal)."""
    from eth_account import Account
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from multiaddr import Multiaddr

    from gossip.eip712 import SigningDomain
    from p2pnode.host import muxer_options, security_options
    from p2pnode.market import dealwire as w

    domain = SigningDomain(chain_id=31337)
    mine = bytes.fromhex(net.keys["direct"].removeprefix("0x"))
    me = bytes.fromhex(Account.from_key(mine).address[2:])
    hub = bytes.fromhex(Account.from_key(net.keys["supplier"]).address[2:])
    info = net.nodes["supplier"].ready()
    assert info is not None
    target = info_from_p2p_addr(Multiaddr(info["addrs"][0]))
    now = int(time.time())
    good = w.DealRequest(me, b"\x01" * 32, b"\x02" * 32, 1, now + 60)
    body = msgpack.packb([1, 1, me, b"\x01" * 32, b"\x02" * 32, 1, now + 60, b""])
    forged = w.sign(dataclasses.replace(good, consumer=hub), domain, mine)
    cases = [
        (b"\xff\xff\x03", "frame: "),  # a 64 KiB frame announced
        (b"\x03abc", "not valid msgpack"),
        (_frame(body), "signature: missing"),
        (w.frame(forged), "not made by the message's signer"),
        (w.frame(w.sign(good, domain, mine)), "unknown ASK"),
        # the same signed request again: its nonce is spent, whatever the first answer
        (w.frame(w.sign(good, domain, mine)), "request replayed: nonce 1"),
        (
            w.frame(w.sign(dataclasses.replace(good, valid_until=now - 5), domain, mine)),
            "request expired",
        ),
    ]
    answers: list[Any] = []

    async def main() -> None:
        kp = create_new_key_pair()
        host = new_host(key_pair=kp, sec_opt=security_options(kp), muxer_opt=muxer_options())
        async with host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            await host.connect(target)
            for payload, _ in cases:
                raw = await _exchange(host, target.peer_id, payload)
                [frame] = w.FrameReader().feed(raw)
                answers.append(w.decode(frame, domain, expect=w.DealReply))

    trio.run(main)
    for reply, (_, reason) in zip(answers, cases, strict=True):
        assert reply.ok == 0 and reply.hub == hub and reason in reply.reason, reply.reason
    text = net.call("supplier", "GET", "/metrics").text
    assert "sonm_market_bad_messages 4.0" in text
    assert "sonm_market_replayed 1.0" in text


def test_hub_killed_after_the_proposal_restarts_and_nothing_is_stuck(net: Net) -> None:
    deals = net.system.deals
    # one slot is free again after the preterm close: a consumer takes it, and the
    # hub dies the moment the proposal is on chain
    _wait(lambda: len(net.asks_seen("con_a")) >= 1, 20, "a fresh ASK")
    count = deals.deal_count()
    net.bid("con_a", duration=3600, price_per_hour=DEAR * 3600)
    _wait(lambda: deals.deal_count() > count, 30, "the proposal on chain")
    supplier = net.nodes["supplier"]
    supplier.proc.send_signal(signal.SIGKILL)
    supplier.proc.wait(10)
    deal_id = deals.deal_count()  # ids count from 1
    # while the hub is down, another proposal for the same ASK goes on chain without
    # asking the hub: the restarted hub finds both in the events; at most one of them
    # gets the slot and the other is refunded by its consumer's timeout or stays
    # Pending for its author to cancel, never accepted on a taken slot
    from eth_account import Account

    direct = Account.from_key(net.keys["direct"])
    pending = deals.deal(deal_id)
    net.system.token.approve(deals.address, pending.price * 600, sender=direct)
    other, _ = deals.propose(pending.hub, pending.price, 600, pending.order_ref, sender=direct)
    restarted = net.start("supplier", "supplier", hub=True)
    wait_ready(restarted, time.monotonic() + 60)

    def settled() -> bool:
        d = deals.deal(deal_id)
        return d.status == 2 or (d.status == 3 and d.refunded == d.escrow)

    _wait(settled, ACCEPT_TIMEOUT + 30, "the deal to be accepted or refunded")
    final = deals.deal(deal_id)
    status = {2: "accepted", 3: "closed"}[int(final.status)]
    _wait(
        lambda: (x := net.deal("con_a", deal_id)) and x["status"] == status,
        15,
        "the consumer's table to agree with the chain",
    )
    _wait(
        lambda: (x := net.deal("supplier", deal_id)) and x["status"] == status,
        15,
        "the restarted hub's table to agree with the chain",
    )
    # the proposal made while the hub was down: the slot is free unless the
    # consumer's deal got it, so the restarted hub accepts it from the events alone
    if status == "closed":
        _wait(lambda: int(deals.deal(other).status) == 2, 30, "the hub to accept on restart")
        row = _wait(lambda: net.deal("supplier", other), 10, "the hub's row of it")
        assert row["status"] == "accepted" and row["ask_id"] == "0x" + pending.order_ref.hex()
        assert row["slot_id"] in ("s1", "s2")
    else:
        assert int(deals.deal(other).status) == 1  # the slot is taken: not accepted


def test_consumer_killed_after_its_proposal_restarts_with_the_deal(net: Net) -> None:
    """kill -9 of the consumer the moment its proposal is on chain: the hub accepts
    from the events alone, and the restarted consumer finds the deal, knows which
    BID it was for, withdraws that BID and does not propose a second time."""
    deals = net.system.deals
    # con_a's BID of the test before is still open when that test ended in its
    # "refunded" branch: withdrawn, so the slot freed below is con_b's to take
    for o in net.call("con_a", "GET", "/orders?side=bid&own=true").json()["orders"]:
        if not o["cancelled"]:
            r = net.call("con_a", "POST", f"/orders/{o['order_id']}/cancel")
            assert r.status_code in (200, 409), r.text
    for d in net.deals("con_b"):  # free a slot: end con_b's running deal early
        if d["status"] == "accepted":
            closed = net.call("con_b", "POST", f"/deals/{d['deal_id']}/close")
            assert closed.status_code == 200, closed.text
    _wait(lambda: net.asks_seen("con_b"), 30, "a free slot's ASK")
    count = deals.deal_count()
    bid_id = net.bid("con_b", duration=3600, price_per_hour=DEAR * 3600)
    _wait(lambda: deals.deal_count() > count, 30, "the proposal on chain")
    consumer = net.nodes["con_b"]
    consumer.proc.send_signal(signal.SIGKILL)
    consumer.proc.wait(10)
    deal_id = deals.deal_count()
    restarted = net.start("con_b", "consumer")
    wait_ready(restarted, time.monotonic() + 60)

    def settled() -> bool:
        d = deals.deal(deal_id)
        return d.status == 2 or (d.status == 3 and d.refunded == d.escrow)

    _wait(settled, ACCEPT_TIMEOUT + 30, "the deal to be accepted or refunded")
    status = {2: "accepted", 3: "closed"}[int(deals.deal(deal_id).status)]
    row = _wait(
        lambda: (x := net.deal("con_b", deal_id)) and x["status"] == status and x,
        15,
        "the restarted consumer's row",
    )
    assert row["bid_id"] == bid_id
    if status == "accepted":
        _wait(
            lambda: net.call("con_b", "GET", f"/orders/{bid_id}").json()["cancelled"],
            15,
            "the BID to be withdrawn",
        )
    time.sleep(2)  # a second proposal would have shown up by now
    assert deals.deal_count() == deal_id
