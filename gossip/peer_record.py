"""PeerRecord: "the libp2p peer P, reachable at these addresses, belongs to account A".

Signed twice over the same EIP-712 digest: by the Ethereum key of `account` (the
economic identity, as every message here) and by the peer's own Ed25519 key, whose
public key is inside an Ed25519 peer id. The second signature is what makes the
record worth gossiping for discovery: without it anyone could announce someone
else's peer id at their own address (an eclipse aid) or tie a stranger's peer to
their account. Records are re-published with a growing `sequence`; the newest per
peer wins.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gossip import eip712
from gossip.eip712 import FieldSpec, SigningDomain, StructType
from gossip.messages import (
    UINT64_MAX,
    FieldError,
    MessageKind,
    check_address,
    check_bytes,
    check_multiaddrs,
    check_signature,
    check_uint,
    check_window,
)

PEER_MAX_MULTIADDRS = 8
PEER_MAX_MULTIADDR_BYTES = 256
PEER_MAX_VALIDITY_SECONDS = 24 * 3600
ED25519_SIGNATURE_LEN = 64
# identity multihash (0x00, length 36) of the protobuf PublicKey{Type: Ed25519, Data: 32 bytes}
_ED25519_PEER_ID_PREFIX = bytes([0x00, 0x24, 0x08, 0x01, 0x12, 0x20])

PEER_RECORD_TYPE = StructType(
    "PeerRecord",
    (
        FieldSpec("account", "address", "account"),
        FieldSpec("peerId", "bytes", "peer_id"),
        FieldSpec("multiaddrs", "string[]", "multiaddrs"),
        FieldSpec("sequence", "uint64", "sequence"),
        FieldSpec("validFrom", "uint64", "valid_from"),
        FieldSpec("validUntil", "uint64", "valid_until"),
    ),
)


def ed25519_peer_id(public_key: bytes) -> bytes:
    """The libp2p peer id bytes of a raw 32-byte Ed25519 public key."""
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return _ED25519_PEER_ID_PREFIX + public_key


def ed25519_key_of_peer_id(peer_id: bytes) -> bytes:
    """The raw public key inside an Ed25519 peer id; FieldError for any other kind of id."""
    if len(peer_id) != 38 or not peer_id.startswith(_ED25519_PEER_ID_PREFIX):
        raise FieldError("peer_id", "an Ed25519 libp2p peer id (38 bytes, identity hash) expected")
    return peer_id[6:]


@dataclass(frozen=True)
class PeerRecord:
    account: bytes  # 20-byte Ethereum address; the EIP-712 signer
    peer_id: bytes  # libp2p peer id bytes (Ed25519 only)
    multiaddrs: tuple[str, ...]
    sequence: int
    valid_from: int
    valid_until: int
    signature: bytes = b""  # EIP-712 signature by `account`
    peer_signature: bytes = b""  # Ed25519 signature of the same digest by the peer's key

    KIND: ClassVar[MessageKind] = MessageKind.PEER_RECORD
    EIP712_TYPE: ClassVar[StructType] = PEER_RECORD_TYPE
    MONOTONIC: ClassVar[bool] = True

    def validate(self) -> None:
        check_address("account", self.account)
        check_bytes("peer_id", self.peer_id, 38, 38)
        ed25519_key_of_peer_id(self.peer_id)
        check_multiaddrs(
            "multiaddrs", self.multiaddrs, PEER_MAX_MULTIADDRS, PEER_MAX_MULTIADDR_BYTES
        )
        check_uint("sequence", self.sequence, UINT64_MAX)
        check_window(self.valid_from, self.valid_until, PEER_MAX_VALIDITY_SECONDS)
        check_signature("signature", self.signature)
        if self.peer_signature != b"":
            check_bytes(
                "peer_signature", self.peer_signature, ED25519_SIGNATURE_LEN, ED25519_SIGNATURE_LEN
            )

    @property
    def signer(self) -> bytes:
        return self.account

    @property
    def replay_key(self) -> bytes:
        return bytes([self.KIND]) + self.peer_id

    @property
    def replay_number(self) -> int:
        return self.sequence

    def digest(self, domain: SigningDomain) -> bytes:
        return eip712.digest(domain, PEER_RECORD_TYPE, self)

    def peer_signature_valid(self, message_digest: bytes) -> bool:
        """Did the key inside `peer_id` sign `message_digest`?"""
        try:
            key = Ed25519PublicKey.from_public_bytes(ed25519_key_of_peer_id(self.peer_id))
            key.verify(self.peer_signature, message_digest)
        except (InvalidSignature, ValueError):
            return False
        return True

    def signed(
        self, domain: SigningDomain, private_key: bytes, peer_key: Ed25519PrivateKey
    ) -> PeerRecord:
        """Both signatures: the account's (EIP-712) and the peer's (Ed25519)."""
        message_digest = self.digest(domain)
        return dataclasses.replace(
            self,
            signature=eip712.sign_digest(message_digest, private_key),
            peer_signature=peer_key.sign(message_digest),
        )
