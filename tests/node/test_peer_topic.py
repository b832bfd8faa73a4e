"""Peer records from the peers topic: validated, then stored as peers to dial."""

from __future__ import annotations

import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from libp2p.peer.id import ID

from gossip import codec, eip712
from gossip.eip712 import SigningDomain
from gossip.peer_record import PeerRecord, ed25519_peer_id
from gossip.topics import PEERS_TOPIC
from gossip.validation import ValidationResult
from gossip.validators import make_validator
from p2pnode.peer_topic import learn_from_record
from p2pnode.storage import Storage

DOMAIN = SigningDomain(chain_id=31337)
ACCOUNT = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")


def _record(peer_key: Ed25519PrivateKey, addrs: tuple[str, ...], sequence: int) -> bytes:
    raw = peer_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    now = int(time.time())
    rec = PeerRecord(
        account=eip712.address_of_key(ACCOUNT),
        peer_id=ed25519_peer_id(raw),
        multiaddrs=addrs,
        sequence=sequence,
        valid_from=now - 1,
        valid_until=now + 3600,
    ).signed(DOMAIN, ACCOUNT, peer_key)
    return codec.encode(rec)


def _peer_id(peer_key: Ed25519PrivateKey) -> ID:
    raw = peer_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return ID(ed25519_peer_id(raw))


def test_a_validated_record_puts_its_peer_in_the_table(tmp_path: Path) -> None:
    storage = Storage.open_in(tmp_path)
    key = Ed25519PrivateKey.generate()
    data = _record(key, ("/ip4/127.0.0.1/tcp/4100",), 1)
    validator = make_validator(DOMAIN, clock=time.time)
    assert validator(PEERS_TOPIC, data, b"relay") is ValidationResult.ACCEPT

    me = _peer_id(Ed25519PrivateKey.generate())
    assert learn_from_record(storage, data, me) is True
    [row] = storage.list_peers()
    assert row.peer_id == _peer_id(key).to_base58()
    assert row.addrs == ("/ip4/127.0.0.1/tcp/4100",)
    assert row.source == "topic" and row.record is None

    # a newer record moves the peer: its new address replaces the old one
    moved = _record(key, ("/ip4/127.0.0.1/tcp/4200",), 2)
    assert validator(PEERS_TOPIC, moved, b"relay") is ValidationResult.ACCEPT
    assert learn_from_record(storage, moved, me) is True
    assert storage.list_peers()[0].addrs == ("/ip4/127.0.0.1/tcp/4200",)


def test_a_peer_exchange_envelope_is_never_overwritten(tmp_path: Path) -> None:
    storage = Storage.open_in(tmp_path)
    key = Ed25519PrivateKey.generate()
    pid = _peer_id(key).to_base58()
    storage.upsert_peer(pid, ["/ip4/127.0.0.1/tcp/4300"], source="px", record=b"env", seq=5)
    me = _peer_id(Ed25519PrivateKey.generate())
    assert learn_from_record(storage, _record(key, ("/ip4/127.0.0.1/tcp/9",), 9), me) is False
    [row] = storage.list_peers()
    assert row.record == b"env" and row.addrs == ("/ip4/127.0.0.1/tcp/4300",)


def test_our_own_record_is_not_stored(tmp_path: Path) -> None:
    storage = Storage.open_in(tmp_path)
    key = Ed25519PrivateKey.generate()
    assert (
        learn_from_record(storage, _record(key, ("/ip4/127.0.0.1/tcp/1",), 1), _peer_id(key))
        is None
    )
    assert storage.list_peers() == []


def test_a_record_with_one_forged_signature_is_rejected_before_storage() -> None:
    key, impostor = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    good = codec.decode(_record(key, ("/ip4/127.0.0.1/tcp/1",), 1))
    assert isinstance(good, PeerRecord)
    # the impostor re-signs the peer half: the record no longer proves the peer agreed
    forged = PeerRecord(
        account=good.account,
        peer_id=good.peer_id,
        multiaddrs=("/ip4/127.0.0.1/tcp/666",),
        sequence=2,
        valid_from=good.valid_from,
        valid_until=good.valid_until,
    ).signed(DOMAIN, ACCOUNT, impostor)
    verdict = make_validator(DOMAIN, clock=time.time)(PEERS_TOPIC, codec.encode(forged), b"x")
    assert verdict is ValidationResult.REJECT


def test_a_signed_record_naming_no_dialable_address_adds_nothing(tmp_path: Path) -> None:
    storage = Storage.open_in(tmp_path)
    key = Ed25519PrivateKey.generate()
    data = _record(key, ("/garbage", "/ip4/1.2.3.4/tcp/99999", "/dns4/x/udp/1"), 1)
    me = _peer_id(Ed25519PrivateKey.generate())
    assert learn_from_record(storage, data, me) is False
    assert storage.list_peers() == []
    # the TCP address among others is kept, the rest dropped
    mixed = _record(key, ("/garbage", "/ip4/127.0.0.1/tcp/4100"), 2)
    assert learn_from_record(storage, mixed, me) is True
    assert storage.list_peers()[0].addrs == ("/ip4/127.0.0.1/tcp/4100",)
