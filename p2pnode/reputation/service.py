"""The reputation service: drives reputation.core.ReputationCore with the real clock.

Inputs, each handed to the core with `now = time.time()`:
- hub announcements (hubs topic) and the chain verifier's verdict on them
  → `hub_announced`, and the wallet's on-chain state → `chain_state`;
- the trust topic: frames are checked in the router's validator (decode, window,
  dedupe, signature, the signer's rate limit: `core.admit`) *before* they are
  forwarded; a malformed or forged frame is REJECTed (the sender's gossip score
  pays, P4), an expired, repeated or rate-limited one IGNOREd; an accepted one is
  then `deliver`ed (our answer to a question, or an answer to one of ours);
- hub wallets' `MinerPaid` events read from the chain → `payment_observed`, and
  who each hub paid → `set_chain_payees`;
- consumer deals from the market's deal store, once closed and their results
  fetched (or not) → `deal_outcome`;
- agreements, from the worker role through `add_agreement` / `end_agreement`.

Every poll interval it asks about hubs (`core.poll`), wakes the core at
`next_deadline()` (paydays judged, questions expired), and every trust interval
recomputes global trust (EigenTrust over our local trust row, pre-trusted: the
configured addresses, the accounts of the seeds we bootstrap from, and the owners
of the DAO's trusted hubs), which feeds the
core's weights, the gossip score's P5 for peers whose address we know from their
signed peer records, and the market's rating lookup. Everything the core took is
written to SQLite (p2pnode/reputation/store.py) before the handler returns.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from gossip.codec import decode as decode_gossip
from gossip.eip712 import SigningDomain
from gossip.hubs import HubAnnouncement
from gossip.messages import MessageDecodeError
from gossip.peer_record import PeerRecord
from gossip.router import PublishError
from gossip.topics import HUBS_TOPIC, PEERS_TOPIC, TOPIC_KINDS, TRUST_TOPIC
from gossip.validation import ValidationResult
from p2pnode.config import ReputationSection
from p2pnode.context import NodeContext, need
from p2pnode.reputation import chainfeed
from p2pnode.reputation.rating import rating_of
from p2pnode.reputation.store import HubMeta, ReputationStore
from reputation.agreement import AgreementProof
from reputation.core import ChainState, ReputationCore
from reputation.eigentrust import GlobalTrust
from reputation.errors import PeerRateLimited, RemoteTrustError
from reputation.evidence import Agreement, DealOutcome, Payment
from reputation.messages import KeySigner, TrustMessage, TrustRow
from reputation.params import ReputationParams, StatusParams
from reputation.score import app_specific_score
from reputation.state import HubRecord, HubStatus
from reputation.trust import similarity

log = logging.getLogger(__name__)

MAX_ADMITTED = 4096  # frames validated and not yet delivered (the router delivers at once)
MAX_PEER_ADDRESSES = 20_000  # address -> peer id, from signed peer records and announcements
MAX_WALLETS_PER_READ = 64  # hub wallets whose events one chain read covers
OUTBOX = 256  # frames waiting to be published; more are dropped and counted
MAX_TICK = 1.0


def _hex(b: bytes | None) -> str | None:
    return None if b is None else "0x" + b.hex()


def _addr(value: str) -> bytes:
    return bytes.fromhex(value[2:] if value.startswith(("0x", "0X")) else value)


@dataclass
class _Due:
    poll: float = 0.0
    trust: float = 0.0
    row: float = 0.0
    chain: float = 0.0
    deals: float = 0.0


class ReputationService:
    def __init__(
        self,
        ctx: NodeContext,
        *,
        params: ReputationParams | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ctx = ctx
        self.settings: ReputationSection = ctx.config.reputation
        self.params = params or params_of(self.settings)
        self.clock = clock
        self.pubsub = need("reputation", ctx.pubsub, "pubsub")
        self.chain = ctx.chain
        self.data_dir = Path(ctx.config.data_path)
        self.domain = SigningDomain(chain_id=ctx.config.chain.chain_id)
        signer = KeySigner(ctx.account.private_key) if ctx.account is not None else None
        # without an account the node relays and keeps statuses, but asks and answers nothing
        self.core = ReputationCore(
            self.params,
            self.domain,
            random.Random(),
            signer=signer,
            address=None if signer is not None else bytes(20),
        )
        self.global_trust_calc = GlobalTrust(self.params.eigentrust)
        self.store = ReputationStore(ctx.storage)
        self.meta: dict[bytes, HubMeta] = self.store.load_into(self.core)
        self._hub_of_owner = {m.owner: h for h, m in self.meta.items() if m.owner}
        # whose countersignature a proof about each wallet must carry
        self._owners: dict[bytes, bytes] = {h: m.owner for h, m in self.meta.items() if m.owner}
        self.core.set_hub_owners(self._owners)
        self._local_saved = self.core.local.table()
        self._payees: dict[bytes, dict[bytes, int]] = {}
        # when each wallet last paid each address: what proofs are checked against
        self._last_paid: dict[bytes, dict[bytes, float]] = {}
        for hub, (worker, _, at) in (
            (h, p) for h in self.meta for p in self.store.payments(h, limit=10_000)
        ):
            row = self._payees.setdefault(hub, {})
            row[worker] = row.get(worker, 0) + 1
            paid = self._last_paid.setdefault(hub, {})
            paid[worker] = max(at, paid.get(worker, at))
        # per hub wallet, the last block whose payment events were read (kept: a restart
        # must not count a payment twice), and the chain time its reading began from
        self._cursor: dict[bytes, int] = {
            _addr(h): int(b) for h, b in json.loads(self.store.meta("cursors") or "{}").items()
        }
        self._since: dict[bytes, float] = {
            _addr(h): float(t) for h, t in json.loads(self.store.meta("since") or "{}").items()
        }
        for h, b in self._cursor.items():
            if b > 0:
                self._last_paid.setdefault(h, {})
        if self.chain is not None:
            self.core.set_chain_payees(self._payees)
            self.core.set_chain_last_paid(self._last_paid, self._since)
        self._judged = self.store.judged_deals()
        self._peer_of: OrderedDict[bytes, bytes] = OrderedDict()
        # the seeds we bootstrap from are pre-trusted, by the account their signed
        # peer record names (a seed without an account has none to trust)
        self._seed_ids = _peer_ids_of(ctx.config.network.bootstrap)
        self.seed_accounts: set[bytes] = set()
        self._scored: set[bytes] = set()
        self._admitted: OrderedDict[bytes, TrustMessage] = OrderedDict()
        self._out_send, self._out_recv = trio.open_memory_channel[bytes](OUTBOX)
        self._due = _Due()
        self.counters: dict[str, int] = {
            "frames_rejected": 0,
            "frames_ignored": 0,
            "frames_accepted": 0,
            "frames_published": 0,
            "publish_failed": 0,
            "outbox_dropped": 0,
            "status_changes": 0,
            "announcements": 0,
            "hubs_table_full": 0,
            "payments_read": 0,
            "payments_matched": 0,
            "chain_errors": 0,
            "deals_judged": 0,
            "trust_updates": 0,
        }
        self.pubsub.set_topic_validator(TRUST_TOPIC, self.validate_frame)
        self.pubsub.on_delivery(TRUST_TOPIC, self._on_trust)
        self.pubsub.on_delivery(HUBS_TOPIC, self._on_hub)
        self.pubsub.on_delivery(PEERS_TOPIC, self._on_peer_record)

    # -- what other services call ----------------------------------------------------------

    @property
    def address(self) -> bytes:
        return self.core.address

    def status(self, hub: bytes) -> HubStatus:
        return self.core.status(hub)

    def warning(self, hub: bytes, now: float) -> float:
        return self.core.warning(hub, now)

    def record(self, hub: bytes) -> HubRecord:
        """The hub's record (a fresh UNKNOWN one, not stored, for a hub never heard of)."""
        rec = self.core.records.get(hub)
        return rec if rec is not None else HubRecord(hub)

    def add_agreement(self, agreement: Agreement, proof: AgreementProof | None = None) -> None:
        """A worker's terms with a hub (the worker role calls it when it joins), with the
        hub's countersignature of them (`proof`)."""
        self.core.add_agreement(agreement, proof)
        self._cursor.setdefault(agreement.hub, self._cursor.get(agreement.hub, 0))
        self._after({agreement.hub})

    def end_agreement(self, hub: bytes, worker: bytes, now: float) -> None:
        self.core.end_agreement(hub, worker, now)
        self._after({hub})

    def payment_observed(self, payment: Payment) -> bool:
        matched = self.core.payment_observed(payment)
        self._after({payment.hub})
        return matched

    def deal_outcome(self, outcome: DealOutcome) -> None:
        self.core.deal_outcome(outcome, self.clock())
        self._after({outcome.hub})

    def global_trust(self, peer_or_hub: bytes) -> float:
        """Global trust in uniform units (1.0 = average); a hub wallet counts as its owner."""
        units = self.core.global_units
        if peer_or_hub in units:
            return float(units[peer_or_hub])
        meta = self.meta.get(peer_or_hub)
        if meta is not None and meta.owner is not None:
            return float(units.get(meta.owner, 0.0))
        return 0.0

    def rating(self, author: bytes) -> int:
        """The market's rating lookup (basis points): see p2pnode/reputation/rating.py."""
        hub = self._hub_of_owner.get(author)
        status = self.core.status(hub) if hub is not None else None
        return rating_of(status, float(self.core.global_units.get(author, 0.0)))

    # -- the trust topic -------------------------------------------------------------------

    def validate_frame(self, topic: str, data: bytes, from_peer: bytes) -> ValidationResult:
        """The router's validator for the trust topic: nothing is forwarded unchecked."""
        try:
            msg = self.core.admit(data, self.clock())
        except PeerRateLimited:
            self.counters["frames_ignored"] += 1
            return ValidationResult.IGNORE
        except RemoteTrustError as exc:
            self.counters["frames_rejected"] += 1
            log.debug("trust frame from %s refused: %s", from_peer.hex()[:16], exc)
            return ValidationResult.REJECT
        if msg is None:
            self.counters["frames_ignored"] += 1
            return ValidationResult.IGNORE
        self.counters["frames_accepted"] += 1
        self._admitted[data] = msg
        if len(self._admitted) > MAX_ADMITTED:
            self._admitted.popitem(last=False)
        return ValidationResult.ACCEPT

    def _on_trust(self, topic: str, data: bytes) -> None:
        msg = self._admitted.pop(data, None)
        if msg is None:
            return
        self.core.deliver(msg, self.clock())
        if isinstance(msg, TrustRow):
            kept = self.core.rows.get(msg.truster) is msg
            self._after(set(), rows=[(msg.truster, data)] if kept else [])
            return
        self._after({msg.hub})

    async def _publisher(self) -> None:
        async for frame in self._out_recv:
            try:
                await self.pubsub.publish(TRUST_TOPIC, frame)
                self.counters["frames_published"] += 1
            except PublishError:
                self.counters["publish_failed"] += 1

    # -- hubs and peers --------------------------------------------------------------------

    def _on_hub(self, topic: str, data: bytes) -> None:
        try:
            ann = decode_gossip(data, TOPIC_KINDS[HUBS_TOPIC])
        except MessageDecodeError:
            return
        if not isinstance(ann, HubAnnouncement):
            return
        self.hub_announced(ann)

    def hub_announced(self, ann: HubAnnouncement) -> None:
        """An announcement the validator accepted (its chain check, if any, passed)."""
        now = self.clock()
        hub = bytes(ann.wallet)
        if hub not in self.core.records and len(self.core.records) >= self.params.poll.max_hubs:
            self.counters["hubs_table_full"] += 1
            return
        self.counters["announcements"] += 1
        old = self.meta.get(hub)
        if old is not None and old.owner is not None and old.owner != ann.owner:
            self._hub_of_owner.pop(old.owner, None)
        self.meta[hub] = HubMeta(bytes(ann.owner), bytes(ann.peer_id), ann.name)
        self._hub_of_owner[bytes(ann.owner)] = hub
        self._owners[hub] = bytes(ann.owner)
        self._learn_peer(bytes(ann.owner), bytes(ann.peer_id))
        chain_status = self._chain_status(hub, bytes(ann.owner))
        if self.chain is None:
            self.core.hub_announced(hub, True, now, "signature checked; no chain configured")
        else:
            self.core.hub_announced(hub, True, now, "whitelist and hub wallet checked on chain")
        if chain_status is not None:
            self.core.chain_state(hub, chain_status, now)
        self._cursor.setdefault(hub, 0)
        self._after({hub})

    def _chain_status(self, hub: bytes, owner: bytes) -> ChainState | None:
        """The wallet's on-chain state from the verifier's cache (no chain call here)."""
        verifier = getattr(getattr(self.chain, "hub_check", None), "verifier", None)
        if verifier is None:
            return None
        try:
            seen = verifier.peek(hub, owner)
        except Exception:  # a cache read; a bad entry must not stop the node
            return None
        if seen is None or seen.facts.status is None:
            return None
        from contracts.records import HubStatus as WalletStatus

        return {
            WalletStatus.REGISTERED: ChainState.REGISTERED,
            WalletStatus.SUSPECTED: ChainState.SUSPECTED,
            WalletStatus.PUNISHED: ChainState.PUNISHED,
        }.get(seen.facts.status)

    def _dao_trusted_owners(self) -> list[bytes]:
        verifier = getattr(getattr(self.chain, "hub_check", None), "verifier", None)
        if verifier is None:
            return []
        out = []
        for hub, m in self.meta.items():
            if m.owner is None:
                continue
            try:
                seen = verifier.peek(hub, m.owner)
            except Exception:
                continue
            if seen is not None and seen.facts.trusted:
                out.append(m.owner)
        return out

    def _on_peer_record(self, topic: str, data: bytes) -> None:
        try:
            rec = decode_gossip(data, TOPIC_KINDS[PEERS_TOPIC])
        except MessageDecodeError:
            return
        if isinstance(rec, PeerRecord):
            self._learn_peer(bytes(rec.account), bytes(rec.peer_id))
            if bytes(rec.peer_id) in self._seed_ids:
                self.seed_accounts.add(bytes(rec.account))
            units = self.core.global_units.get(bytes(rec.account))
            if units:
                self._score(bytes(rec.peer_id), float(units))

    def _learn_peer(self, address: bytes, peer_id: bytes) -> None:
        self._peer_of[address] = peer_id
        self._peer_of.move_to_end(address)
        while len(self._peer_of) > MAX_PEER_ADDRESSES:
            self._peer_of.popitem(last=False)

    # -- after every input -----------------------------------------------------------------

    def _after(self, hubs: set[bytes], **extra: Any) -> None:
        """Publish what the core queued, log status changes, persist what changed."""
        for ev in self.core.drain_events():
            t = ev.transition
            hubs.add(ev.hub)
            self.counters["status_changes"] += 1
            log.info(
                "hub 0x%s: %s -> %s (%s%s)",
                ev.hub.hex(),
                t.source.name.lower(),
                t.target.name.lower(),
                t.reason.value,
                f": {t.detail}" if t.detail else "",
            )
        for frame in self.core.drain():
            try:
                self._out_send.send_nowait(frame)
            except trio.WouldBlock:
                self.counters["outbox_dropped"] += 1
        table = self.core.local.table()
        local_changed = table != self._local_saved
        if local_changed:
            self._local_saved = table
        self.store.save(self.core, hubs, self.meta, local=local_changed, **extra)

    # -- timers ----------------------------------------------------------------------------

    def poll_now(self) -> None:
        """One poll round: questions about the hubs most worth asking about."""
        now = self.clock()
        asked = self.core.poll(now)
        self._after({q.hub for q, _ in asked})

    def ask_about(self, hub: bytes) -> bool:
        """A question about `hub` now, out of turn (`ReputationCore.ask`); False when
        there is no one to ask (no peer on the trust topic), so that a caller does
        not wait for answers that cannot come."""
        if not self.pubsub.topic_peers(TRUST_TOPIC):
            return False
        self.core.ask(hub, self.clock())
        self._after({hub})
        return True

    def tick(self) -> None:
        """Wake the core if its deadline passed (paydays, questions expiring)."""
        now = self.clock()
        deadline = self.core.next_deadline()
        if deadline is not None and deadline <= now:
            self.core.on_timer(now)
            self._after({h for h, _ in self.core.evidence.ledgers})

    def recompute_trust(self) -> dict[bytes, float]:
        """Global trust from our local trust row, pre-trusted peers feeding it."""
        now = self.clock()
        pre: dict[bytes, float] = {_addr(a): 1.0 for a in self.settings.pretrusted}
        for owner in [*self._dao_trusted_owners(), *self.seed_accounts]:
            pre[owner] = 1.0
        me = self.core.address
        # our row, and the rows other nodes published: trust flows from the pre-trusted
        # through whom they (and those they trust) found honest, each row weighed by how
        # far its truster's verdicts on hubs match our own evidence (EigenTrust++)
        rows: dict[bytes, Mapping[bytes, float]] = {me: self.core.local.row()}
        cred = {me: 1.0}
        ours = self.core.own_claims()
        for truster, row in self.core.rows.items():
            rows[truster] = row.trusted()
            cred[truster] = similarity(ours, row.claims(), unknown=0.5)
        self.global_trust_calc.update(rows, pre, credibility=cred)
        units = self.global_trust_calc.units()
        units.pop(me, None)  # our own answers never count; neither does our own standing
        self.core.set_global_trust(units)
        self.core.reevaluate_all(now)
        self.counters["trust_updates"] += 1
        for peer in list(self._scored):
            self.pubsub.set_app_score(peer, 0.0)
        self._scored.clear()
        for address, u in units.items():
            pid = self._peer_of.get(address)
            if pid is not None:
                self._score(pid, u)
        self._after(set(), global_trust=units)
        return units

    def publish_row(self) -> None:
        """Our local trust row and verdicts on hubs, for the others' global trust."""
        self.core.publish_row(self.clock())
        self._after(set())

    def _score(self, peer_id: bytes, units: float) -> None:
        self.pubsub.set_app_score(peer_id, app_specific_score(units, self.params.score))
        self._scored.add(peer_id)

    async def read_chain(self) -> None:
        """Payments from the wallets of the hubs we know; on-chain states from the cache."""
        if self.chain is None:
            return
        now = self.clock()
        for hub, m in list(self.meta.items()):
            if m.owner is not None:
                state = self._chain_status(hub, m.owner)
                if state is not None:
                    self.core.chain_state(hub, state, now)
        with_agreement = {h for h, _ in self.core.evidence.ledgers}
        order = sorted(self._cursor, key=lambda h: (h not in with_agreement, self._cursor[h]))
        wallets = {h: self._cursor[h] for h in order[:MAX_WALLETS_PER_READ]}
        system = getattr(self.chain, "system", None)
        seen: list[chainfeed.SeenPayment] = []
        if system is not None and wallets:
            try:
                seen, head, since = await trio.to_thread.run_sync(chainfeed.read, system, wallets)
            except Exception as exc:  # a chain hiccup must not stop the node
                self.counters["chain_errors"] += 1
                log.warning("reputation: reading hub wallet payments failed: %s", exc)
                head = None
            if head is not None:
                for h in wallets:
                    self._cursor[h] = head
                    self._payees.setdefault(h, {})  # read: who it paid is now known
                    self._last_paid.setdefault(h, {})
                for h, t in since.items():
                    self._since.setdefault(h, t)
        rows = []
        for p in seen:
            self.counters["payments_read"] += 1
            row = self._payees.setdefault(p.hub, {})
            row[p.worker] = row.get(p.worker, 0) + 1
            paid = self._last_paid.setdefault(p.hub, {})
            paid[p.worker] = max(p.at, paid.get(p.worker, p.at))
            if self.core.payment_observed(Payment(p.hub, p.worker, p.amount, p.at)):
                self.counters["payments_matched"] += 1
            rows.append((p.hub, p.worker, p.amount, p.at, p.block))
        kv = {
            "cursors": json.dumps({_hex(h): b for h, b in self._cursor.items()}),
            "since": json.dumps({_hex(h): t for h, t in self._since.items()}),
        }
        self._after({p.hub for p in seen}, payments=rows, kv=kv)

    def scan_deals(self) -> None:
        """Consumer deals, once closed and past the grace for fetching their results.

        A deal whose results this node never asked for says nothing about the hub;
        results fetched and verified against the hub's receipt make it a good deal;
        a fetch started whose results never verified, a failed one."""
        market = self.ctx.services.get("market")
        store = getattr(market, "store", None)
        if store is None:
            return
        from p2pnode.market.taskwire import task_id_of

        now = self.clock()
        judged: list[tuple[int, str]] = []
        for row in store.deals(status="closed"):
            if row.role != "consumer" or row.deal_id in self._judged or not row.start_time:
                continue
            if now < row.updated_at + self.settings.deal_grace:
                continue
            work = self.data_dir / "tasks" / task_id_of(row.deal_id)
            self._judged.add(row.deal_id)
            if not work.is_dir():
                judged.append((row.deal_id, "none"))
                continue
            ok = (work / "receipt.json").is_file()
            hub = _addr(row.hub)
            self.core.deal_outcome(
                DealOutcome(hub, row.deal_id.to_bytes(32, "big"), True, ok, True, now), now
            )
            self.counters["deals_judged"] += 1
            judged.append((row.deal_id, "good" if ok else "failed"))
            self._after({hub})
        if judged:
            self._after(set(), deals=judged)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._publisher)
            self.recompute_trust()
            now = self.clock()
            s = self.settings
            # the first poll waits one interval: the mesh forms and peers hear of hubs first
            self._due = _Due(
                now + s.poll_interval, now + s.trust_interval, now + s.poll_interval, now, now
            )
            task_status.started()
            while True:
                await self._step()

    async def _step(self) -> None:
        now = self.clock()
        s, due = self.settings, self._due
        if now >= due.poll:
            self.poll_now()
            due.poll = now + s.poll_interval
        self.tick()
        if now >= due.trust:
            self.recompute_trust()
            due.trust = now + s.trust_interval
        if now >= due.row:
            self.publish_row()
            due.row = now + s.row_interval
        if now >= due.chain:
            await self.read_chain()
            due.chain = now + s.chain_interval
        if now >= due.deals:
            self.scan_deals()
            due.deals = now + max(s.chain_interval, 5.0)
        deadline = self.core.next_deadline()
        nxt = min(due.poll, due.trust, due.chain, due.deals, now + MAX_TICK)
        if deadline is not None:
            nxt = min(nxt, deadline)
        await trio.sleep(max(0.05, nxt - self.clock()))

    # -- what the API and metrics read -----------------------------------------------------

    def status_counts(self) -> dict[str, int]:
        """How many hubs stand at each status: what hubs() says, without the trust
        and tallies it works out per hub (the web view reads this twice a second)."""
        counts: dict[str, int] = {}
        for rec in self.core.records.values():
            name = rec.status.name.lower()
            counts[name] = counts.get(name, 0) + 1
        return counts

    def hubs(self) -> list[dict[str, Any]]:
        """Each hub known: status, why, history, payments seen, trust and rating."""
        totals = self.store.payment_totals()
        ledgers: dict[bytes, int] = {}
        for h, _ in self.core.evidence.ledgers:
            ledgers[h] = ledgers.get(h, 0) + 1
        out = []
        for hub, rec in self.core.records.items():
            m = self.meta.get(hub, HubMeta())
            last = rec.history[-1] if rec.history else None
            count, total = totals.get(hub, (0, 0))
            ev = self.core.evidence.summary(hub)
            t = self.core.tally(hub, self.clock())
            trust = self.global_trust(hub)
            out.append(
                {
                    "hub": _hex(hub),
                    "owner": _hex(m.owner),
                    "name": m.name,
                    "status": rec.status.name.lower(),
                    "reason": last.reason.name.lower() if last else None,
                    "why": last.reason.value if last else "",
                    "detail": last.detail if last else "",
                    "since": last.at if last else None,
                    "history": [
                        {
                            "at": x.at,
                            "from": x.source.name.lower(),
                            "to": x.target.name.lower(),
                            "reason": x.reason.name.lower(),
                            "detail": x.detail,
                        }
                        for x in rec.history
                    ],
                    "payments_seen": count,
                    "paid_total": str(total),
                    "agreements": ledgers.get(hub, 0),
                    "evidence": ev.verdict.name.lower() if ev is not None else None,
                    "answers": len(self.core.answers.get(hub, {})),
                    "weight_positive": round(t.positive, 6),
                    "weight_negative": round(t.negative, 6),
                    "warning": round(self.core.warning(hub, self.clock()), 6),
                    "proven": self.core.proven_answers(hub),
                    "trust": trust if math.isfinite(trust) else 0.0,
                    "rating": self.rating(m.owner) if m.owner is not None else 0,
                }
            )
        out.sort(key=lambda d: (d["status"], d["hub"]))
        return out

    def stats(self) -> dict[str, float]:
        """Exported on /metrics as sonm_reputation_*: statuses and poll traffic."""
        out: dict[str, float] = {f"hubs_{s.name.lower()}": 0.0 for s in HubStatus}
        for rec in self.core.records.values():
            out[f"hubs_{rec.status.name.lower()}"] += 1
        for key, value in self.core.counters.items():
            out[f"poll_{key}"] = float(value)
        for key, value in self.counters.items():
            out[key] = float(value)
        out["outstanding_questions"] = float(len(self.core._outstanding))
        out["trusted_peers"] = float(len(self.core.global_units))
        out["local_trust_peers"] = float(len(self.core.local))
        out["store_writes"] = float(self.store.writes)
        return out


def params_of(settings: ReputationSection) -> ReputationParams:
    """The core's parameters: its defaults, with what the node's config may set."""
    params = ReputationParams(status=StatusParams(payment_grace_s=settings.payment_grace))
    params.validate()
    return params


def _peer_ids_of(bootstrap: tuple[str, ...]) -> set[bytes]:
    from libp2p.peer.id import ID

    out = set()
    for addr in bootstrap:
        if "/p2p/" in addr:
            try:
                out.add(ID.from_base58(addr.rsplit("/p2p/", 1)[1]).to_bytes())
            except Exception:  # the config check already refused malformed addresses
                continue
    return out


def reputation_service(ctx: NodeContext) -> ReputationService:
    """The factory: provides `ctx.reputation` to the services after it."""
    service = ReputationService(ctx)
    ctx.reputation = service
    return service
