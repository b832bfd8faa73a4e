"""One signed order (or a stream of them) published by a random honest node.

Orders are the market's main traffic; ~600 bytes is the size of an encoded
order with its EIP-712 signature (gossip/orders.py). Defaults: one order,
propagated to all nodes, which is what the scale benchmark measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gossip.topics import ORDERS_TOPIC
from simulations.scenarios.base import CommonParams
from simulations.scenarios.propagation import PropagationParams, PropagationScenario


@dataclass(frozen=True)
class OrderParams(PropagationParams):
    payload_bytes: int = 600


class OrderPropagation(PropagationScenario):
    name: ClassVar[str] = "order_propagation"
    Params: ClassVar[type[CommonParams]] = OrderParams
    topic: ClassVar[str] = ORDERS_TOPIC
