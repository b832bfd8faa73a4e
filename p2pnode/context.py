"""What a daemon service is handed, and how it says what it needs.

The daemon builds one `NodeContext` (host, config, storage, metrics, the peer key,
discovery, and the Ethereum account it unlocked at start) and passes it to every
service factory in the order `p2pnode/services.py` lists them. A service that
offers something later services use fills its typed slot (`pubsub`, `chain`)
when it is built; a service that needs one says so in its `ServiceSpec.requires`,
and the daemon refuses to start, naming what is missing, when an earlier service
did not provide it. So a missing piece is an error at start, never a feature
that silently turns itself off.

Later services see earlier ones through the small `Protocol`s below, not through
their classes, so this module depends on no service and no service module needs
another's import to be wired.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, get_args

from libp2p.abc import IHost
from libp2p.crypto.keys import KeyPair

from gossip.eip712 import address_of_key
from gossip.messages import address_hex
from gossip.validators import HubChainCheck
from p2pnode.config import NodeConfig
from p2pnode.discovery import Discovery
from p2pnode.errors import UserError
from p2pnode.metrics import NodeMetrics
from p2pnode.storage import Storage
from reputation.evidence import Agreement
from reputation.state import HubRecord, HubStatus

T = TypeVar("T")

DeliveryHandler = Callable[[str, bytes], None]
"""`handler(topic, data)`, called with each message the validator accepted."""

Requirement = Literal["discovery", "account", "pubsub", "chain", "reputation"]
"""What a service may require beyond host, config and storage (always there)."""

REQUIREMENTS: tuple[Requirement, ...] = get_args(Requirement)

# what the operator can do about each missing requirement
_REMEDY: dict[Requirement, str] = {
    "discovery": "the daemon starts discovery before any service",
    "account": "create one with `sonm-p2p keys new` and start the node with SONM_KEY_PASSWORD set",
    "pubsub": "the pubsub service must be listed before it and run in this role",
    "chain": "set chain.rpc and chain.addresses",
    "reputation": "the reputation service must be listed before it",
}


class Service(Protocol):
    """Runs until cancelled; calls `task_status.started()` once it is ready."""

    async def run(self, *, task_status: Any = ...) -> None: ...


class PubSubPort(Protocol):
    """What other services use of the pubsub service."""

    async def publish(self, topic: str, data: bytes) -> bytes:
        """The message id; raises gossip.router.PublishError when no peer can take it."""
        ...

    def on_delivery(self, topic: str, handler: DeliveryHandler) -> None:
        """Call `handler` with every message on `topic` the validator accepted."""
        ...

    def set_topic_validator(
        self, topic: str, validator: Callable[[str, bytes, bytes], Any]
    ) -> None:
        """Validate `topic`'s messages with `validator(topic, data, from_peer)`, which
        returns a gossip.validation.ValidationResult, before they are forwarded."""
        ...

    def topic_peers(self, topic: str) -> list[bytes]:
        """The peer ids (bytes) subscribed to `topic`."""
        ...

    def set_app_score(self, peer: bytes, value: float) -> None:
        """The gossip score's application-specific value (P5) for a peer id's bytes."""
        ...

    def pop_accepted(self, data: bytes) -> Any:
        """The validator's verdict (with the decoded message) for bytes just
        delivered, so a handler need not decode and hash them again; None if unknown."""
        ...


class ChainPort(Protocol):
    """What other services use of the chain service."""

    @property
    def hub_check(self) -> HubChainCheck: ...


class ReputationPort(Protocol):
    """What other services (the worker role, the market) use of the reputation service.

    Hubs and peers are 20-byte addresses (a hub by its wallet's)."""

    def status(self, hub: bytes) -> HubStatus:
        """The hub's status (UNKNOWN if never heard of)."""
        ...

    def record(self, hub: bytes) -> HubRecord:
        """The status with its history of reasons (`history[-1].reason`: why)."""
        ...

    def add_agreement(self, agreement: Agreement) -> None:
        """A worker's terms with a hub: its wallet's payments are judged by them.
        ValueError for an invalid agreement or one that overlaps an unjudged one."""
        ...

    def end_agreement(self, hub: bytes, worker: bytes, now: float) -> None: ...

    def warning(self, hub: bytes, now: float) -> float:
        """Weight of the news that the hub failed a worker since it last paid us
        (`ReputationCore.warning`); > 0: the worker role neither joins nor stays."""
        ...

    def ask_about(self, hub: bytes) -> bool:
        """Ask the trust topic about the hub now, out of turn; False when no peer
        can hear the question (nothing to wait for)."""
        ...

    def global_trust(self, peer_or_hub: bytes) -> float:
        """Global trust in uniform units (1.0 = average); a hub counts as its owner."""
        ...

    def rating(self, author: bytes) -> int:
        """An order author's rating in basis points, for the market's min_rating."""
        ...


@dataclass(frozen=True, repr=False)
class Account:
    """The node's unlocked Ethereum account: signs orders and peer records."""

    private_key: bytes
    address: bytes

    def __repr__(self) -> str:  # never print the key
        return f"Account({address_hex(self.address)})"

    @classmethod
    def of_key(cls, private_key: bytes) -> Account:
        return cls(private_key, address_of_key(private_key))


def unlock_account(config: NodeConfig) -> Account | None:
    """Unlock the keystore once, at start, when it exists and SONM_KEY_PASSWORD is set.

    Without either the node runs without an account (lists orders, does not sign).
    A wrong password is a UserError at start, not a silently read-only node.
    """
    from p2pnode import keys

    path = config.keystore_path
    if not path.exists() or keys.PASSWORD_ENV not in os.environ:
        return None
    password = keys.read_password(keys.PasswordSource(interactive=False))
    private_key, _ = keys.unlock_keystore(path, password)
    return Account.of_key(private_key)


class MissingRequirement(UserError):
    """A service needs something no earlier service (or the config) provided."""

    def __init__(self, service: str, missing: Iterable[Requirement]) -> None:
        names = list(missing)
        self.service = service
        self.missing = names
        super().__init__(
            f"service {service!r} requires "
            + "; ".join(f"{name}, which this node lacks ({_REMEDY[name]})" for name in names)
        )


def need(service: str, value: T | None, name: Requirement) -> T:
    """`value`, typed as present: a factory's own check of what its spec requires."""
    if value is None:
        raise MissingRequirement(service, [name])
    return value


@dataclass
class NodeContext:
    """Everything a service factory may use. The optional slots are None until
    whatever provides them exists (see `ServiceSpec.requires`)."""

    host: IHost
    config: NodeConfig
    storage: Storage
    metrics: NodeMetrics
    key_pair: KeyPair
    discovery: Discovery | None = None
    account: Account | None = None
    pubsub: PubSubPort | None = None
    chain: ChainPort | None = None
    reputation: ReputationPort | None = None
    services: dict[str, Service] = field(default_factory=dict)

    def missing(self, requires: Iterable[Requirement]) -> list[Requirement]:
        return [name for name in requires if getattr(self, name) is None]


ServiceFactory = Callable[[NodeContext], "Service | None"]
"""Builds a service from the context; None: it does not run with this config."""


@dataclass(frozen=True)
class ServiceSpec:
    """A named service factory, what it requires, and the roles it runs in (empty: all)."""

    name: str
    factory: ServiceFactory
    requires: tuple[Requirement, ...] = ()
    roles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [r for r in self.requires if r not in REQUIREMENTS]
        if unknown:
            raise ValueError(
                f"service {self.name!r}: requires {unknown}, allowed {list(REQUIREMENTS)}"
            )

    def build(self, ctx: NodeContext) -> Service | None:
        """The service, or None; MissingRequirement names what is not there."""
        missing = ctx.missing(self.requires)
        if missing:
            raise MissingRequirement(self.name, missing)
        return self.factory(ctx)
