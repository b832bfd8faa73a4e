"""The services the daemon runs next to the host, in start order.

Each entry is a `ServiceSpec(name, factory)`; a factory takes (host, config,
storage) and returns an object with `async run(*, task_status)`. Add an area's
service here with one line. A later service finds earlier ones through
`host.sonm_context.services[name]` (they are built in list order).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import trio
from libp2p.abc import IHost

from p2pnode.config import NodeConfig
from p2pnode.daemon import ServiceSpec
from p2pnode.storage import Storage

log = logging.getLogger(__name__)

DeliveryHandler = Callable[[str, bytes], None]


class PubSubService:
    """Gossipsub over the host, subscribed to every application topic.

    Messages are checked by the application validator (EIP-712 signatures, schema,
    validity window, replay) before the router forwards them. Accepted messages go
    to `delivery_handlers[topic]` — services register `handler(topic, data)` there
    when they are built; a failing handler is logged and does not stop the others.
    """

    def __init__(self, host: IHost, config: NodeConfig, storage: Storage) -> None:
        from gossip.eip712 import SigningDomain
        from gossip.params import GossipSubParams
        from gossip.score_params import default_peer_score_params, default_thresholds
        from gossip.topics import ALL_TOPICS
        from gossip.validators import make_validator
        from p2pnode.pubsub import PubSub

        self.topics = ALL_TOPICS
        self.delivery_handlers: dict[str, list[DeliveryHandler]] = {}
        ctx = getattr(host, "sonm_context", None)
        chain = ctx.services.get("chain") if ctx is not None else None
        hub_check = getattr(chain, "hub_check", None)
        self.validator = make_validator(
            SigningDomain(chain_id=config.chain.chain_id),
            clock=time.time,
            hub_check=hub_check,
            # with a chain, a hub the whitelist does not know is a forgery, not a lag
            reject_failed_hubs=hub_check is not None,
        )
        # Scoring is what graylists and disconnects a flooder of forged messages;
        # seeds hand out peers in PRUNE (peer exchange), which is what they are for.
        from p2pnode.replay_store import ReplayStore

        # spent nonces survive a restart, so nothing accepted before can be replayed
        self.replay_store = ReplayStore(storage)
        self.replay_store.load_into(self.validator.replay, time.time())
        self.pubsub = PubSub(
            host,
            params=GossipSubParams(do_px=config.node.role == "seed"),
            validator=self.validator,
            score_params=default_peer_score_params(),
            thresholds=default_thresholds(),
            on_delivery=self._deliver,
            on_event=self._on_event,
        )
        # gossip PRUNEs carry signed peer records: offer ours and take others' through
        # discovery, which checks and stores them like its own peer exchange
        self.discovery = getattr(ctx, "discovery", None)
        if self.discovery is not None:
            self.pubsub.router.peer_record = self.discovery.signed_record_of
        self.px_offered_records = 0

    def stats(self) -> dict[str, float]:
        """Router and driver counters, exported on /metrics as sonm_pubsub_*."""
        from p2pnode.metrics import dataclass_numbers

        out = dataclass_numbers(self.pubsub.router.metrics, "router_")
        out.update(dataclass_numbers(self.pubsub.metrics, "driver_"))
        counters = getattr(self.validator, "counters", None)
        for reason, count in getattr(counters, "by_reason", {}).items():
            out[f"validation_{reason}"] = float(count)
        out["peers"] = float(len(self.pubsub.connected_pubsub_peers()))
        out["px_records_taken"] = float(self.px_offered_records)
        out["replay_records_written"] = float(self.replay_store.written)
        return out

    def _on_event(self, event: Any) -> None:
        from gossip.events import PeerExchange

        if isinstance(event, PeerExchange) and self.discovery is not None:
            for cand in event.candidates:
                if cand.peer_id and self.discovery.accept_offered(cand.peer_id, cand.signed_record):
                    self.px_offered_records += 1

    def _deliver(self, event: Any) -> None:
        try:
            self.replay_store.flush(self.validator.replay)
        except Exception:  # a full disk must not stop delivery; the nonces stay in memory
            log.exception("cannot persist spent nonces")
        for handler in self.delivery_handlers.get(event.topic, ()):
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


def _pubsub(host: IHost, config: NodeConfig, storage: Storage) -> PubSubService:
    return PubSubService(host, config, storage)


def _chain(host: IHost, config: NodeConfig, storage: Storage) -> Any:
    from p2pnode.chainsvc import chain_service

    return chain_service(host, config, storage)


def _orders(host: IHost, config: NodeConfig, storage: Storage) -> Any:
    from p2pnode.market.desk import orders_service

    return orders_service(host, config, storage)


def _peer_topic(host: IHost, config: NodeConfig, storage: Storage) -> Any:
    from p2pnode.peer_topic import peer_topic_service

    return peer_topic_service(host, config, storage)


def _market(host: IHost, config: NodeConfig, storage: Storage) -> Any:
    from p2pnode.market.dealsvc import market_service

    return market_service(host, config, storage)


SERVICES: list[ServiceSpec] = [
    ServiceSpec("chain", _chain),  # only with chain.rpc + chain.addresses
    ServiceSpec("pubsub", _pubsub),
    ServiceSpec("orders", _orders),
    ServiceSpec("peer_topic", _peer_topic),  # signs with the account "orders" unlocked
    ServiceSpec("market", _market),  # slots, matching, deals: needs "orders" and "chain"
]
