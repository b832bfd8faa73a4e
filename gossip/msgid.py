"""Message ids and the two signature policies of libp2p pubsub.

StrictNoSign (our default): messages carry no author, seqno, signature or key;
the id is sha256 of the payload, so two copies of one payload are one message
whoever forwards them, and our payloads carry their own application signatures.

StrictSign: the author signs with its libp2p key the protobuf encoding of the
message without `signature` and `key`, prefixed with b"libp2p-pubsub:"; the id
is `from || seqno` as in go-libp2p-pubsub. Key handling is injected (signer and
verifier callables) so this module needs no crypto library.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from gossip.wire import Message

SIGN_PREFIX = b"libp2p-pubsub:"
SEQNO_LEN = 8


def payload_id(data: bytes) -> bytes:
    """StrictNoSign message id: sha256 of the payload."""
    return hashlib.sha256(data).digest()


def author_seqno_id(msg: Message) -> bytes:
    """StrictSign message id (go-libp2p-pubsub DefaultMsgIdFn): from || seqno."""
    return (msg.from_ or b"") + (msg.seqno or b"")


@dataclass(frozen=True, slots=True)
class StrictNoSign:
    """No author fields on the wire; id = sha256(data)."""

    def msg_id(self, msg: Message) -> bytes:
        return msg.payload_sha256()

    def check(self, msg: Message) -> str | None:
        """None when the message obeys the policy, else the reason to reject it."""
        if (
            msg.signature is not None
            or msg.from_ is not None
            or msg.seqno is not None
            or msg.key is not None
        ):
            return "unexpected author fields under StrictNoSign"
        return None


# verifier(author_peer_id, signed_bytes, signature, key_or_None) -> valid?
Verifier = Callable[[bytes, bytes, bytes, bytes | None], bool]
Signer = Callable[[bytes], bytes]


@dataclass(frozen=True, slots=True)
class StrictSign:
    """Every message signed by its author's libp2p key; id = from || seqno."""

    verifier: Verifier
    signer: Signer | None = None  # needed only to publish
    public_key: bytes | None = None  # sent in `key` when the peer id does not embed it

    def msg_id(self, msg: Message) -> bytes:
        return (msg.from_ or b"") + (msg.seqno or b"")

    def check(self, msg: Message) -> str | None:
        if msg.signature is None:
            return "missing signature"
        if not msg.from_:
            return "missing author"
        if msg.seqno is None or len(msg.seqno) != SEQNO_LEN:
            return "seqno is not 8 bytes"
        try:
            ok = self.verifier(
                msg.from_, SIGN_PREFIX + msg.encode_unsigned(), msg.signature, msg.key
            )
        except Exception:  # a verifier choking on hostile input is a bad signature
            ok = False
        return None if ok else "invalid signature"

    def sign(self, msg: Message) -> None:
        if self.signer is None:
            raise ValueError("StrictSign.signer is needed to publish")
        msg.signature = self.signer(SIGN_PREFIX + msg.encode_unsigned())
        msg.key = self.public_key
        msg.raw = None


SignPolicy = StrictNoSign | StrictSign
