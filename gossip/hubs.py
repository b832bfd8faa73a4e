"""HubAnnouncement: a hub owner says "my hub wallet is W, reach me at this peer".

Signed by the hub owner's Ethereum key (the `owner` field must be the recovered
signer), so a node can check the claim against the chain: the wallet was made by the
factory, is registered in the Whitelist and belongs to this owner. Hubs re-announce
periodically with a growing `sequence`; the newest one per owner wins and older or
equal sequences are replays.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from gossip import eip712
from gossip.eip712 import FieldSpec, SigningDomain, StructType
from gossip.messages import (
    UINT64_MAX,
    MessageKind,
    check_address,
    check_bytes,
    check_multiaddrs,
    check_signature,
    check_str,
    check_uint,
    check_window,
)

HUB_MAX_PEER_ID_BYTES = 64
HUB_MAX_MULTIADDRS = 8
HUB_MAX_MULTIADDR_BYTES = 256
HUB_MAX_NAME_BYTES = 64
HUB_MAX_DESCRIPTION_BYTES = 1024
HUB_MAX_VALIDITY_SECONDS = 7 * 24 * 3600

HUB_ANNOUNCEMENT_TYPE = StructType(
    "HubAnnouncement",
    (
        FieldSpec("owner", "address", "owner"),
        FieldSpec("wallet", "address", "wallet"),
        FieldSpec("peerId", "bytes", "peer_id"),
        FieldSpec("multiaddrs", "string[]", "multiaddrs"),
        FieldSpec("name", "string", "name"),
        FieldSpec("description", "string", "description"),
        FieldSpec("sequence", "uint64", "sequence"),
        FieldSpec("validFrom", "uint64", "valid_from"),
        FieldSpec("validUntil", "uint64", "valid_until"),
    ),
)


@dataclass(frozen=True)
class HubAnnouncement:
    owner: bytes  # 20-byte address of the hub owner; the signer
    wallet: bytes  # 20-byte address of the hub wallet contract
    peer_id: bytes  # libp2p peer id bytes of the hub's node
    multiaddrs: tuple[str, ...]
    name: str
    description: str
    sequence: int  # grows with every re-announcement by this owner
    valid_from: int  # unix seconds
    valid_until: int  # unix seconds
    signature: bytes = b""

    KIND: ClassVar[MessageKind] = MessageKind.HUB_ANNOUNCEMENT
    EIP712_TYPE: ClassVar[StructType] = HUB_ANNOUNCEMENT_TYPE
    # Hubs re-announce with a growing sequence: anything not newer than the last is stale.
    MONOTONIC: ClassVar[bool] = True

    def validate(self) -> None:
        check_address("owner", self.owner)
        check_address("wallet", self.wallet)
        check_bytes("peer_id", self.peer_id, HUB_MAX_PEER_ID_BYTES, 1)
        check_multiaddrs("multiaddrs", self.multiaddrs, HUB_MAX_MULTIADDRS, HUB_MAX_MULTIADDR_BYTES)
        check_str("name", self.name, HUB_MAX_NAME_BYTES)
        check_str("description", self.description, HUB_MAX_DESCRIPTION_BYTES)
        check_uint("sequence", self.sequence, UINT64_MAX)
        check_window(self.valid_from, self.valid_until, HUB_MAX_VALIDITY_SECONDS)
        check_signature("signature", self.signature)

    @property
    def signer(self) -> bytes:
        return self.owner

    @property
    def replay_key(self) -> bytes:
        """Sequences are per (owner, wallet): an owner may run several hubs."""
        return bytes([self.KIND]) + self.owner + self.wallet

    @property
    def replay_number(self) -> int:
        return self.sequence

    def digest(self, domain: SigningDomain) -> bytes:
        return eip712.digest(domain, HUB_ANNOUNCEMENT_TYPE, self)

    def signed(self, domain: SigningDomain, private_key: bytes) -> HubAnnouncement:
        return dataclasses.replace(
            self, signature=eip712.sign_digest(self.digest(domain), private_key)
        )
