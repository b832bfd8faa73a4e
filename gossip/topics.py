"""Gossip topic names and which message kinds each one carries.

The trailing number is the topic's version: a change to what a topic carries that
old nodes cannot read gets a new topic, so old and new nodes do not punish each
other for speaking different dialects.
"""

from __future__ import annotations

from gossip.messages import MessageKind

HUBS_TOPIC = "/sonm/hubs/1"
ORDERS_TOPIC = "/sonm/orders/1"
PEERS_TOPIC = "/sonm/peers/1"
# Trust polling (reputation/messages.py): its frames are not gossip.messages kinds and
# have their own validation path (the reputation service's validator for this topic).
TRUST_TOPIC = "/sonm/trust/1"

TOPIC_KINDS: dict[str, frozenset[MessageKind]] = {
    HUBS_TOPIC: frozenset({MessageKind.HUB_ANNOUNCEMENT}),
    ORDERS_TOPIC: frozenset({MessageKind.ORDER, MessageKind.ORDER_CANCEL}),
    PEERS_TOPIC: frozenset({MessageKind.PEER_RECORD}),
}
ALL_TOPICS: tuple[str, ...] = (*TOPIC_KINDS, TRUST_TOPIC)


def topic_for(kind: MessageKind) -> str:
    """Where a message of this kind is published."""
    for topic, kinds in TOPIC_KINDS.items():
        if kind in kinds:
            return topic
    raise ValueError(f"no topic carries {kind.name}")
