"""Our gossipsub against an independent implementation: js-libp2p with
@chainsafe/libp2p-gossipsub (versions pinned in tests/interop/js/package-lock.json,
installed into .tools/interop by scripts/setup-tools).

Our py-libp2p host (TCP, Noise, Yamux) runs our router through the trio driver,
with scoring on as the daemon runs it; the JS peer (tests/interop/js/peer.mjs)
runs as a subprocess on loopback under StrictNoSign with message id =
sha256(data). Checked, for each side dialling and each side sending the first
GRAFT (the side that joins the topic last):

- that GRAFT is read and accepted, so each side has the other in its mesh, and
  keeps it (no PRUNE either way), over /meshsub/1.2.0;
- every message published on one side reaches the other exactly once, with the
  exact payload (binary and 64 KiB ones included), and both compute the same
  message id;
- nothing we receive is malformed or breaks the signature policy.

A line of four (three of ours, the JS peer second) checks IDONTWANT both ways,
and a StrictSign case checks libp2p message signatures and the id
`from || seqno` both ways. Each test takes 2-3 s. Two more (about 8 s each)
run the JS peer on js-libp2p's own StrictSign id and show that its honest
gossip costs it nothing when we compute the same ids (id_style "js"), and what
it cost when we did not ("go").
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr

from gossip.events import Delivered
from gossip.params import GossipSubParams
from gossip.router import PROTOCOL_V12
from gossip.score_params import default_peer_score_params, default_thresholds
from gossip.topics import ORDERS_TOPIC
from p2pnode.host import muxer_options, security_options
from p2pnode.pubsub import PubSub, libp2p_sign_policy

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
INTEROP = ROOT / ".tools" / "interop"
PEER_JS = Path(__file__).resolve().parent / "js" / "peer.mjs"
LOOPBACK = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
TOPIC = ORDERS_TOPIC
WAIT = 10.0  # seconds for a mesh to form or messages to arrive (usually ~1.5 s / ~50 ms)


def _require_interop_peer() -> str:
    """The node binary, or skip (fail under SONM_REQUIRE_INTEROP=1) with the reason."""
    node = shutil.which("node")
    reason = None
    if not (INTEROP / ".installed").is_file():
        reason = f"js-libp2p interop peer not installed in {INTEROP} (run scripts/setup-tools)"
    elif node is None:
        reason = "node (Node.js) not found on PATH"
    if reason is None:
        assert node is not None
        return node
    if os.environ.get("SONM_REQUIRE_INTEROP") == "1":
        pytest.fail(f"{reason}; SONM_REQUIRE_INTEROP=1")
    pytest.skip(reason)


def _host(kp: KeyPair) -> IHost:
    return new_host(
        key_pair=kp,
        sec_opt=security_options(kp),
        muxer_opt=muxer_options(),
        listen_addrs=[LOOPBACK],
    )


class JsPeer:
    """The JS peer subprocess: its JSON event lines, and commands on its stdin."""

    def __init__(self, proc: trio.Process, stderr_path: Path) -> None:
        self.proc = proc
        self.stderr_path = stderr_path
        self.events: list[dict[str, Any]] = []
        self._changed = trio.Event()
        self.peer_id = ""
        self.addr = ""

    async def pump(self) -> None:
        assert self.proc.stdout is not None
        buf = b""
        async for chunk in self.proc.stdout:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.strip():
                    self.events.append(json.loads(line))
            self._changed.set()
            self._changed = trio.Event()
        self._changed.set()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind]

    async def wait_for(self, what: str, pred: Callable[[], bool], timeout: float = WAIT) -> None:
        with trio.move_on_after(timeout):
            while not pred():
                if self.proc.returncode is not None:
                    break
                await self._changed.wait()
            else:
                return
        pytest.fail(f"JS peer: {what} did not happen in {timeout} s\n{self.diagnostics()}")

    async def send(self, cmd: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.send_all(json.dumps(cmd).encode() + b"\n")

    async def publish(self, data: bytes) -> None:
        await self.send({"publish_hex": data.hex()})

    def mesh(self) -> list[str]:
        meshes = self.of("mesh")
        return list(meshes[-1]["peers"]) if meshes else []

    def received(self) -> list[bytes]:
        return [bytes.fromhex(e["data_hex"]) for e in self.of("message")]

    def diagnostics(self) -> str:
        err = self.stderr_path.read_text(errors="replace")[-2000:]
        events = "\n".join(json.dumps(e) for e in self.events[-30:])
        return f"-- JS events (last 30):\n{events}\n-- JS stderr (tail):\n{err}"

    async def close(self) -> int:
        """Close stdin (the peer stops its node and exits 0); kill it if it hangs."""
        if self.proc.stdin is not None:
            with trio.move_on_after(1):
                await self.proc.stdin.aclose()
        with trio.move_on_after(5):
            return await self.proc.wait()
        self.proc.kill()
        await self.proc.wait()
        return -9


@asynccontextmanager
async def js_peer(node: str, workdir: Path, *args: str) -> AsyncIterator[JsPeer]:
    # peer.mjs must sit next to a node_modules for Node's ESM resolution: copy it
    # beside a link to the installed packages
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "peer.mjs"
    shutil.copyfile(PEER_JS, script)
    modules = workdir / "node_modules"
    if not modules.exists():
        modules.symlink_to(INTEROP / "node_modules", target_is_directory=True)
    stderr_path = workdir / "stderr.log"
    with stderr_path.open("wb") as stderr:
        proc = await trio.lowlevel.open_process(
            [node, str(script), "--topic", TOPIC, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=workdir,
        )
    peer = JsPeer(proc, stderr_path)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(peer.pump)
            await peer.wait_for("listening", lambda: bool(peer.of("listening")))
            first = peer.of("listening")[0]
            peer.peer_id = first["peer_id"]
            peer.addr = first["addrs"][0]
            try:
                yield peer
            finally:
                code = await peer.close()
                nursery.cancel_scope.cancel()
        assert code == 0, f"JS peer exited with {code}\n{peer.diagnostics()}"
    finally:
        if proc.returncode is None:
            proc.kill()


class Ours:
    def __init__(
        self, sign: bool, id_style: str = "go", params: GossipSubParams | None = None
    ) -> None:
        kp = create_new_key_pair()
        self.key_pair = kp
        self.host = host = _host(kp)
        self.got: list[Delivered] = []
        self.pubsub = PubSub(
            host,
            params=params or GossipSubParams(),
            sign_policy=libp2p_sign_policy(kp, id_style) if sign else None,
            score_params=default_peer_score_params(),
            thresholds=default_thresholds(),
            on_delivery=self._on_delivery,
            seed=1,
        )

    def _on_delivery(self, d: Delivered) -> None:
        if d.received_from != self.host.get_id().to_bytes():
            self.got.append(d)

    @property
    def router(self) -> Any:
        return self.pubsub.router

    def protocol_of(self, peer: bytes) -> str:
        return str(self.router.peer_protocol(peer))


@asynccontextmanager
async def ours(
    n: int,
    subscribe: bool = True,
    sign: bool = False,
    id_style: str = "go",
    params: list[GossipSubParams | None] | None = None,
) -> AsyncIterator[list[Ours]]:
    async with AsyncExitStack() as stack:
        nodes = [Ours(sign, id_style, params[i] if params else None) for i in range(n)]
        for nd in nodes:
            await stack.enter_async_context(nd.host.run([LOOPBACK]))
        async with trio.open_nursery() as nursery:
            for nd in nodes:
                await nursery.start(nd.pubsub.run)
                if subscribe:
                    nd.pubsub.subscribe(TOPIC)
            try:
                yield nodes
            finally:
                nursery.cancel_scope.cancel()


async def _wait(what: str, pred: Callable[[], bool], js: JsPeer, timeout: float = WAIT) -> None:
    with trio.move_on_after(timeout):
        while not pred():
            await trio.sleep(0.02)
        return
    pytest.fail(f"{what} did not happen in {timeout} s\n{js.diagnostics()}")


def _payloads(prefix: bytes) -> list[bytes]:
    """Small text, every byte value, one above the IDONTWANT threshold, one of 64 KiB."""
    small = [prefix + b"-%d" % i for i in range(10)]
    return [*small, prefix + bytes(range(256)), prefix + bytes(2048), prefix * 16384]


@pytest.mark.parametrize("first_graft", ["ours", "js"])
@pytest.mark.parametrize("dialler", ["ours", "js"])
def test_messages_and_mesh_both_ways(tmp_path: Path, dialler: str, first_graft: str) -> None:
    """`first_graft` joins the topic last, so its GRAFT (sent on joining, with its
    subscription) is the one that makes the mesh; the other side must accept it."""
    node = _require_interop_peer()
    trio.run(_messages_and_mesh, node, tmp_path, dialler, first_graft)


async def _messages_and_mesh(node: str, tmp_path: Path, dialler: str, first_graft: str) -> None:
    we_join_late = first_graft == "ours"
    async with ours(1, subscribe=not we_join_late) as (py,):
        our_addr = str(py.host.get_addrs()[0])
        args = ["--dial", our_addr] if dialler == "js" else []
        if not we_join_late:
            args.append("--join-later")
        async with js_peer(node, tmp_path / "js", *args) as js:
            js_pb = ID.from_base58(js.peer_id).to_bytes()
            our_id = py.host.get_id().to_base58()
            if dialler == "ours":
                await py.host.connect(info_from_p2p_addr(multiaddr.Multiaddr(js.addr)))

            # the late joiner first learns the other's subscription, then joins
            if we_join_late:
                await _wait(
                    "JS subscription seen", lambda: js_pb in py.router.topic_peers(TOPIC), js
                )
                py.pubsub.subscribe(TOPIC)
            else:
                # JS's join grafts only peers it has its own stream to (its
                # getRandomGossipPeers skips the rest): that stream must be open too,
                # or our heartbeat makes the mesh instead of JS's GRAFT
                await _wait("JS stream to us", lambda: py.pubsub.inbound_streams() == 1, js)
                await js.wait_for(
                    "our subscription seen by JS",
                    lambda: any(
                        e["peer"] == our_id and {"topic": TOPIC, "subscribe": True} in e["topics"]
                        for e in js.of("subscribed")
                    ),
                )
                await js.send({"subscribe": True})

            # mesh: each side has the other
            await _wait("JS peer in our mesh", lambda: js_pb in py.router.mesh_peers(TOPIC), js)
            await js.wait_for("us in the JS mesh", lambda: our_id in js.mesh())
            assert py.protocol_of(js_pb) == PROTOCOL_V12
            assert js.of("mesh")[-1]["protocols"][our_id] == PROTOCOL_V12

            # ours -> JS
            mine = _payloads(b"py")
            for data in mine:
                await py.pubsub.publish(TOPIC, data)
            await js.wait_for("all our messages", lambda: len(js.of("message")) >= len(mine))
            # JS -> ours
            theirs = _payloads(b"js")
            for data in theirs:
                await js.publish(data)
            await _wait("all JS messages", lambda: len(py.got) >= len(theirs), js)

            # one more heartbeat each: nothing arrives twice, the mesh holds
            await trio.sleep(1.2)
            await js.send({"mesh": True})
            await js.wait_for("mesh report", lambda: js.events[-1]["event"] == "mesh")

            assert sorted(js.received()) == sorted(mine)
            for e in js.of("message"):
                assert e["topic"] == TOPIC
                assert e["from"] == our_id
                assert e["msg_id_hex"] == hashlib.sha256(bytes.fromhex(e["data_hex"])).hexdigest()
            assert sorted(d.data for d in py.got) == sorted(theirs)
            for d in py.got:
                assert d.topic == TOPIC
                assert d.received_from == js_pb
                assert d.source_peer is None  # StrictNoSign: no author on the wire
                assert d.msg_id == hashlib.sha256(d.data).digest()
            published = js.of("published")
            assert [bytes.fromhex(e["data_hex"]) for e in published] == theirs
            assert all(e["recipients"] == [our_id] for e in published)
            assert not js.of("error"), js.diagnostics()

            m = py.router.metrics
            assert js_pb in py.router.mesh_peers(TOPIC)
            assert our_id in js.mesh()
            assert m.malformed_frames == 0
            assert m.msgs_policy_rejected == 0
            assert m.msgs_duplicate == 0
            # the one GRAFT was sent by the late joiner, read and accepted by the other
            assert m.prune_sent == 0 and m.prune_received == 0
            assert not js.of("prune"), js.diagnostics()
            js_in = [e for e in js.of("graft") if e["direction"] == "inbound"]
            js_out = [e for e in js.of("graft") if e["direction"] == "outbound"]
            if we_join_late:
                assert (m.graft_sent, len(js_in)) == (1, 1)
                assert js_in[0]["peer"] == our_id and js_in[0]["topic"] == TOPIC
            else:
                assert (m.graft_received, len(js_out)) == (1, 1)
            assert m.graft_sent == len(js_in) and m.graft_received == len(js_out)
            assert py.router.score_of(js_pb, trio.current_time()) >= 0


def test_idontwant_both_ways(tmp_path: Path) -> None:
    """A line of four: a - JS - b - c (three of ours, the JS peer second).

    `c` publishes a 4 KiB message. `b` gets it from `c` and, before forwarding,
    sends IDONTWANT for it to its other mesh peer, the JS peer, which must record
    it; the JS peer sends IDONTWANT to its other mesh peer `a`, which must read it.
    Then the message reaches `a` through the JS peer.
    """
    trio.run(_idontwant, _require_interop_peer(), tmp_path)


async def _idontwant(node: str, tmp_path: Path) -> None:
    async with ours(3) as (a, b, c), js_peer(node, tmp_path / "js") as js:
        js_pb = ID.from_base58(js.peer_id).to_bytes()
        js_addr = info_from_p2p_addr(multiaddr.Multiaddr(js.addr))
        await a.host.connect(js_addr)
        await b.host.connect(js_addr)
        await c.host.connect(info_from_p2p_addr(b.host.get_addrs()[0]))
        b_pb, c_pb = b.host.get_id().to_bytes(), c.host.get_id().to_bytes()
        for nd, peers in ((a, {js_pb}), (b, {js_pb, c_pb}), (c, {b_pb})):

            def mesh_is(nd: Ours = nd, peers: set[bytes] = peers) -> bool:
                return bool(nd.router.mesh_peers(TOPIC) == peers)

            await _wait("mesh of the line", mesh_is, js)
        ab = {a.host.get_id().to_base58(), b.host.get_id().to_base58()}
        await js.wait_for("a and b in the JS mesh", lambda: set(js.mesh()) == ab)

        big = b"C" * 4096
        msg_id = hashlib.sha256(big).digest()
        await c.pubsub.publish(TOPIC, big)
        await _wait("c's message at a", lambda: [d.data for d in a.got] == [big], js)
        await js.wait_for("JS delivery", lambda: js.received() == [big])

        # b -> JS: b told the JS peer it has the message
        assert b.router.metrics.idontwant_sent >= 1
        await js.send({"idontwants": True})
        await js.wait_for("IDONTWANT report", lambda: bool(js.of("idontwants")))
        kept = js.of("idontwants")[-1]["peers"]
        assert kept.get(b.host.get_id().to_base58()) == [msg_id.hex()], js.diagnostics()
        # JS -> a: the JS peer told a before forwarding
        assert a.router.metrics.idontwant_received == 1
        assert a.got[0].received_from == js_pb
        for nd in (a, b, c):
            assert nd.router.metrics.malformed_frames == 0
            assert nd.router.metrics.prune_received == 0
        assert not js.of("error") and not js.of("prune"), js.diagnostics()


def test_strict_sign_both_ways(tmp_path: Path) -> None:
    """StrictSign: each side verifies the other's libp2p signatures (a bad one would
    be dropped, not delivered) and both compute the id `from || seqno`."""
    trio.run(_strict_sign, _require_interop_peer(), tmp_path)


async def _strict_sign(node: str, tmp_path: Path) -> None:
    async with ours(1, sign=True) as (py,), js_peer(node, tmp_path / "js", "--sign") as js:
        js_pb = ID.from_base58(js.peer_id).to_bytes()
        our_pb = py.host.get_id().to_bytes()
        our_id = py.host.get_id().to_base58()
        await py.host.connect(info_from_p2p_addr(multiaddr.Multiaddr(js.addr)))
        await _wait("JS peer in our mesh", lambda: js_pb in py.router.mesh_peers(TOPIC), js)
        await js.wait_for("us in the JS mesh", lambda: our_id in js.mesh())

        mine = _payloads(b"py")
        our_ids = [await py.pubsub.publish(TOPIC, data) for data in mine]
        await js.wait_for("all our messages", lambda: len(js.of("message")) >= len(mine))
        theirs = _payloads(b"js")
        for data in theirs:
            await js.publish(data)
        await _wait("all JS messages", lambda: len(py.got) >= len(theirs), js)
        await trio.sleep(0.2)

        # (arrival order is not asserted: js-gossipsub handles RPCs concurrently)
        got = {bytes.fromhex(e["data_hex"]): e for e in js.of("message")}
        assert len(got) == len(js.of("message"))
        assert sorted(got) == sorted(mine)
        for data, msg_id in zip(mine, our_ids, strict=True):
            assert bytes.fromhex(got[data]["msg_id_hex"]) == msg_id
            assert got[data]["author"] == our_id
            assert msg_id[:-8] == our_pb  # from || 8-byte seqno
        assert len(set(our_ids)) == len(mine)
        assert sorted(d.data for d in py.got) == sorted(theirs)
        seqnos = set()
        for d in py.got:
            assert d.source_peer == js_pb
            assert d.received_from == js_pb
            assert len(d.msg_id) == len(js_pb) + 8 and d.msg_id[:-8] == js_pb
            seqnos.add(d.msg_id[-8:])
        assert len(seqnos) == len(theirs)
        m = py.router.metrics
        assert m.msgs_policy_rejected == 0 and m.malformed_frames == 0
        assert m.msgs_rejected == 0 and m.msgs_duplicate == 0
        assert not js.of("error") and not js.of("prune"), js.diagnostics()


@pytest.mark.parametrize("id_style", ["js", "go"])
def test_strict_sign_gossip_with_js_default_ids(tmp_path: Path, id_style: str) -> None:
    """The JS peer on its default StrictSign id (public key || seqno), kept out of
    our mesh so that it reaches us by gossip: it publishes, then advertises its
    messages in IHAVE every heartbeat.

    With id_style "js" we name its messages as it does: every IHAVE names messages
    we hold, we ask for nothing, no promise breaks, its score stays above the
    gossip threshold. With "go" (the default, for go-libp2p networks) every IHAVE
    names ids we never heard of: we ask again for what we hold, the answers never
    match the promises, and the JS peer pays broken-promise penalties for honest
    gossip; that is the mismatch the parameter exists for."""
    trio.run(_strict_sign_js_ids, _require_interop_peer(), tmp_path, id_style)


async def _strict_sign_js_ids(node: str, tmp_path: Path, id_style: str) -> None:
    # `a` holds one mesh peer (`b`), so it refuses the JS peer's GRAFT: the JS peer
    # then gossips to `a` instead of forwarding through a mesh link
    narrow = GossipSubParams(D=1, D_lo=1, D_hi=1, D_score=1, D_out=0)
    async with ours(2, sign=True, id_style=id_style, params=[narrow, None]) as (a, b):
        await a.host.connect(info_from_p2p_addr(b.host.get_addrs()[0]))
        b_pb = b.host.get_id().to_bytes()
        with trio.fail_after(WAIT):
            while b_pb not in a.router.mesh_peers(TOPIC):
                await trio.sleep(0.02)
        a_addr = f"{a.host.get_addrs()[0]}"
        async with js_peer(node, tmp_path / "js", "--sign", "--js-id", "--dial", a_addr) as js:
            js_pb = ID.from_base58(js.peer_id).to_bytes()
            await _wait("JS GRAFT refused", lambda: a.router.metrics.prune_sent >= 1, js)
            assert js_pb not in a.router.mesh_peers(TOPIC)
            theirs = [b"js-gossip-%d" % i for i in range(5)]
            for data in theirs:
                await js.publish(data)
            await _wait("JS messages at a", lambda: len(a.got) >= len(theirs), js)
            # a few of its heartbeats' IHAVEs, then past the IWANT promise deadline
            await _wait("JS gossip", lambda: a.router.metrics.ihave_received >= 2, js)
            await trio.sleep(a.router.params.iwant_followup_time + 1.5)

            m = a.router.metrics
            score = a.router.score_of(js_pb, trio.current_time())
            gossip_th = default_thresholds().gossip_threshold
            assert sorted(d.data for d in a.got if d.received_from == js_pb) == sorted(theirs)
            assert not js.of("error"), js.diagnostics()
            if id_style == "js":
                proto_key = js_pb[2:]  # an Ed25519 id is 00 24 || protobuf public key
                for d in a.got:
                    assert d.msg_id[:-8] == proto_key and len(d.msg_id) == 44
                assert m.ihave_received >= 2
                assert m.iwant_sent == 0 and m.broken_promises == 0
                assert m.msgs_duplicate == 0
                assert score >= 0 > gossip_th
            else:
                assert m.iwant_sent >= 1 and m.broken_promises >= 1
                snap = a.router.peer_score.snapshot(js_pb, trio.current_time())
                # each broken promise adds 1; the penalty decays every decay interval
                # between the break and this read, so it is a little under 1 by now
                assert snap is not None and snap.behaviour_penalty > 0.5
