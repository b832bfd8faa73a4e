"""The worker daemon (`sonm-p2p run --role worker`): it picks a hub, joins it, and
runs the deals' tasks its hub hands it.

Every `worker.check_interval` the agent looks at the hubs heard on the hubs topic:
it asks each acceptable one for its offer (what it pays per hour) over
`/sonm/worker/1`, reads each one's status (the reputation service when the node
runs one, else the on-chain check of its announcement, p2pnode/worker/status.py),
and lets the policy (p2pnode/worker/policy.py) say whether to stay, join, or leave.
A join sends the signed agreement (this machine's hardware record and the pay per
hour the hub offered) and keeps the hub's countersigned answer.

Orders from the hub (TaskOrder, LogsOrder, ResultsOrder, StopOrder) are checked:
signed by the hub this worker joined (or, for a task's output and results, the hub
that ordered that task), addressed to this worker, within their validity window.
A task runs in this node's executor under the limits the hub's slot gives; its
receipt is signed by this worker's account and the hub countersigns it.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from gossip import codec
from gossip.eip712 import SigningDomain
from gossip.hubs import HubAnnouncement
from gossip.messages import MessageDecodeError
from gossip.orders import NetworkType
from p2pnode.errors import RemoteError, UserError
from p2pnode.executor import (
    DealTask,
    EngineError,
    Executor,
    SlotLimits,
    TaskRefused,
    TaskSpecError,
    TaskStartError,
)
from p2pnode.executor.executor import run_until_engine_fails
from p2pnode.framestreams import InboundStreams
from p2pnode.hardware.bench import with_scores
from p2pnode.market import taskwire
from p2pnode.market.tasksvc import serve_archive, stream_logs
from p2pnode.worker import link, policy, wire
from p2pnode.worker.membership import Membership, MembershipStore
from p2pnode.worker.status import MAX_HUBS, ChainStatusSource, HubStatusSource
from reputation.agreement import AgreementProof
from reputation.state import HubStatus

log = logging.getLogger(__name__)

OFFER_TTL = 300.0  # seconds an offer heard is used before it is asked again
# a hub that said it is full frees a place when one of its workers leaves: a worker
# waiting on it asks again after this many looks (never later than OFFER_TTL)
CLOSED_OFFER_LOOKS = 6
MAX_OFFERS_PER_ROUND = 8
LEAVE_RETRIES = 10  # more tries (one per check_interval) of a leave notice a hub did not take
MAX_UNSENT_LEAVES = 16  # hubs left whose notice is still being sent
MAX_ASKS_PER_STEP = 3  # hubs asked about in one look, one after the other


@dataclass(frozen=True)
class AgentParams:
    policy: policy.PolicyParams
    check_interval: float = 10.0
    stream_timeout: float = 15.0
    max_inbound_streams: int = 64
    # seconds a worker waits for answers after asking the network about a hub it
    # is about to join (policy.Ask); 0: it joins without asking
    ask_wait: float = 2.0

    def validate(self) -> None:
        self.policy.validate()
        if not self.check_interval > 0 or not self.stream_timeout > 0:
            raise ValueError("check_interval, stream_timeout: must be > 0")
        if not 0.0 <= self.ask_wait <= 600.0:
            raise ValueError(f"ask_wait: must be in [0, 600] s, got {self.ask_wait}")
        if self.max_inbound_streams < 1:
            raise ValueError("max_inbound_streams: must be >= 1")


@dataclass
class HeardHub:
    announcement: HubAnnouncement
    peer_id: str
    offer: wire.Offer | None = None
    offer_at: float = 0.0

    @property
    def addr(self) -> str:
        return self.announcement.multiaddrs[0] if self.announcement.multiaddrs else ""


class WorkerAgent:
    def __init__(
        self,
        host: Any,
        store: MembershipStore,
        executor: Executor | None,
        *,
        domain: SigningDomain,
        private_key: bytes,
        address: bytes,
        hardware: Callable[[], Any],
        addrs: Callable[[], list[str]],
        scores: Callable[[Any], dict[str, int]] | None = None,
        statuses: HubStatusSource,
        chain_statuses: ChainStatusSource,
        params: AgentParams,
        reputation: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        params.validate()
        self.host = host
        self.store = store
        self.executor = executor
        self.domain = domain
        self._key = private_key
        self.address = address
        self._hardware = hardware
        self._scores = scores
        self._addrs = addrs
        self.statuses = statuses
        self.chain_statuses = chain_statuses
        self.params = params
        self.reputation = reputation
        self.clock = clock
        self.record: Any = None
        self.hubs: OrderedDict[bytes, HeardHub] = OrderedDict()
        self._unsent_leaves: dict[bytes, tuple[Membership, int]] = {}
        # the hubs asked about in this look, their answers in (`ask_wait` waited):
        # only those may be joined in it. Answers from an earlier look are not
        # news: a hub that was full then frees its place the moment a worker it
        # stiffed leaves, and that worker's warning is the news that matters.
        self._asked: set[bytes] = set()
        self._ask_budget = policy.AskBudget()
        self._inbound = InboundStreams()
        self._engine_ready = False
        self.last_action = "starting"
        self.counters: dict[str, int] = {
            "announcements": 0,
            "offers": 0,
            "asked": 0,
            "asks_deferred": 0,
            "joins": 0,
            "joins_refused": 0,
            "leaves": 0,
            "tasks": 0,
            "orders_refused": 0,
            "bad_messages": 0,
        }

    def stats(self) -> dict[str, float]:
        out = {k: float(v) for k, v in self.counters.items()}
        out["hubs_heard"] = float(len(self.hubs))
        out["joined"] = float(self.store.current() is not None)
        return out

    def status(self) -> dict[str, Any]:
        current = self.store.current()
        return {
            "worker": "0x" + self.address.hex(),
            "joined": current.to_json() if current is not None else None,
            "last_action": self.last_action,
            "hubs": [
                {
                    "wallet": "0x" + w.hex(),
                    "status": self.statuses.status(w).name.lower(),
                    "pay_per_hour": str(h.offer.pay_per_hour) if h.offer else None,
                    "open": bool(h.offer.open) if h.offer else None,
                    "warned": self.statuses.warned(w),
                }
                for w, h in self.hubs.items()
            ],
        }

    # -- announcements heard ------------------------------------------------------------

    def on_delivery(self, topic: str, data: bytes, verdict: Any = None) -> None:
        msg = getattr(verdict, "message", None)
        if msg is None:
            try:
                msg = codec.decode(data)
            except MessageDecodeError:
                return
        if not isinstance(msg, HubAnnouncement):
            return
        try:
            peer = ID(msg.peer_id).to_base58()
        except Exception:
            return
        self.counters["announcements"] += 1
        wallet = bytes(msg.wallet)
        known = self.hubs.get(wallet)
        if known is not None and known.announcement.sequence >= msg.sequence:
            return
        self.hubs[wallet] = HeardHub(
            msg, peer, known.offer if known else None, known.offer_at if known else 0.0
        )
        self.hubs.move_to_end(wallet)
        while len(self.hubs) > MAX_HUBS:
            self.hubs.popitem(last=False)
        self.chain_statuses.observe(msg)

    # -- the service ----------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.host.set_stream_handler(TProtocol(wire.PROTOCOL_ID), self._handle_stream)
        self.record = await trio.to_thread.run_sync(self._hardware)
        async with trio.open_nursery() as nursery:
            if self.executor is not None:
                await nursery.start(self._run_executor)
            nursery.start_soon(self._loop)
            task_status.started()

    async def _run_executor(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        assert self.executor is not None
        exc = await run_until_engine_fails(
            self.executor, self._set_engine_ready, task_status=task_status
        )
        if exc is not None:
            log.warning("worker: no container engine: %s", exc)

    def _set_engine_ready(self, ready: bool) -> None:
        self._engine_ready = ready

    async def _loop(self) -> None:
        while True:
            try:
                await self.step()
            except Exception as exc:  # a peer gone mid-request must not stop the worker
                log.warning("worker: %s", exc)
            await trio.sleep(self.params.check_interval)

    def running_tasks(self) -> int:
        if self.executor is None:
            return 0
        return len(self.executor.store.unfinished())

    def candidates(self) -> list[policy.Candidate]:
        out = []
        for wallet, heard in self.hubs.items():
            offer = heard.offer
            out.append(
                policy.Candidate(
                    wallet=wallet,
                    status=self.statuses.status(wallet),
                    pay_per_hour=offer.pay_per_hour if offer is not None else None,
                    open=bool(offer.open) if offer is not None else True,
                    warned=self.statuses.warned(wallet),
                    asked=self.params.ask_wait == 0 or wallet in self._asked,
                )
            )
        return out

    async def _ask(self, wallet: bytes) -> bool:
        """Ask about the hub and wait `ask_wait` for the answers (which the reputation
        service takes in meanwhile: they are in its warning when we decide again).
        False: the question budget is spent; nothing was asked, and the hub is not
        to be joined in this look."""
        if not self._ask_budget.take(self.clock()):
            self.counters["asks_deferred"] += 1
            return False
        if self.statuses.ask(wallet):
            self.counters["asked"] += 1
            await trio.sleep(self.params.ask_wait)
        else:  # nobody to ask: nothing to wait for, and nothing spent
            self._ask_budget.refund()
        self._asked.add(wallet)
        return True

    async def step(self) -> policy.Action:
        """One look at the hubs: refresh offers, then stay, join or leave."""
        if self._unsent_leaves:
            await self._resend_leaves()
        current = self.store.current()
        if current is None:
            await self._refresh_offers()
        self._asked.clear()
        action = self._decide(current)
        for _ in range(MAX_ASKS_PER_STEP):
            if not isinstance(action, policy.Ask):
                break
            self.last_action = f"ask: {action.why}"
            if not await self._ask(action.wallet):
                action = policy.Stay(
                    f"{policy.ASKS_SPENT}; asks about 0x{action.wallet.hex()} at a later look"
                )
                break
            current = self.store.current()
            action = self._decide(current)  # with the answers in
        self.last_action = f"{type(action).__name__.lower()}: {action.why}"
        if isinstance(action, policy.Join):
            await self._join(self.hubs[action.wallet])
        elif isinstance(action, policy.Leave):
            assert current is not None
            await self._leave(current, action.why)
        return action

    def _decide(self, current: Membership | None) -> policy.Action:
        joined = current.wallet if current is not None else None
        status = self.statuses.status(joined) if joined is not None else HubStatus.UNKNOWN
        warned = joined is not None and self.statuses.warned(joined)
        return policy.decide(
            joined, status, self.running_tasks(), self.candidates(), self.params.policy, warned
        )

    def _offer_ttl(self, offer: wire.Offer) -> float:
        if offer.open:
            return OFFER_TTL
        return min(OFFER_TTL, CLOSED_OFFER_LOOKS * self.params.check_interval)

    async def _refresh_offers(self) -> None:
        now = self.clock()
        asked = 0
        for wallet, heard in list(self.hubs.items()):
            if asked >= MAX_OFFERS_PER_ROUND:
                return
            if heard.offer is not None and now - heard.offer_at < self._offer_ttl(heard.offer):
                continue
            probe = policy.Candidate(wallet, self.statuses.status(wallet), 0, True)
            why = policy.excluded(probe, self.params.policy)
            if why is not None and not why.startswith("pays"):
                continue  # not joinable whatever it offers: do not ask
            asked += 1
            req = wire.OfferRequest(self.address, int(now * 1000), int(now) + 60)
            try:
                offer = await link.request(
                    self.host,
                    heard.peer_id,
                    heard.addr,
                    wire.sign(req, self.domain, self._key),
                    self.domain,
                    (wire.Offer,),
                    self.params.stream_timeout,
                )
            except Exception as exc:  # gone, or answering garbage: asked again later
                log.info("worker: hub 0x%s gave no offer: %s", wallet.hex(), exc)
                heard.offer_at = now
                continue
            if offer.wallet != wallet or offer.hub != heard.announcement.owner:
                log.info("worker: offer for 0x%s not from its owner", wallet.hex())
                continue
            self.counters["offers"] += 1
            heard.offer, heard.offer_at = offer, now

    async def _join(self, heard: HeardHub) -> None:
        assert heard.offer is not None
        offer = heard.offer
        addrs = self._addrs()
        if not addrs:
            raise UserError("this worker has no address its hub can reach")
        now = self.clock()
        req = wire.sign(
            wire.JoinRequest(
                worker=self.address,
                hub=offer.hub,
                wallet=offer.wallet,
                addr=addrs[0],
                hardware=json.dumps(
                    with_scores(self.record, self._scores(self.record) if self._scores else {}),
                    sort_keys=True,
                ).encode(),
                pay_per_hour=offer.pay_per_hour,
                payout_period=offer.payout_period,
                nonce=int(now * 1000),
                valid_until=int(now) + 60,
            ),
            self.domain,
            self._key,
        )
        answer = await link.request(
            self.host,
            heard.peer_id,
            heard.addr,
            req,
            self.domain,
            (wire.HubAnswer,),
            self.params.stream_timeout,
        )
        if answer.hub != offer.hub or answer.ref != wire.digest(self.domain, req):
            raise RemoteError("the hub's answer does not countersign this join")
        if not answer.ok:
            self.counters["joins_refused"] += 1
            heard.offer = None  # ask again next time: its terms may have changed
            raise RemoteError(f"hub 0x{offer.wallet.hex()} refused the join: {answer.reason}")
        member = self.store.joined(
            wallet=offer.wallet,
            owner=offer.hub,
            peer_id=heard.peer_id,
            addr=heard.addr,
            pay_per_hour=offer.pay_per_hour,
            payout_period=offer.payout_period,
            at=float(answer.at),
            request=wire.encode(req),
            answer=wire.encode(answer),
        )
        self.counters["joins"] += 1
        log.info(
            "worker: joined hub 0x%s at %d wei per hour", offer.wallet.hex(), member.pay_per_hour
        )
        self._tell_reputation_joined(member, AgreementProof.of(req, answer))

    async def _send_leave(self, current: Membership) -> bool:
        """The signed leave notice to the hub; False when it did not answer."""
        now = self.clock()
        notice = wire.sign(
            wire.LeaveNotice(
                self.address, current.owner, current.wallet, int(now * 1000), int(now) + 60
            ),
            self.domain,
            self._key,
        )
        try:
            await link.request(
                self.host,
                current.peer_id,
                current.addr,
                notice,
                self.domain,
                (wire.HubAnswer,),
                self.params.stream_timeout,
            )
        except Exception as exc:
            log.info(
                "worker: hub 0x%s did not take the leave notice: %s", current.wallet.hex(), exc
            )
            return False
        return True

    async def _resend_leaves(self) -> None:
        """Leave notices a hub did not take are sent again, a few times: until it hears
        one, the hub counts this worker as joined (a slot it cannot fill, pay it owes)."""
        for wallet, (member, tries) in list(self._unsent_leaves.items()):
            if await self._send_leave(member) or tries + 1 >= LEAVE_RETRIES:
                del self._unsent_leaves[wallet]
            else:
                self._unsent_leaves[wallet] = (member, tries + 1)

    async def _leave(self, current: Membership, why: str) -> None:
        now = self.clock()
        # a hub that does not answer is left all the same; the notice is sent again
        if not await self._send_leave(current):
            self._unsent_leaves[current.wallet] = (current, 0)
            while len(self._unsent_leaves) > MAX_UNSENT_LEAVES:
                self._unsent_leaves.pop(next(iter(self._unsent_leaves)))
        self.store.left(now)
        self.counters["leaves"] += 1
        log.info("worker: left hub 0x%s: %s", current.wallet.hex(), why)
        if self.reputation is not None and hasattr(self.reputation, "end_agreement"):
            try:
                self.reputation.end_agreement(current.wallet, self.address, now)
            except Exception as exc:
                log.warning("worker: reputation did not take the agreement's end: %s", exc)

    def _tell_reputation_joined(self, member: Membership, proof: AgreementProof) -> None:
        """The reputation service judges the hub's payments against this agreement, and
        keeps the hub's countersignature of it: the proof it sends with a "BAD" should
        the hub miss the first payday."""
        if self.reputation is None or not hasattr(self.reputation, "add_agreement"):
            return
        from reputation.evidence import Agreement

        try:
            agreement = Agreement(
                worker=self.address,
                hub=member.wallet,
                pay_per_hour=member.pay_per_hour,
                payout_period_s=member.payout_period,
                start=member.joined_at,
            )
            agreement.validate()
            self.reputation.add_agreement(agreement, proof)
        except Exception as exc:
            log.warning("worker: reputation did not take the agreement: %s", exc)

    # -- /sonm/worker/1: orders from the hub ------------------------------------------------

    async def _handle_stream(self, stream: Any) -> None:
        cap = self.params.max_inbound_streams
        await self._inbound.serve(
            stream, self._serve, cap=cap, counters=self.counters, log=log, what="worker: stream"
        )

    async def _answer(self, stream: Any, hub: bytes, deal_id: int, ok: bool, reason: str) -> None:
        if not ok:
            self.counters["orders_refused"] += 1
        msg = wire.WorkerAnswer(self.address, hub, deal_id, int(ok), wire.reason_text(reason))
        await stream.write(wire.frame(wire.sign(msg, self.domain, self._key)))

    def _check_order(self, msg: Any) -> str | None:
        why = wire.check_window(msg.valid_until, self.clock())
        if why is not None:
            return why
        if msg.worker != self.address:
            return "addressed to another worker"
        current = self.store.current()
        if isinstance(msg, wire.TaskOrder):
            if current is None or msg.hub != current.owner:
                return "this worker has not joined the sender's hub"
        elif self.store.hub_of_deal(msg.deal_id) != msg.hub:
            return f"deal {msg.deal_id} was not handed here by the sender"
        if self.executor is None:
            return "this worker runs no tasks (no account or engine)"
        if not self._engine_ready:
            return "the container engine is not ready on this worker"
        return None

    async def _serve(self, stream: Any) -> None:
        try:
            msg = await link.read_message(
                stream,
                wire.reader(wire.WORKER_ORDERS),
                self.domain,
                wire.WORKER_ORDERS,
                self.params.stream_timeout,
            )
        except RemoteError as exc:  # oversized, malformed, unsigned, mis-signed
            self.counters["bad_messages"] += 1
            await self._answer(stream, bytes(20), 0, False, str(exc))
            return
        why = self._check_order(msg)
        if why is not None:
            await self._answer(stream, msg.hub, msg.deal_id, False, why)
            return
        assert self.executor is not None
        task_id = taskwire.task_id_of(msg.deal_id)
        if isinstance(msg, wire.TaskOrder):
            ok, reason = await self._start(msg)
            await self._answer(stream, msg.hub, msg.deal_id, ok, reason)
        elif isinstance(msg, wire.LogsOrder):
            if self.executor.task(task_id) is None:
                await self._answer(stream, msg.hub, msg.deal_id, False, "no task for this deal")
                return
            await self._answer(stream, msg.hub, msg.deal_id, True, "logs follow")
            await stream_logs(
                stream, self.executor, task_id, follow=bool(msg.follow), tail=msg.tail
            )
        elif isinstance(msg, wire.ResultsOrder):
            try:
                outcome = self.executor.outcome(task_id)
            except UserError as exc:
                await self._answer(stream, msg.hub, msg.deal_id, False, str(exc))
                return
            if outcome.receipt is None or outcome.results_path is None:
                why = f"task ended {outcome.reason}: {outcome.error or 'no results were kept'}"
                await self._answer(stream, msg.hub, msg.deal_id, False, why)
                return
            await self._answer(stream, msg.hub, msg.deal_id, True, "results follow")
            await serve_archive(
                stream, outcome.receipt, outcome.results_path, timeout=self.params.stream_timeout
            )
        else:
            stopped = await self.executor.stop_deal(msg.deal_id, "closed")
            await self._answer(stream, msg.hub, msg.deal_id, True, f"{stopped} stopped")

    async def _start(self, msg: wire.TaskOrder) -> tuple[bool, str]:
        assert self.executor is not None
        if msg.ends_at <= self.clock():
            return False, f"deal {msg.deal_id} has ended"
        task_id = taskwire.task_id_of(msg.deal_id)
        if (
            self.executor.task(task_id) is not None
            and self.store.hub_of_deal(msg.deal_id) == msg.hub
        ):
            # the hub sends an order again when the stream died before our answer;
            # it refuses a consumer's second start itself
            return True, "started"
        try:
            spec = taskwire.unpack_spec(msg.spec)
            limits = SlotLimits(
                cpu_cores=float(msg.cpu_cores),
                ram_bytes=msg.ram_bytes,
                storage_bytes=msg.storage_bytes,
                network=NetworkType(msg.network),
                gpu_uuids=msg.gpu_uuids,
            )
            self.store.record_deal(msg.deal_id, msg.hub, msg.consumer, self.clock())
            await self.executor.start_task(
                DealTask(
                    deal_id=msg.deal_id,
                    task_id=taskwire.task_id_of(msg.deal_id),
                    spec=spec,
                    limits=limits,
                    ends_at=float(msg.ends_at),
                )
            )
        except (TaskSpecError, TaskRefused, TaskStartError) as exc:
            return False, str(exc)
        except (EngineError, UserError, ValueError) as exc:
            return False, f"cannot start: {exc}"
        self.counters["tasks"] += 1
        log.info("worker: deal %d: task started (%s)", msg.deal_id, spec.image)
        return True, "started"
