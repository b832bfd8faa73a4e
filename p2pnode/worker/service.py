"""The daemon's `workers` service: a worker node's agent, or a hub's side of its
remote workers, or nothing (consumers, seeds, a supplier without an account).

After "tasks": a hub puts its remote runner on the tasks service, so a deal on a
slot held by a remote worker is forwarded there.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from gossip import codec
from gossip.eip712 import SigningDomain
from gossip.messages import MessageDecodeError
from gossip.topics import HUBS_TOPIC
from p2pnode.context import NodeContext, need
from p2pnode.errors import UserError
from p2pnode.market.dealsvc import MarketService
from p2pnode.market.tasksvc import TaskService
from p2pnode.worker.agent import AgentParams, WorkerAgent
from p2pnode.worker.hub import HubWorkerParams, HubWorkers
from p2pnode.worker.membership import MembershipStore
from p2pnode.worker.policy import PolicyParams
from p2pnode.worker.registry import WorkerRegistry
from p2pnode.worker.status import ChainStatusSource
from reputation.state import HubStatus

log = logging.getLogger(__name__)


class ContextStatuses:
    """The reputation service's statuses when the node runs one (looked up at each
    call: it may be built after this service), else the chain check's."""

    def __init__(self, ctx: NodeContext, chain: ChainStatusSource) -> None:
        self.ctx = ctx
        self.chain = chain

    def status(self, hub: bytes) -> HubStatus:
        rep = getattr(self.ctx, "reputation", None)
        if rep is not None and callable(getattr(rep, "status", None)):
            return HubStatus(rep.status(hub))
        return self.chain.status(hub)

    def warned(self, hub: bytes) -> bool:
        rep = getattr(self.ctx, "reputation", None)
        if rep is not None and callable(getattr(rep, "warning", None)):
            return bool(rep.warning(hub, time.time()) > 0)
        return self.chain.warned(hub)

    def ask(self, hub: bytes) -> bool:
        rep = getattr(self.ctx, "reputation", None)
        if rep is not None and callable(getattr(rep, "ask_about", None)):
            return bool(rep.ask_about(hub))
        return self.chain.ask(hub)


def _listen_addrs(ctx: NodeContext) -> list[str]:
    announced = list(ctx.config.network.announce)
    if announced:
        return announced
    return [str(a).split("/p2p/", 1)[0] for a in ctx.host.get_addrs()]


def _wallets(values: tuple[str, ...]) -> frozenset[bytes]:
    return frozenset(bytes.fromhex(v[2:]) for v in values)


def workers_service(ctx: NodeContext) -> Any:
    """Daemon service factory (see the module's docstring)."""
    config = ctx.config
    pubsub = need("workers", ctx.pubsub, "pubsub")
    domain = SigningDomain(chain_id=config.chain.chain_id)
    data_dir = Path(config.data_path)
    if config.node.role == "worker":
        account = need("workers", ctx.account, "account")
        from p2pnode.executor import Executor, ExecutorSettings
        from p2pnode.hardware.bench import node_scores
        from p2pnode.hardware.detect import detect_hardware

        executor = Executor(
            ctx.storage,
            data_dir,
            ExecutorSettings.from_config(config),
            signer_key=account.private_key,
            domain=domain,
        )
        chain = ChainStatusSource(ctx.chain.hub_check if ctx.chain is not None else None, time.time)
        section = config.worker
        agent = WorkerAgent(
            ctx.host,
            MembershipStore(ctx.storage),
            executor,
            domain=domain,
            private_key=account.private_key,
            address=account.address,
            hardware=lambda: detect_hardware(data_dir),
            addrs=lambda: _listen_addrs(ctx),
            scores=lambda record: node_scores(
                data_dir,
                record,
                config.hardware.net_download_bps,
                config.hardware.net_upload_bps,
            ),
            statuses=ContextStatuses(ctx, chain),
            chain_statuses=chain,
            params=AgentParams(
                policy=PolicyParams(
                    pinned=_wallets(section.hubs_pin),
                    forbidden=_wallets(section.hubs_forbid),
                    min_pay_per_hour=int(section.min_pay_per_hour),
                ),
                check_interval=section.check_interval,
                ask_wait=section.ask_wait,
            ),
            reputation=getattr(ctx, "reputation", None),
        )

        def heard(topic: str, data: bytes) -> None:
            try:
                msg = codec.decode(data)
            except MessageDecodeError:
                return
            agent.on_delivery(topic, data, _Decoded(msg))

        pubsub.on_delivery(HUBS_TOPIC, heard)
        return agent
    market = ctx.services.get("market")
    tasks = ctx.services.get("tasks")
    if (
        config.node.role != "supplier"
        or ctx.account is None
        or not isinstance(market, MarketService)
        or market.hub_wallet is None
    ):
        return None
    if not isinstance(tasks, TaskService):
        raise UserError("service 'workers' needs the 'tasks' service started before it")
    hub_section = config.workers
    hub = HubWorkers(
        ctx.host,
        market,
        WorkerRegistry(ctx.storage),
        domain=domain,
        private_key=ctx.account.private_key,
        address=ctx.account.address,
        wallet=market.hub_wallet,
        data_dir=data_dir,
        params=HubWorkerParams(
            pay_per_hour=int(hub_section.pay_per_hour),
            payout_period=hub_section.payout_period,
            max_workers=hub_section.max_workers,
            max_pending_joins=hub_section.max_pending_joins,
            announce_interval=hub_section.announce_interval,
            announce_validity=max(3600, int(hub_section.announce_interval * 2) + 1),
        ),
        publish=pubsub.publish,
        addrs=lambda: _listen_addrs(ctx),
        name=f"hub {market.hub_wallet[:10]}",
    )
    tasks.remote = hub
    return hub


class _Decoded:
    """The shape of a validator verdict for a message decoded here."""

    def __init__(self, message: Any) -> None:
        self.message = message
