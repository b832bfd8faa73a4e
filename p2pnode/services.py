"""The services the daemon runs next to the host, in start order.

`SERVICES` is the start order, in code: the daemon builds and starts each in turn
after the host listens and discovery runs, and before the API opens. Each
`ServiceSpec` names what it requires (see p2pnode/context.py); a service that
offers something to later ones fills its slot on the context when it is built
(the chain its `chain`, pubsub its `pubsub`). Add an area's service here with one
line, after the services it requires.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import trio

from gossip.eip712 import SigningDomain
from gossip.events import PeerExchange
from gossip.params import GossipSubParams
from gossip.score_params import default_peer_score_params, default_thresholds
from gossip.topics import ALL_TOPICS
from gossip.validators import RouterValidator, Verdict, make_validator
from p2pnode.chainsvc import chain_service
from p2pnode.context import DeliveryHandler, NodeContext, ServiceSpec
from p2pnode.market.dealsvc import market_service
from p2pnode.market.desk import orders_service
from p2pnode.market.tasksvc import task_service
from p2pnode.metrics import dataclass_numbers
from p2pnode.peer_topic import peer_topic_service
from p2pnode.pubsub import PubSub
from p2pnode.replay_store import ReplayStore
from p2pnode.reputation.service import reputation_service
from p2pnode.validation_pool import PoolParams
from p2pnode.worker.service import workers_service

log = logging.getLogger(__name__)


class PubSubService:
    """Gossipsub over the host, subscribed to every application topic.

    Messages are checked by the application validator (EIP-712 signatures, schema,
    validity window, replay) before the router forwards them; with a chain service
    the validator checks hubs against it. Accepted messages go to the handlers
    services register with `on_delivery(topic, handler)` when they are built; a
    failing handler is logged and does not stop the others.
    """

    def __init__(self, ctx: NodeContext) -> None:
        config = ctx.config
        self.topics = ALL_TOPICS
        self._handlers: dict[str, list[DeliveryHandler]] = {}
        hub_check = ctx.chain.hub_check if ctx.chain is not None else None
        self.validator = make_validator(
            SigningDomain(chain_id=config.chain.chain_id),
            clock=time.time,
            hub_check=hub_check,
            # with a chain, a hub the whitelist does not know is a forgery, not a lag
            reject_failed_hubs=hub_check is not None,
        )
        # spent nonces survive a restart, so nothing accepted before can be replayed
        self.replay_store = ReplayStore(ctx.storage)
        self.replay_store.load_into(self.validator.replay, time.time())
        # Scoring is what graylists and disconnects a flooder of forged messages;
        # seeds hand out peers in PRUNE (peer exchange), which is what they are for.
        self.pubsub = PubSub(
            ctx.host,
            params=GossipSubParams(do_px=config.node.role == "seed"),
            # decode and signature recovery run off the loop, in worker processes
            # (or threads: node.validation)
            pooled_validator=self.validator,
            pool_params=PoolParams(
                threads=config.node.validation_workers, mode=config.node.validation
            ),
            score_params=default_peer_score_params(),
            thresholds=default_thresholds(),
            on_delivery=self._deliver,
            on_event=self._on_event,
        )
        # a peer over its message rate is charged a behaviour penalty (P7) per message
        self.validator.on_rate_excess = self._penalise
        # gossip PRUNEs carry signed peer records: offer ours and take others' through
        # discovery, which checks and stores them like its own peer exchange
        self.discovery = ctx.discovery
        if self.discovery is not None:
            self.pubsub.router.peer_record = self.discovery.signed_record_of
        self.px_offered_records = 0

    def on_delivery(self, topic: str, handler: DeliveryHandler) -> None:
        """Call `handler(topic, data)` with every accepted message on `topic`."""
        self._handlers.setdefault(topic, []).append(handler)

    async def publish(self, topic: str, data: bytes) -> bytes:
        """The message id; raises gossip.router.PublishError when no peer can take it."""
        return await self.pubsub.publish(topic, data)

    def set_topic_validator(self, topic: str, validator: RouterValidator) -> None:
        """Validate `topic` with `validator(topic, data, from_peer)` instead of the
        application validator (after the per-peer rate limit, which still applies)."""
        if topic not in self.topics:
            raise ValueError(f"topic {topic!r} is not one this node subscribes to")
        self.validator.extra[topic] = validator

    def topic_peers(self, topic: str) -> list[bytes]:
        """The peers subscribed to `topic`: who a message published there can reach."""
        return self.pubsub.topic_peers(topic)

    def set_app_score(self, peer: bytes, value: float) -> None:
        """The gossip score's application-specific value (P5) for `peer` (0 removes it)."""
        score = self.pubsub.router.peer_score
        if score is not None:
            score.set_app_score(peer, value)

    def pop_accepted(self, data: bytes) -> Verdict | None:
        return self.validator.pop_accepted(data)

    def stats(self) -> dict[str, float]:
        """Router and driver counters, exported on /metrics as sonm_pubsub_*."""
        out = dataclass_numbers(self.pubsub.router.metrics, "router_")
        out.update(dataclass_numbers(self.pubsub.metrics, "driver_"))
        if self.pubsub.pool is not None:
            out.update(dataclass_numbers(self.pubsub.pool.metrics, "driver_"))
        for reason, count in self.validator.counters.by_reason.items():
            out[f"validation_{reason}"] = float(count)
        for name, value in vars(self.validator.quota.counters).items():
            out[f"quota_{name}"] = float(value)
        out["quota_rate_refused"] = float(self.validator.rate.counters.rate_refused)
        out["quota_authors_tracked_entries"] = float(len(self.validator.quota))
        out["peers"] = float(len(self.pubsub.connected_pubsub_peers()))
        out["px_records_taken"] = float(self.px_offered_records)
        out["replay_records_written"] = float(self.replay_store.written)
        return out

    def _penalise(self, peer: bytes) -> None:
        score = self.pubsub.router.peer_score
        if score is not None:
            score.add_penalty(peer, 1)

    def _on_event(self, event: Any) -> None:
        if isinstance(event, PeerExchange) and self.discovery is not None:
            for cand in event.candidates:
                if cand.peer_id and self.discovery.accept_offered(cand.peer_id, cand.signed_record):
                    self.px_offered_records += 1

    def _deliver(self, event: Any) -> None:
        try:
            self.replay_store.flush(self.validator.replay, now=time.time())
        except Exception:  # a full disk must not stop delivery; the nonces stay in memory
            log.exception("cannot persist spent nonces")
        for handler in self._handlers.get(event.topic, ()):
            try:
                handler(event.topic, event.data)
            except Exception:
                log.exception("delivery handler for %s failed", event.topic)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.pubsub.run)
            for topic in self.topics:
                self.pubsub.subscribe(topic)
            task_status.started()


def pubsub_service(ctx: NodeContext) -> PubSubService:
    """The factory: provides `ctx.pubsub` to the services after it."""
    service = PubSubService(ctx)
    ctx.pubsub = service
    return service


SERVICES: list[ServiceSpec] = [
    ServiceSpec("chain", chain_service),  # only with chain.rpc + chain.addresses
    ServiceSpec("pubsub", pubsub_service),  # checks hubs on the chain when it runs
    # hub statuses, trust polling, global trust: `ctx.reputation` for the services after it
    ServiceSpec("reputation", reputation_service, requires=("pubsub",)),
    ServiceSpec("orders", orders_service, requires=("pubsub",)),
    ServiceSpec("peer_topic", peer_topic_service, requires=("pubsub",)),
    # slots, matching and deals: the desk places the ASKs, the chain settles deals
    ServiceSpec("market", market_service, requires=("pubsub",)),
    # deals' tasks: handed over /sonm/task/1, run by the hub's executor
    ServiceSpec("tasks", task_service, requires=("pubsub",)),
    # workers: a worker's agent, or a hub's remote workers over /sonm/worker/1
    ServiceSpec("workers", workers_service, requires=("pubsub",)),
]
