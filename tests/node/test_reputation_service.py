"""The reputation service in a real daemon (in-process): the trust topic's validator,
announcements and payments moving statuses through the real core, the ratings the
market reads, the gossip score feed, /hubs and the metrics, and a restart that keeps
every status with its reasons, agreements, evidence and trust tables."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from web3 import Web3

from gossip.validation import ValidationResult
from p2pnode import keys
from p2pnode.config import build_config
from p2pnode.daemon import Daemon
from p2pnode.errors import UserError
from p2pnode.market.dealstore import DealRow
from p2pnode.reputation.rating import rating_of
from p2pnode.reputation.service import ReputationService
from reputation import messages
from reputation.evidence import Agreement, DealOutcome, Payment, Verdict
from reputation.messages import KeySigner, TrustAnswer
from reputation.state import HubStatus, Reason
from tests.conftest import run_cli
from tests.node.reputation_support import (
    DOMAIN,
    PASSWORD,
    address,
    announcement,
    key,
    node_config,
    question,
)

HUB = bytes.fromhex("aa" * 20)
OWNER = 40  # the hub owner's key number
PERIOD = 600


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(keys.PASSWORD_ENV, PASSWORD)


def _in_daemon(config: Any, body: Callable[[Daemon, ReputationService], Awaitable[None]]) -> None:
    daemon = Daemon(config)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            assert daemon.context is not None
            svc = daemon.context.services["reputation"]
            assert isinstance(svc, ReputationService)
            assert daemon.context.reputation is svc
            try:
                await body(daemon, svc)
            finally:
                daemon.request_stop()

    trio.run(main)


def _paid_hub(svc: ReputationService, worker: bytes, now: float) -> None:
    """An agreement two periods old, both periods paid in full."""
    start = now - 2 * PERIOD - 3700  # both paydays and their grace have passed
    svc.add_agreement(Agreement(worker, HUB, 3600, PERIOD, start))
    for k in (1, 2):
        svc.payment_observed(Payment(HUB, worker, PERIOD, start + k * PERIOD - 5))


def test_statuses_ratings_trust_frames_and_a_restart_keep_everything(tmp_path: Path) -> None:
    config = node_config(tmp_path, 1)
    me = address(1)
    snapshot: dict[str, Any] = {}

    async def first(daemon: Daemon, svc: ReputationService) -> None:
        assert svc.address == me
        peer_id = daemon.context.host.get_id().to_bytes()  # type: ignore[union-attr]
        assert svc.status(HUB) is HubStatus.UNKNOWN
        assert svc.rating(address(OWNER)) == 0  # a hub nobody knows has no rating

        # a hub announcement (as the hubs topic delivers it) makes the hub unverified
        svc._on_hub("/sonm/hubs/1", announcement(OWNER, HUB, peer_id))
        rec = svc.record(HUB)
        assert rec.status is HubStatus.UNVERIFIED
        assert rec.reason is Reason.ANNOUNCED_CHAIN_OK and "no chain" in rec.history[-1].detail
        assert svc.rating(address(OWNER)) == 2_500

        # our agreement with it, payments read for both periods, the paydays judged
        now = time.time()
        _paid_hub(svc, me, now)
        svc.tick()
        assert svc.status(HUB) is HubStatus.SAFE
        assert svc.record(HUB).reason is Reason.PAYMENT_MATCHED
        assert svc.rating(address(OWNER)) == 10_000

        # the trust topic's validator: a well-signed question is forwarded...
        q = question(7, HUB, 1)
        assert svc.validate_frame("/sonm/trust/1", q, b"peer") is ValidationResult.ACCEPT
        # ...once: the same bytes again are dropped without blame
        assert svc.validate_frame("/sonm/trust/1", q, b"peer") is ValidationResult.IGNORE
        # delivered, it gets our answer (we hold evidence), queued for the topic
        sent = svc.core.counters["answers_sent"]
        svc._on_trust("/sonm/trust/1", q)
        assert svc.core.counters["answers_sent"] == sent + 1
        # garbage and forgeries are REJECTed (the sender's gossip score pays)
        assert svc.validate_frame("/sonm/trust/1", b"\x93\x01", b"peer") is ValidationResult.REJECT
        forged = bytearray(question(8, HUB, 1))
        forged[-2] ^= 0xFF  # inside the signature's s
        result = svc.validate_frame("/sonm/trust/1", bytes(forged), b"peer")
        assert result is ValidationResult.REJECT
        # expired: dropped without blame
        old = question(9, HUB, 1, start=int(time.time()) - 7200)
        assert svc.validate_frame("/sonm/trust/1", old, b"peer") is ValidationResult.IGNORE
        # one signer over its rate: ignored, not forwarded
        limit = svc.params.poll.questions_per_window
        verdicts = [
            svc.validate_frame("/sonm/trust/1", question(10, HUB, n), b"peer")
            for n in range(1, limit + 2)
        ]
        assert verdicts[:limit] == [ValidationResult.ACCEPT] * limit
        assert verdicts[limit] is ValidationResult.IGNORE
        assert svc.counters["frames_rejected"] == 2

        # an answer to a question of ours, from a peer our evidence can test: it agrees,
        # so it earns local trust, and the pre-trust-free global trust now reaches it
        asked = svc.core.poll(time.time())
        svc._after({HUB})
        qs, qid = asked[0]
        assert qs.hub == HUB
        answerer = 11
        t = int(time.time())
        ans = TrustAnswer(
            address(answerer), HUB, qid, Verdict.GOOD, 2, PERIOD, PERIOD, t - 60, t, t + 600
        )
        frame = messages.encode(messages.sign(ans, DOMAIN, KeySigner(key(answerer))))
        assert svc.validate_frame("/sonm/trust/1", frame, b"peer") is ValidationResult.ACCEPT
        svc._on_trust("/sonm/trust/1", frame)
        assert svc.core.local.counts(address(answerer)) == (1, 0)
        units = svc.recompute_trust()
        assert units.get(address(answerer), 0.0) > 0
        assert svc.global_trust(address(answerer)) == units[address(answerer)]
        assert svc.rating(address(answerer)) > 0  # trust alone rates an author

        # a consumer-side deal outcome is evidence too
        other = bytes.fromhex("bb" * 20)
        svc._on_hub("/sonm/hubs/1", announcement(OWNER + 1, other, peer_id))
        svc.deal_outcome(
            DealOutcome(other, (7).to_bytes(32, "big"), True, False, True, time.time())
        )
        assert svc.status(other) is HubStatus.SUSPECTED
        assert svc.record(other).reason is Reason.DEAL_FAILED
        assert svc.rating(address(OWNER + 1)) == 0

        # the market's min_rating lookup is this service's
        market = daemon.context.services["market"]  # type: ignore[union-attr]
        assert market.rating == svc.rating

        # consumer deals from the market's store, once closed and past the grace:
        # results fetched and verified (a receipt kept) -> good; fetched, never
        # verified -> failed; never fetched -> no evidence either way
        third = bytes.fromhex("dd" * 20)
        svc._on_hub("/sonm/hubs/1", announcement(OWNER + 2, third, peer_id))
        long_ago = time.time() - svc.settings.deal_grace - 5
        for deal_id, fetched, verified in ((101, True, True), (102, False, False)):
            market.store.upsert_deal(_deal(deal_id, third, long_ago))
            work = tmp_path / "tasks" / f"deal-{deal_id}"
            if fetched:
                work.mkdir(parents=True)
            if verified:
                (work / "receipt.json").write_text("{}")
        svc.scan_deals()
        assert svc.status(third) is HubStatus.SAFE
        assert svc.record(third).reason is Reason.DEAL_VERIFIED
        assert svc.counters["deals_judged"] == 1
        svc.scan_deals()  # judged once
        assert svc.counters["deals_judged"] == 1

        # /hubs and /metrics show it
        assert daemon.api_url is not None
        token = (tmp_path / "api.token").read_text().strip()
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
            body = (await client.get(daemon.api_url + "/hubs")).json()
            metrics = (await client.get(daemon.api_url + "/metrics")).text
        by_hub = {h["hub"]: h for h in body["hubs"]}
        safe = by_hub["0x" + HUB.hex()]
        assert safe["status"] == "safe" and safe["reason"] == "payment_matched"
        assert safe["agreements"] == 1 and safe["evidence"] == "good" and safe["rating"] == 10_000
        assert [x["to"] for x in safe["history"]] == ["unverified", "safe"]
        assert body["counts"] == {"safe": 2, "suspected": 1}
        assert svc.status_counts() == body["counts"]  # the web view's figure, read lighter
        assert "sonm_reputation_hubs_safe 2.0" in metrics
        assert "sonm_reputation_frames_rejected 2.0" in metrics
        assert "sonm_reputation_poll_questions_sent 1.0" in metrics
        # a question out of turn (a worker's, before it joins) needs someone to hear
        # it: alone on the trust topic, nothing is asked and nothing waited for
        assert svc.ask_about(HUB) is False
        assert svc.core.counters["questions_asked"] == 0

        # and the CLI, as an operator runs it (the daemon keeps serving meanwhile)
        def cli(*extra: str) -> Any:
            return run_cli("hubs", "--data-dir", str(tmp_path), *extra, env={"COLUMNS": "250"})

        as_json = await trio.to_thread.run_sync(cli, "--json")
        assert as_json.returncode == 0, as_json.stderr
        assert json.loads(as_json.stdout)["counts"] == body["counts"]
        table = await trio.to_thread.run_sync(cli, "--history")
        assert table.returncode == 0, table.stderr
        assert "0x" + HUB.hex()[:8] in table.stdout and "payment_matched" in table.stdout

        rec = svc.record(HUB)
        snapshot["history"] = list(rec.history)
        snapshot["ledgers"] = {
            k: (lg.agreement, lg.judged, lg.settled_paid, lg.total_paid)
            for k, lg in svc.core.evidence.ledgers.items()
        }
        snapshot["facts"] = svc.core.evidence.facts_table()
        snapshot["local"] = svc.core.local.table()
        snapshot["global"] = dict(svc.core.global_units)
        snapshot["answers"] = {h: dict(a) for h, a in svc.core.answers.items()}
        snapshot["other"] = list(svc.record(other).history)

    _in_daemon(config, first)

    # the tables are on disk (WAL: committed rows survive a kill too)
    db = sqlite3.connect(tmp_path / "node.sqlite3")
    assert db.execute("SELECT status FROM rep_hubs WHERE hub = ?", (HUB,)).fetchone() == (3,)
    db.close()

    async def second(daemon: Daemon, svc: ReputationService) -> None:
        assert svc.status(HUB) is HubStatus.SAFE
        assert list(svc.record(HUB).history) == snapshot["history"]
        assert list(svc.record(bytes.fromhex("bb" * 20)).history) == snapshot["other"]
        assert {
            k: (lg.agreement, lg.judged, lg.settled_paid, lg.total_paid)
            for k, lg in svc.core.evidence.ledgers.items()
        } == snapshot["ledgers"]
        assert svc.core.evidence.facts_table() == snapshot["facts"]
        assert svc.core.local.table() == snapshot["local"]
        assert {h: dict(a) for h, a in svc.core.answers.items()} == snapshot["answers"]
        # global trust is recomputed at start from the same local table: the same vector
        assert svc.core.global_units == pytest.approx(snapshot["global"])
        assert svc.rating(address(OWNER)) == 10_000
        # a payday judged before the restart is not judged again
        svc.tick()
        assert list(svc.record(HUB).history) == snapshot["history"]

    _in_daemon(config, second)


def _deal(deal_id: int, hub: bytes, closed_at: float) -> DealRow:
    return DealRow(
        deal_id=deal_id,
        role="consumer",
        consumer="0x" + address(1).hex(),
        hub=Web3.to_checksum_address(hub),
        ask_id=bytes(32),
        bid_id=None,
        slot_id=None,
        price_per_second=1,
        duration=60,
        escrow=60,
        status="closed",
        proposed_at=int(closed_at) - 120,
        start_time=int(closed_at) - 60,
        end_time=int(closed_at),
        paid=60,
        refunded=0,
        updated_at=closed_at,
    )


def test_rating_table() -> None:
    assert rating_of(None, 0.0) == 0
    assert rating_of(HubStatus.CHECKED, 0.0) == 7_500
    assert rating_of(None, 1.0) == 5_000 and rating_of(None, 5.0) == 10_000
    assert rating_of(HubStatus.SUSPECTED, 10.0) == 0  # a bad status beats any trust
    assert rating_of(HubStatus.UNVERIFIED, 1.0) == 5_000


def test_a_bad_pretrusted_address_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"reputation.pretrusted\[0\] = '0x12'"):
        build_config([{"node.data_dir": str(tmp_path), "reputation.pretrusted": ["0x12"]}])
    bad_interval = re.escape("reputation.poll_interval = 0.0: allowed 1.0..86400.0")
    with pytest.raises(UserError, match=bad_interval):
        build_config([{"node.data_dir": str(tmp_path), "reputation.poll_interval": 0.0}])


def test_the_payment_grace_is_a_node_setting(tmp_path: Path) -> None:
    """`reputation.payment_grace` reaches the core's evidence (a hub paying every few
    seconds is judged seconds after its payday, not an hour); out of range it is a
    config error naming the key."""
    from p2pnode.reputation.service import params_of

    cfg = build_config([{"node.data_dir": str(tmp_path), "reputation.payment_grace": 10.0}])
    assert params_of(cfg.reputation).status.payment_grace_s == 10.0
    default = build_config([{"node.data_dir": str(tmp_path)}])
    assert params_of(default.reputation).status.payment_grace_s == 3600.0
    bad = re.escape("reputation.payment_grace = -1.0: allowed 0.0..2592000.0")
    with pytest.raises(UserError, match=bad):
        build_config([{"node.data_dir": str(tmp_path), "reputation.payment_grace": -1.0}])


def _row(truster: int, peers: tuple[int, ...], claims: dict[bytes, Verdict]) -> bytes:
    t = int(time.time())
    r = messages.TrustRow(
        address(truster),
        t,
        tuple(address(p) for p in peers),
        tuple(1000 for _ in peers),
        tuple(claims),
        tuple(claims.values()),
        t,
        t + 600,
    )
    return messages.encode(messages.sign(r, DOMAIN, KeySigner(key(truster))))


def test_rows_carry_the_trust_of_credible_trusters_and_survive_a_restart(tmp_path: Path) -> None:
    """Trust reaches peers we never tested through the rows of the peers we trust,
    weighed by how far their verdicts on hubs match our own evidence."""
    pre = ["0x" + address(n).hex() for n in (5, 6)]
    config = node_config(tmp_path, 1, pretrusted=pre)
    me = address(1)

    async def first(daemon: Daemon, svc: ReputationService) -> None:
        _paid_hub(svc, me, time.time())
        svc.tick()
        assert svc.core.own_claims() == {HUB: Verdict.GOOD}  # our evidence: HUB pays
        svc.recompute_trust()
        assert svc.global_trust(address(60)) == 0.0
        frames = [
            _row(5, (60,), {HUB: Verdict.GOOD}),  # pre-trusted, agrees with us
            _row(6, (62,), {HUB: Verdict.BAD}),  # pre-trusted, contradicts our evidence
            _row(9, (61,), {HUB: Verdict.GOOD}),  # nobody trusts it
        ]
        for f in frames:
            assert svc.validate_frame("/sonm/trust/1", f, b"peer") is ValidationResult.ACCEPT
            svc._on_trust("/sonm/trust/1", f)
        assert len(svc.core.rows) == 3
        svc.recompute_trust()
        assert svc.global_trust(address(60)) > 0.0
        assert svc.global_trust(address(62)) == 0.0  # its truster's credibility is 0
        assert svc.global_trust(address(61)) == 0.0  # trust flows only from the trusted
        # our own row: no peer tested yet, but our verdict on HUB goes out
        svc.publish_row()
        assert svc.core.counters["rows_sent"] == 1

    _in_daemon(config, first)

    async def second(daemon: Daemon, svc: ReputationService) -> None:
        assert set(svc.core.rows) == {address(5), address(6), address(9)}
        svc.recompute_trust()
        assert svc.global_trust(address(60)) > 0.0

    _in_daemon(config, second)
