"""Signed peer records on the peers topic: which account runs which peer, and where.

Peer exchange (p2pnode/discovery.py) answers "who else is there" one connection
at a time; the peers topic spreads the same news to the whole network at once,
and binds each peer to an Ethereum account, which the market needs to know whom
an order's author can be reached at. A record carries two signatures over one
EIP-712 digest (the account's and the peer's own Ed25519 key), checked by the
gossip validator before anything here sees it. A node without an unlocked account
(a seed, usually) listens but does not announce.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from libp2p.peer.id import ID

from gossip import codec
from gossip.eip712 import SigningDomain
from gossip.messages import MessageKind
from gossip.peer_record import PeerRecord
from gossip.router import PublishError
from gossip.topics import PEERS_TOPIC
from p2pnode.context import NodeContext, need
from p2pnode.px import dialable_addrs
from p2pnode.storage import Storage

log = logging.getLogger(__name__)

REPUBLISH_INTERVAL = 600.0  # well inside the validity, so a record never lapses
VALIDITY = 3600
RETRY_INTERVAL = 2.0  # while no pubsub peer is there to take the record
_KINDS = frozenset({MessageKind.PEER_RECORD})


class PeerTopicService:
    """Requires pubsub; announces only with the account the daemon unlocked."""

    def __init__(self, ctx: NodeContext) -> None:
        self.host = ctx.host
        self.storage = ctx.storage
        self.domain = SigningDomain(chain_id=ctx.config.chain.chain_id)
        self.announce = [str(a) for a in ctx.config.network.announce]
        self.pubsub = need("peer_topic", ctx.pubsub, "pubsub")
        self.discovery = ctx.discovery
        self.account = ctx.account
        self.peer_key = Ed25519PrivateKey.from_private_bytes(
            ctx.key_pair.private_key.to_bytes()[:32]
        )
        self.me = ctx.host.get_id()
        self.published = 0
        self.received = 0  # valid records of other peers
        self.learned = 0  # of which named a peer the table did not know
        self.malformed = 0
        self.pubsub.on_delivery(PEERS_TOPIC, self.on_delivery)

    def stats(self) -> dict[str, float]:
        """Exported on /metrics as sonm_peer_topic_*."""
        return {
            "published": float(self.published),
            "received": float(self.received),
            "learned": float(self.learned),
            "malformed": float(self.malformed),
        }

    def record(self, now: float) -> bytes:
        """Our record, signed twice, encoded for the wire."""
        assert self.account is not None
        addrs = self.announce or [str(a) for a in self.host.get_transport_addrs()]
        rec = PeerRecord(
            account=self.account.address,
            peer_id=self.me.to_bytes(),
            multiaddrs=tuple(addrs[:8]),
            sequence=int(now * 1000),  # grows across restarts: the validator's replay floor
            valid_from=int(now) - 1,
            valid_until=int(now) + VALIDITY,
        ).signed(self.domain, self.account.private_key, self.peer_key)
        return codec.encode(rec)

    def on_delivery(self, topic: str, data: bytes) -> None:
        """A record the validator accepted: its peer goes into the peer table."""
        try:
            outcome = learn_from_record(self.storage, data, self.me)
        except Exception:  # the validator accepted it, so this is our bug, not theirs
            self.malformed += 1
            log.exception("an accepted peer record did not decode")
            return
        if outcome is None:
            return  # our own record, echoed back
        self.received += 1
        if outcome:
            self.learned += 1
            if self.discovery is not None:
                self.discovery.wake()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if self.account is None:
            log.info("no unlocked account: listening on %s without announcing", PEERS_TOPIC)
            return
        while True:
            try:
                await self.pubsub.publish(PEERS_TOPIC, self.record(time.time()))
            except PublishError:  # nobody subscribed yet: try again soon
                await trio.sleep(RETRY_INTERVAL)
                continue
            self.published += 1
            await trio.sleep(REPUBLISH_INTERVAL)


def learn_from_record(storage: Storage, data: bytes, me: ID) -> bool | None:
    """Store the peer a validated PeerRecord names (source `topic`).

    True when the peer is new or was held without a signed envelope (its addresses
    are refreshed), False when the table holds a peer-exchange record for it (a
    signed envelope, which this never overwrites) or the record names no TCP address
    we can dial, None for our own record.
    """
    msg = codec.decode(data, _KINDS)
    assert isinstance(msg, PeerRecord)
    pid = ID(msg.peer_id)
    if pid == me:
        return None
    addrs = dialable_addrs(msg.multiaddrs)  # signed is not the same as dialable
    if not addrs:
        return False
    return storage.upsert_peer(pid.to_base58(), addrs, source="topic")


def peer_topic_service(ctx: NodeContext) -> PeerTopicService:
    """Daemon service factory: requires pubsub; signs with the daemon's account."""
    return PeerTopicService(ctx)
