"""Message ids and the two signature policies of libp2p pubsub.

StrictNoSign (our default): messages carry no author, seqno, signature or key;
the id is sha256 of the payload, so two copies of one payload are one message
whoever forwards them, and our payloads carry their own application signatures.

StrictSign: the author signs with its libp2p key the protobuf encoding of the
message without `signature` and `key`, prefixed with b"libp2p-pubsub:". The id
is a parameter, because the two reference implementations disagree and a node
must compute the ids its neighbours compute, or IHAVE/IWANT/IDONTWANT never
match (gossip fetches what it holds, promises break, scores fall):

- `go_style_id` (default): `from || seqno`, go-libp2p-pubsub's DefaultMsgIdFn;
- `js_style_id`: the author's protobuf-encoded public key `|| seqno`, the
  default of js-libp2p (@libp2p/pubsub's msgId under StrictSign).

Key handling is injected (signer and verifier callables) so this module needs
no crypto library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gossip.wire import Message

SIGN_PREFIX = b"libp2p-pubsub:"
SEQNO_LEN = 8


MsgIdFn = Callable[[Message], bytes]


def go_style_id(msg: Message) -> bytes:
    """go-libp2p-pubsub's StrictSign id: the author's peer id bytes, then the seqno."""
    return (msg.from_ or b"") + (msg.seqno or b"")


def js_style_id(msg: Message) -> bytes:
    """js-libp2p's StrictSign id: the author's public key as libp2p's protobuf
    PublicKey (`08 01 12 20 || key` for Ed25519), then the seqno.

    The key comes from the peer id when the id embeds it (an identity multihash:
    `00 <len> <protobuf key>`, every Ed25519 id), else from the `key` field. A
    message with neither fails the signature check anyway; its id is then
    the seqno alone, which names nothing stored."""
    author = msg.from_ or b""
    key = _embedded_key(author)
    if key is None:
        key = msg.key or b""
    return key + (msg.seqno or b"")


def _embedded_key(peer_id: bytes) -> bytes | None:
    """The protobuf public key inside an identity-multihash peer id, or None."""
    if len(peer_id) < 2 or peer_id[0] != 0x00:
        return None
    # multihash length: an unsigned varint (one byte for every key libp2p embeds)
    n = 0
    shift = 0
    pos = 1
    while pos < len(peer_id) and shift < 35:
        b = peer_id[pos]
        n |= (b & 0x7F) << shift
        pos += 1
        if not b & 0x80:
            break
        shift += 7
    else:
        return None
    if n != len(peer_id) - pos:
        return None
    return peer_id[pos:]


MSG_ID_STYLES: dict[str, MsgIdFn] = {"go": go_style_id, "js": js_style_id}


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
    """Every message signed by its author's libp2p key; the id by `id_fn`
    (go_style_id by default, js_style_id for js-libp2p networks)."""

    verifier: Verifier
    signer: Signer | None = None  # needed only to publish
    public_key: bytes | None = None  # sent in `key` when the peer id does not embed it
    id_fn: MsgIdFn = go_style_id

    def msg_id(self, msg: Message) -> bytes:
        return self.id_fn(msg)

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
