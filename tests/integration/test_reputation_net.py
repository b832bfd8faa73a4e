"""Trust polling between real daemons over loopback (in-process, default services).

A seed and three consumers: a hub's signed announcement reaches them on the hubs
topic (unverified); two of them (A, B) hold agreements with it and see its payments
(safe); C, which pre-trusts A and B, asks about the hub on the trust topic, A and B
answer, and C's status turns checked on their trust-weighted answers. Garbage on the
trust topic is refused before it is forwarded and costs its sender gossip score.
C, restarted from its data dir, still holds the status with its reasons and the
answers behind it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from gossip.router import PublishError
from gossip.topics import HUBS_TOPIC, PEERS_TOPIC, TRUST_TOPIC
from p2pnode import keys
from p2pnode.daemon import Daemon
from p2pnode.reputation.service import ReputationService
from reputation.evidence import Agreement, Payment
from reputation.state import HubStatus, Reason
from tests.node.reputation_support import PASSWORD, address, announcement, node_config

pytestmark = pytest.mark.integration

HUB = bytes.fromhex("cc" * 20)
OWNER = 50
PERIOD = 600


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(keys.PASSWORD_ENV, PASSWORD)


def _svc(d: Daemon) -> ReputationService:
    assert d.context is not None
    svc = d.context.services["reputation"]
    assert isinstance(svc, ReputationService)
    return svc


def _pubsub(d: Daemon) -> Any:
    assert d.context is not None
    return d.context.services["pubsub"]


def _addr(d: Daemon) -> str:
    assert d.host is not None
    a = str(d.host.get_addrs()[0])
    return a if "/p2p/" in a else f"{a}/p2p/{d.host.get_id().to_base58()}"


async def _until(cond: Callable[[], bool], timeout: float, what: str) -> float:
    t0 = time.monotonic()
    with trio.move_on_after(timeout):
        while not cond():
            await trio.sleep(0.1)
        return time.monotonic() - t0
    raise AssertionError(f"not within {timeout}s: {what}")


def _paid(svc: ReputationService) -> None:
    start = time.time() - 2 * PERIOD - 3700
    svc.add_agreement(Agreement(svc.address, HUB, 3600, PERIOD, start))
    for k in (1, 2):
        svc.payment_observed(Payment(HUB, svc.address, PERIOD, start + k * PERIOD - 5))
    svc.tick()


@pytest.mark.slow
def test_trust_answers_move_statuses_garbage_is_scored_and_a_restart_keeps_it(
    tmp_path: Path,
) -> None:
    fast = {"poll_interval": 1.0, "trust_interval": 1.0}
    kept: dict[str, Any] = {}
    c_dir = tmp_path / "c"
    pretrusted = ("0x" + address(1).hex(), "0x" + address(2).hex())

    async def main() -> None:
        seed = Daemon(node_config(tmp_path / "s", 9, **fast))
        async with trio.open_nursery() as nursery:
            await nursery.start(seed.run)
            boot = {"network.bootstrap": (_addr(seed),)}
            a = Daemon(node_config(tmp_path / "a", 1, boot, **fast))
            b = Daemon(node_config(tmp_path / "b", 2, boot, **fast))
            c = Daemon(node_config(c_dir, 3, boot, pretrusted=pretrusted, **fast))
            for d in (a, b, c):
                await nursery.start(d.run)
            nodes = (seed, a, b, c)
            await _until(
                lambda: all(len(_pubsub(d).pubsub.connected_pubsub_peers()) >= 3 for d in nodes),
                30,
                "every node has 3 pubsub peers",
            )
            # the hub announces itself (here through the seed): everyone else hears of it
            assert seed.host is not None
            hub_peer = seed.host.get_id().to_bytes()

            def heard() -> bool:
                return all(_svc(d).status(HUB) is HubStatus.UNVERIFIED for d in (a, b, c))

            for seq in range(1, 31):  # re-announced, as hubs do, until the mesh carries it
                with contextlib.suppress(PublishError):
                    ann = announcement(OWNER, HUB, hub_peer, seq=seq)
                    await _pubsub(seed).publish(HUBS_TOPIC, ann)
                for _ in range(10):
                    if heard():
                        break
                    await trio.sleep(0.1)
                if heard():
                    break
            assert all(_svc(d).status(HUB) is HubStatus.UNVERIFIED for d in (a, b, c))
            # A and B work for the hub and were paid: their own evidence says safe
            _paid(_svc(a))
            _paid(_svc(b))
            assert _svc(a).status(HUB) is HubStatus.SAFE and _svc(b).status(HUB) is HubStatus.SAFE

            # C polls; A and B (pre-trusted by C) answer; C's status turns checked
            took = await _until(
                lambda: _svc(c).status(HUB) is HubStatus.CHECKED, 30, "C checks the hub"
            )
            print(f"C turned checked {took:.1f}s after A and B had evidence")
            rec = _svc(c).record(HUB)
            assert rec.reason is Reason.POSITIVE_ANSWERS
            assert {address(1), address(2)} <= set(_svc(c).core.answers[HUB])
            assert _svc(a).core.counters["answers_sent"] >= 1
            assert _svc(b).core.counters["answers_sent"] >= 1
            assert _svc(c).core.counters["answers_accepted"] >= 2
            # C trusts A and B (pre-trusted): once their signed peer records (address ->
            # peer id; republished every 10 min, here at once) reach C, P5 carries it
            score_c = _pubsub(c).pubsub.router.peer_score
            assert a.host is not None and a.context is not None
            a_peer = a.host.get_id().to_bytes()
            a_record = a.context.services["peer_topic"].record(time.time())
            await _pubsub(a).publish(PEERS_TOPIC, a_record)
            await _until(
                lambda: score_c._app_scores.get(a_peer, 0.0) > 0,
                10,
                "A's P5 at C",
            )

            # the seed C bootstraps from is pre-trusted by the account its record names
            assert seed.context is not None
            await _pubsub(seed).publish(
                PEERS_TOPIC, seed.context.services["peer_topic"].record(time.time())
            )
            await _until(lambda: _svc(c).global_trust(address(9)) > 0, 10, "the seed trusted at C")
            assert address(9) in _svc(c).seed_accounts

            # garbage on the trust topic from B (its router does not check its own
            # publishes): every receiver refuses it and B's score with them drops
            assert b.host is not None
            b_peer = b.host.get_id().to_bytes()
            receivers = (seed, a, c)
            before = {
                id(d): _pubsub(d).pubsub.router.peer_score.score(b_peer, trio.current_time())
                for d in receivers
            }
            for n in range(3):
                await _pubsub(b).publish(TRUST_TOPIC, b"\x92\x10" + bytes([n]))
            await _until(
                lambda: all(_svc(d).counters["frames_rejected"] >= 1 for d in receivers),
                10,
                "the garbage is refused everywhere it reached",
            )
            for d in receivers:
                after = _pubsub(d).pubsub.router.peer_score.score(b_peer, trio.current_time())
                assert after < before[id(d)], (after, before[id(d)])
            assert all(_svc(d).counters["frames_accepted"] >= 1 for d in (a, b, c))

            kept["c"] = _svc(c)
            for d in nodes:
                d.request_stop()

    trio.run(main)
    # what C held when it stopped (every change was written as it was taken)
    c_then: ReputationService = kept["c"]
    kept["history"] = list(c_then.record(HUB).history)
    kept["answers"] = dict(c_then.core.answers[HUB])

    # C again, alone, from its data dir: the status, its reasons and the answers are kept
    async def again() -> None:
        c = Daemon(node_config(c_dir, 3, pretrusted=pretrusted, **fast))
        async with trio.open_nursery() as nursery:
            await nursery.start(c.run)
            svc = _svc(c)
            assert svc.status(HUB) is HubStatus.CHECKED
            assert list(svc.record(HUB).history) == kept["history"]
            assert svc.core.answers[HUB] == kept["answers"]
            c.request_stop()

    trio.run(again)
