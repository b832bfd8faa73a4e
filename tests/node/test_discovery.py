"""Discovery in-process over loopback: bad peer-exchange input is counted and
survived, forged records are not stored, and the keeper's decisions (dial, re-dial,
backoff, trim) are carried out on real connections. The decisions themselves are
tested in virtual time in test_discovery_policy.py."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.envelope import seal_record
from libp2p.peer.id import ID
from libp2p.peer.peer_record import PeerRecord
from libp2p.peer.peerinfo import info_from_p2p_addr

from p2pnode import px
from p2pnode.config import build_config
from p2pnode.daemon import Daemon
from p2pnode.host import muxer_options, security_options

LOOPBACK = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")


def _daemon(tmp: Path, name: str, **net: Any) -> Daemon:
    layer: dict[str, Any] = {
        "node.data_dir": str(tmp / name),
        "network.listen_port": 0,
        "api.port": 0,
        "network.redial_interval": 0.1,
        "network.redial_max_interval": 0.8,
    }
    layer.update({f"network.{k}": v for k, v in net.items()})
    return Daemon(build_config([layer]), services=[])


def _bare_host() -> Any:
    kp = create_new_key_pair()
    return new_host(key_pair=kp, sec_opt=security_options(kp), muxer_opt=muxer_options())


def _metric(d: Daemon, name: str, **labels: str) -> float:
    value = d.metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


async def _px_exchange(host: Any, target: ID, body: bytes) -> bytes:
    stream = await host.new_stream(target, [TProtocol(px.PROTOCOL_ID)])
    await stream.write(body)
    out = b""
    with trio.move_on_after(3):
        while True:
            try:
                chunk = await stream.read(65536)
            except StreamEOF:
                break
            if not chunk:
                break
            out += chunk
    with contextlib.suppress(Exception):
        await stream.close()
    return out


def test_bad_px_input_is_counted_and_forged_records_are_not_stored(tmp_path: Path) -> None:
    node = _daemon(tmp_path, "a", min_connections=0)
    result: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            assert node.host is not None
            target_id = node.host.get_id()
            target = multiaddr.Multiaddr(str(node.host.get_addrs()[0]))
            evil = _bare_host()
            async with evil.run([LOOPBACK]):
                await evil.connect(info_from_p2p_addr(target))
                # 1. garbage, 2. a frame claiming 16 MiB, 3. someone else's record,
                # 4. a record for a victim signed by the attacker's key
                r1 = await _px_exchange(evil, target_id, b"\x05hello")
                r2 = await _px_exchange(evil, target_id, px.encode_uvarint(16 << 20) + b"x")
                other_kp = create_new_key_pair()
                other_id = ID.from_pubkey(other_kp.public_key)
                other = px.make_record(other_kp.private_key, other_id, [LOOPBACK])
                r3 = await _px_exchange(evil, target_id, px.encode_request(other, 8))
                victim_id = ID.from_pubkey(create_new_key_pair().public_key)
                forged = seal_record(
                    PeerRecord(victim_id, [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/9")]),
                    evil.get_private_key(),
                ).marshal_envelope()
                r4 = await _px_exchange(evil, target_id, px.encode_request(forged, 8))
                # 5. and an honest request still gets an answer with the node's record
                own = px.make_record(
                    evil.get_private_key(), evil.get_id(), evil.get_transport_addrs()
                )
                r5 = await _px_exchange(evil, target_id, px.encode_request(own, 8, "worker"))
            result["roles"] = dict(node.discovery.roles)  # type: ignore[union-attr]
            result["role"] = node.config.node.role
            result.update(replies=[r1, r2, r3, r4, r5], victim=victim_id, evil=evil.get_id())
            result["node"] = target_id.to_base58()
            result["stored"] = {r.peer_id for r in node.discovery.storage.list_peers()}  # type: ignore[union-attr]
            result["errors"] = _metric(node, "sonm_errors_total", kind="px_remote")
            result["rejected"] = _metric(node, "sonm_px_records_total", verdict="rejected")
            node.request_stop()

    trio.run(main)
    r1, r2, r3, r4, r5 = result["replies"]
    assert r1 == r2 == r3 == r4 == b""  # bad requests get no answer, just a closed stream
    assert result["victim"].to_base58() not in result["stored"]
    assert result["evil"].to_base58() in result["stored"]  # its own, valid record
    assert result["errors"] >= 3
    assert result["rejected"] >= 1
    answer = px.read_response(r5[2:] if r5[0] & 0x80 else r5[1:])
    ids = [px.verify_record(r).peer_id.to_base58() for r in answer.records]
    assert ids[0] == result["node"]  # the answerer's own record comes first
    # each side says what it runs as: the asker in its request, the answerer in its
    # answer, beside its own record too
    assert result["roles"] == {result["evil"].to_base58(): "worker"}
    assert answer.role == answer.roles[0] == result["role"]
    assert result["evil"].to_base58() not in ids  # not sent back to the asker


def test_failed_dials_reach_the_peer_table_and_the_backoff(tmp_path: Path) -> None:
    """Wiring only: how long a dead seed waits is the policy's, tested in virtual time
    (test_discovery_policy.py)."""
    dead_id = ID.from_pubkey(create_new_key_pair().public_key)
    dead = f"/ip4/127.0.0.1/tcp/9/p2p/{dead_id}"  # port 9 (discard) is closed on loopback
    node = _daemon(tmp_path, "b", bootstrap=(dead,), min_connections=1)
    counts: dict[str, float] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            d = node.discovery
            assert d is not None
            with trio.move_on_after(10):  # a loaded machine may be slow to the first failures
                while _metric(node, "sonm_dials_total", result="failed") < 2:
                    await trio.sleep(0.02)
            # no await from here on: the dial tasks cannot move meanwhile
            counts["failed"] = _metric(node, "sonm_dials_total", result="failed")
            row = d.storage.get_peer(dead_id.to_base58())
            counts["stored_failures"] = row.failures if row else -1
            counts["backoff_failures"] = d.policy.backoff[dead_id.to_base58()].failures
            node.request_stop()

    trio.run(main)
    assert counts["failed"] >= 2, counts
    assert counts["stored_failures"] == counts["failed"] == counts["backoff_failures"]


def test_records_offered_in_gossip_prunes_are_checked_like_px(tmp_path: Path) -> None:
    node = _daemon(tmp_path, "d", min_connections=0)
    out: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            d = node.discovery
            assert d is not None
            kp = create_new_key_pair()
            pid = ID.from_pubkey(kp.public_key)
            env = px.make_record(kp.private_key, pid, [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/7")])
            other = ID.from_pubkey(create_new_key_pair().public_key)
            out["for_other"] = d.accept_offered(other.to_bytes(), env)  # record of someone else
            out["garbage"] = d.accept_offered(pid.to_bytes(), b"\x00garbage")
            out["none"] = d.accept_offered(pid.to_bytes(), None)
            out["stored_before"] = d.storage.get_peer(pid.to_base58())
            out["ok"] = d.accept_offered(pid.to_bytes(), env)
            out["offered"] = d.signed_record_of(pid.to_bytes())
            out["own"] = d.signed_record_of(d.me.to_bytes())
            out["unknown"] = d.signed_record_of(other.to_bytes())
            out["me"] = d.me
            out["env"] = env
            node.request_stop()

    trio.run(main)
    assert out["for_other"] is False and out["garbage"] is False and out["none"] is False
    assert out["stored_before"] is None
    assert out["ok"] is True and out["offered"] == out["env"]
    assert out["unknown"] is None
    assert px.verify_record(out["own"]).peer_id == out["me"]


def test_the_keeper_dials_redials_a_dropped_connection_and_trims_the_extra(
    tmp_path: Path,
) -> None:
    """The driver carries out what the policy decides, on real connections: it dials
    the seed, dials it again when the seed hangs up, and drops a connection above
    the maximum (the newest). Which peer and when is tested in virtual time
    (test_discovery_policy.py)."""
    seed = _daemon(tmp_path, "seed", min_connections=0)
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(seed.run)
            assert seed.host is not None
            addr = str(seed.host.get_addrs()[0])
            node = _daemon(
                tmp_path, "node", bootstrap=(addr,), min_connections=1, max_connections=1
            )
            await nursery.start(node.run)
            assert node.host is not None
            with trio.move_on_after(10):
                while not node.host.get_connected_peers():
                    await trio.sleep(0.02)
            seen["first"] = len(node.host.get_connected_peers())
            await seed.host.disconnect(node.host.get_id())  # the seed hangs up on it
            with trio.move_on_after(5):
                while node.host.get_connected_peers():
                    await trio.sleep(0.01)
            seen["dropped"] = len(node.host.get_connected_peers())
            with trio.move_on_after(10):
                while not node.host.get_connected_peers():
                    await trio.sleep(0.02)
            seen["again"] = len(node.host.get_connected_peers())
            with trio.move_on_after(2):  # the dial task counts right after connect returns
                while _metric(node, "sonm_dials_total", result="ok") < 2:
                    await trio.sleep(0.01)
            seen["dials_ok"] = _metric(node, "sonm_dials_total", result="ok")
            # one connection too many: the newcomer is dropped, the seed kept
            extra = _bare_host()
            async with extra.run([LOOPBACK]):
                await extra.connect(
                    info_from_p2p_addr(multiaddr.Multiaddr(str(node.host.get_addrs()[0])))
                )
                seen["accepted"] = True  # connect returned: the node took the connection
                with trio.move_on_after(10):
                    while extra.get_id() in node.host.get_connected_peers():
                        await trio.sleep(0.05)
                seen["after"] = {p.to_base58() for p in node.host.get_connected_peers()}
                assert node.discovery is not None
                # dropped by the keeper (it waits out a backoff before any re-dial)
                seen["in_backoff"] = extra.get_id().to_base58() in node.discovery.policy.backoff
            seen["seed"] = seed.host.get_id().to_base58()
            node.request_stop()
            seed.request_stop()

    trio.run(main)
    assert seen["first"] == 1 and seen["dropped"] == 0
    assert seen["again"] == 1
    assert seen["dials_ok"] >= 2
    assert seen["accepted"] is True
    assert seen["after"] == {seen["seed"]}
    assert seen["in_backoff"] is True


def test_announced_addresses_go_into_our_record(tmp_path: Path) -> None:
    node = _daemon(tmp_path, "e", min_connections=0, announce=("/ip4/127.0.0.9/tcp/4444",))
    out: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            d = node.discovery
            assert d is not None
            out["record"] = d.signed_record_of(d.me.to_bytes())
            node.request_stop()

    trio.run(main)
    assert px.verify_record(out["record"]).addrs == ("/ip4/127.0.0.9/tcp/4444",)


def test_an_undialable_peer_row_is_forgotten_and_the_node_keeps_running(tmp_path: Path) -> None:
    """A row whose addresses do not parse (say, stored by an older version, or from a
    signed record that named garbage) must not crash the dialer: it is dropped."""
    from p2pnode.storage import Storage

    bad_id = ID.from_pubkey(create_new_key_pair().public_key).to_base58()
    storage = Storage.open_in(tmp_path / "d")
    storage.upsert_peer(bad_id, ["/garbage", "/ip4/1.2.3.4/tcp/99999"], source="topic")
    storage.close()
    node = _daemon(tmp_path, "d", min_connections=1)
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            with trio.move_on_after(10):
                while _metric(node, "sonm_errors_total", kind="undialable_peer") < 1:
                    await trio.sleep(0.02)
            seen["errors"] = _metric(node, "sonm_errors_total", kind="undialable_peer")
            seen["row"] = node.discovery.storage.get_peer(bad_id)  # type: ignore[union-attr]
            await trio.sleep(0.3)  # the node is still up and serving
            seen["alive"] = node.host is not None and bool(node.host.get_addrs())
            node.request_stop()

    trio.run(main)
    assert seen["errors"] == 1
    assert seen["row"] is None
    assert seen["alive"]


def test_whom_a_neighbour_names_in_px_is_kept_while_it_is_connected(tmp_path: Path) -> None:
    """Who sees whom (for the web view): a node keeps the ids its neighbour named in
    its last px answer, and forgets them when that neighbour goes."""
    seed = _daemon(tmp_path, "seed", min_connections=0)
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(seed.run)
            assert seed.host is not None
            addr = str(seed.host.get_addrs()[0])
            other = _daemon(tmp_path, "other", bootstrap=(addr,), min_connections=1)
            await nursery.start(other.run)
            node = _daemon(tmp_path, "node", bootstrap=(addr,), min_connections=1, px_interval=0.2)
            await nursery.start(node.run)
            assert node.discovery is not None and node.host is not None
            assert other.host is not None
            seed_id, other_id = seed.host.get_id().to_base58(), other.host.get_id().to_base58()
            with trio.move_on_after(15):
                while other_id not in node.discovery.named_by.get(seed_id, ()):
                    await trio.sleep(0.05)
            seen["named"] = node.discovery.named_by.get(seed_id)
            # the seed goes away for good: a hang-up alone would be redialled at once
            seed.request_stop()
            with trio.move_on_after(10):
                while seed_id in node.discovery.named_by:
                    await trio.sleep(0.05)
            seen["after"] = dict(node.discovery.named_by)
            seen["connected"] = node.discovery.connected_ids()
            seen["seed"], seen["other"] = seed_id, other_id
            for d in (node, other):
                d.request_stop()

    trio.run(main)
    assert seen["named"] is not None and seen["other"] in seen["named"]
    assert seen["seed"] not in seen["after"]
    # only neighbours still connected have an entry (the node may have found `other`)
    assert set(seen["after"]) <= seen["connected"]


def test_the_roles_peers_tell_are_capped_oldest_first(tmp_path: Path, monkeypatch: Any) -> None:
    """Each peer sets only its own entry, but sybils are many: the table keeps the
    newest MAX_KNOWN_PEERS, and a peer that speaks again counts as new."""
    from p2pnode import discovery as disc_mod
    from p2pnode.discovery import Discovery
    from p2pnode.keys import load_or_create_identity
    from p2pnode.metrics import NodeMetrics
    from p2pnode.storage import Storage

    monkeypatch.setattr(disc_mod, "MAX_KNOWN_PEERS", 3)
    config = build_config([{"node.data_dir": str(tmp_path), "node.role": "seed"}])
    d = Discovery(
        _bare_host(),
        config,
        Storage.open_in(tmp_path),
        NodeMetrics(),
        load_or_create_identity(tmp_path),
    )
    assert d.role == "seed"
    for i in range(4):
        d._note_role(f"p{i}", "worker")
    d._note_role("p1", "consumer")  # p1 again: now the newest
    d._note_role("p9", None)  # said nothing: nothing kept
    assert list(d.roles) == ["p2", "p3", "p1"] and d.roles["p1"] == "consumer"
