"""Where a worker reads a hub's status from.

With the reputation service on the node (`ctx.reputation`), its status: trust
polling, payments seen and the chain together. Without it, `ChainStatusSource`:
only the on-chain check of the hub's announcement, so an announced hub whose
wallet checks out is `unverified` (acceptable), one the DAO suspects or punished
is `suspected`, and one the chain does not know is `fake`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from gossip.hubs import HubAnnouncement
from gossip.validators import HubChainCheck, HubCheck
from reputation.state import HubStatus

MAX_HUBS = 1024  # announcements kept: a flood of fake hubs stays bounded


class HubStatusSource(Protocol):
    def status(self, hub: bytes) -> HubStatus:
        """The hub wallet's status as this node sees it now."""
        ...

    def warned(self, hub: bytes) -> bool:
        """Whether trust polling warns about the hub now (`ReputationCore.warning`)."""
        ...

    def ask(self, hub: bytes) -> bool:
        """Ask the network about the hub now (a trust question out of turn); False
        when nobody can be asked, so there are no answers to wait for."""
        ...


_FROM_CHECK = {
    HubCheck.VERIFIED: HubStatus.UNVERIFIED,
    HubCheck.MARKED: HubStatus.SUSPECTED,
    HubCheck.FAILED: HubStatus.FAKE,
}


class ChainStatusSource:
    """Statuses from the chain check of each hub's latest announcement."""

    def __init__(self, check: HubChainCheck | None, clock: Callable[[], float]) -> None:
        self.check = check
        self.clock = clock
        self._latest: OrderedDict[bytes, HubAnnouncement] = OrderedDict()
        self._last: dict[bytes, HubStatus] = {}

    def observe(self, announcement: HubAnnouncement) -> None:
        wallet = bytes(announcement.wallet)
        self._latest[wallet] = announcement
        self._latest.move_to_end(wallet)
        while len(self._latest) > MAX_HUBS:
            gone, _ = self._latest.popitem(last=False)
            self._last.pop(gone, None)

    def warned(self, hub: bytes) -> bool:
        return False  # warnings come from trust polling, which needs the reputation service

    def ask(self, hub: bytes) -> bool:
        return False  # likewise: without it there is nobody to ask

    def status(self, hub: bytes) -> HubStatus:
        ann = self._latest.get(hub)
        if ann is None:
            return HubStatus.UNKNOWN
        if self.check is None:
            # no chain on this node: nothing is checked, so nothing is acceptable
            # unless the operator pins it
            return HubStatus.UNKNOWN
        verdict = self.check(ann, self.clock())  # cached; PENDING queues a lookup
        if verdict is HubCheck.PENDING:
            return self._last.get(hub, HubStatus.UNKNOWN)
        status = _FROM_CHECK[verdict]
        self._last[hub] = status
        return status
