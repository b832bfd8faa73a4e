"""The chain as a daemon service: hub verification for the gossip validator.

Runs only when both `chain.rpc` and `chain.addresses` are set (a node without a
chain cannot tell real hubs from fake ones, so it passes every well-signed
announcement and says so in its log). The gossip validator must answer at once,
so it asks `hub_check` (contracts.gossip_adapter.ChainHubCheck), which answers from
the verifier's cache and queues unknown hubs; this service runs the blocking
lookups (`refresh()`, JSON-RPC) in a worker thread every `REFRESH_INTERVAL`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import trio

from p2pnode.config import NodeConfig
from p2pnode.context import NodeContext
from p2pnode.errors import UserError

log = logging.getLogger(__name__)

REFRESH_INTERVAL = 2.0


class ChainService:
    """Connects at construction (so a wrong URL or file stops the start with one line)."""

    def __init__(self, config: NodeConfig) -> None:
        from contracts.chain import rpc_chain
        from contracts.deploy import System, SystemAddresses
        from contracts.errors import ChainError
        from contracts.gossip_adapter import ChainHubCheck
        from contracts.verify import HubVerifier, VerifierParams

        rpc, path = config.chain.rpc, config.chain.addresses
        addresses = SystemAddresses.load(Path(path).expanduser())  # UserError if bad
        if addresses.chain_id != config.chain.chain_id:
            raise UserError(
                f"chain.chain_id = {config.chain.chain_id}: allowed {addresses.chain_id}, "
                f"the chain {path} was deployed on"
            )
        try:
            chain = rpc_chain(rpc)
            if chain.chain_id != addresses.chain_id:
                raise UserError(
                    f"chain.rpc = {rpc!r} is chain {chain.chain_id}, "
                    f"but chain.addresses is for chain {addresses.chain_id}"
                )
            self.system = System.connect(chain, addresses)
            minimum = self.system.factory.deposit()
        except ChainError as exc:
            raise UserError(f"chain.rpc = {rpc!r}: {exc}") from None
        self.verifier = HubVerifier(self.system, VerifierParams(min_frozen_funds=minimum))
        self.hub_check = ChainHubCheck(self.verifier)
        self.refreshes = 0

    def stats(self) -> dict[str, float]:
        """Exported on /metrics as sonm_chain_*."""
        from p2pnode.metrics import dataclass_numbers

        out = dataclass_numbers(self.hub_check.counters, "hubcheck_")
        out.update(dataclass_numbers(self.verifier.stats, "verifier_"))
        out["hubcheck_queued"] = float(self.hub_check.queued)
        out["refreshes"] = float(self.refreshes)
        return out

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(REFRESH_INTERVAL)
            try:
                done = await trio.to_thread.run_sync(  # type: ignore[call-arg]
                    self.hub_check.refresh, abandon_on_cancel=True
                )
            except Exception as exc:  # a chain hiccup must not stop the node
                log.warning("hub lookups failed: %s", exc)
                continue
            self.refreshes += 1
            if done:
                log.info("checked %d hubs on chain", len(done))


def chain_service(ctx: NodeContext) -> ChainService | None:
    """The factory: None (no service) when the chain is not configured; else it
    provides `ctx.chain` to the services after it."""
    config = ctx.config
    if not (config.chain.rpc and config.chain.addresses):
        if config.node.role != "seed":
            log.warning(
                "no chain configured (chain.rpc, chain.addresses): hub announcements "
                "are not checked against the whitelist"
            )
        return None
    service = ChainService(config)
    ctx.chain = service
    return service
