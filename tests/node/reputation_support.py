"""Shared by the reputation service tests: accounts, configs, signed hub announcements
and trust frames, and a daemon run in-process with its services at hand."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from eth_account import Account

from gossip.codec import encode
from gossip.eip712 import SigningDomain, address_of_key
from gossip.hubs import HubAnnouncement
from p2pnode.config import build_config
from reputation import messages
from reputation.messages import KeySigner, TrustQuestion

PASSWORD = "reputation-test"
DOMAIN = SigningDomain(chain_id=31337)


def key(n: int) -> bytes:
    return bytes([n]) * 32


def address(n: int) -> bytes:
    return address_of_key(key(n))


def light_keystore(path: Path, private_key: bytes) -> None:
    """A keystore opened in milliseconds (the production scrypt cost tests nothing here)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(Account.encrypt(private_key, PASSWORD, kdf="scrypt", iterations=2**10))
    )
    path.chmod(0o600)


def node_config(data_dir: Path, n: int, extra: dict[str, Any] | None = None, **rep: Any) -> Any:
    """A consumer on loopback with account `key(n)`; `rep` sets reputation.* keys,
    `extra` any others (`section.key`)."""
    light_keystore(data_dir / "keystore.json", key(n))
    layer: dict[str, Any] = {
        "node.data_dir": str(data_dir),
        "node.role": "consumer",
        "network.listen_port": 0,
        "network.min_connections": 3,
        "network.redial_interval": 0.5,
        "network.redial_max_interval": 2.0,
        "network.px_interval": 2.0,
        "api.port": 0,
    }
    layer.update({f"reputation.{k}": v for k, v in rep.items()})
    layer.update(extra or {})
    return build_config([layer])


def announcement(owner: int, wallet: bytes, peer_id: bytes, *, seq: int = 1) -> bytes:
    now = int(time.time())
    ann = HubAnnouncement(
        owner=address(owner),
        wallet=wallet,
        peer_id=peer_id,
        multiaddrs=("/ip4/127.0.0.1/tcp/4001",),
        name=f"hub-{owner}",
        description="",
        sequence=seq,
        valid_from=now - 10,
        valid_until=now + 3600,
    ).signed(DOMAIN, key(owner))
    return encode(ann)


def question(asker: int, hub: bytes, nonce: int, *, start: int | None = None) -> bytes:
    t = int(time.time()) if start is None else start
    q = TrustQuestion(address(asker), hub, nonce, t, t + 600)
    return messages.encode(messages.sign(q, DOMAIN, KeySigner(key(asker))))
