"""The message cache behind IHAVE/IWANT gossip.

A sliding window of `history` heartbeats: messages enter the newest window,
`shift()` at each heartbeat drops the oldest. IHAVE advertises only the newest
`gossip` windows; IWANT is answered from the whole cache and at most
`gossip_retransmission` times per peer and message (spec v1.1), so a peer cannot
make us amplify one message without bound.
"""

from __future__ import annotations

from gossip.wire import Message


class MessageCache:
    __slots__ = ("_gossip", "_history", "_msgs", "_tx", "_windows")

    def __init__(self, history: int, gossip: int) -> None:
        self._gossip = gossip
        self._history = history
        # allocated with the first message: most simulated routers sit idle for long
        self._windows: list[list[tuple[bytes, str]]] | None = None
        self._msgs: dict[bytes, Message] = {}
        self._tx: dict[bytes, dict[bytes, int]] | None = None  # id -> peer -> times served

    def __len__(self) -> int:
        return len(self._msgs)

    def __contains__(self, msg_id: bytes) -> bool:
        return msg_id in self._msgs

    def put(self, msg_id: bytes, msg: Message) -> None:
        if msg_id in self._msgs:
            return
        self._msgs[msg_id] = msg
        if self._windows is None:
            self._windows = [[] for _ in range(self._history)]
        self._windows[0].append((msg_id, msg.topic))

    def get(self, msg_id: bytes) -> Message | None:
        return self._msgs.get(msg_id)

    def get_for_peer(self, msg_id: bytes, peer: bytes) -> tuple[Message | None, int]:
        """The message and how many times `peer` has now asked for it (this ask included)."""
        msg = self._msgs.get(msg_id)
        if msg is None:
            return None, 0
        if self._tx is None:
            self._tx = {}
        per = self._tx.get(msg_id)
        if per is None:
            per = self._tx[msg_id] = {}
        n = per.get(peer, 0) + 1
        per[peer] = n
        return msg, n

    def gossip_ids(self, topic: str) -> list[bytes]:
        """Ids of `topic` in the newest `gossip` windows: what an IHAVE advertises."""
        if self._windows is None:
            return []
        return [mid for window in self._windows[: self._gossip] for mid, t in window if t == topic]

    def shift(self) -> None:
        if self._windows is None:
            return
        if not self._msgs:  # nothing cached: drop the windows until the next message
            self._windows = None
            return
        last = self._windows.pop()
        msgs = self._msgs
        tx = self._tx
        for mid, _ in last:
            msgs.pop(mid, None)
            if tx is not None:
                tx.pop(mid, None)
        if tx is not None and not tx:
            self._tx = None
        self._windows.insert(0, [])
