"""Control creates its five lists on first use; that must not show from outside."""

from __future__ import annotations

import random

from gossip.router import PROTOCOL_V12, GossipRouter
from gossip.wire import RPC, Control, Prune, SubOpts, decode_rpc


def test_absent_lists_behave_as_empty_lists() -> None:
    c = Control()
    assert not c
    assert c == Control(ihave=[], iwant=[], graft=[], prune=[], idontwant=[])
    assert repr(c) == "Control(ihave=[], iwant=[], graft=[], prune=[], idontwant=[])"
    assert c.encode() == b"" and c.encoded_size() == 0
    c.graft.append("t")
    c.iwant.extend([b"a", b"b"])
    c.prune += [Prune("u")]
    assert c and c.graft == ["t"] and c.iwant == [b"a", b"b"]
    assert c == Control(graft=["t"], iwant=[b"a", b"b"], prune=[Prune("u")])
    assert c != Control(graft=["t"])
    c.idontwant = [b"x"]
    assert decode_rpc(RPC(control=c).encode()).control == c


def test_receiving_a_control_does_not_fill_in_its_absent_lists() -> None:
    """The simulator hands one RPC object from sender to receiver: reading it must
    not allocate the four lists it does not carry."""
    r = GossipRouter(local_peer=b"me", rng=random.Random(1))
    r.add_peer(b"p", PROTOCOL_V12, True, 0.0)
    r.subscribe("t", 0.0)
    r.receive_rpc(b"p", RPC([SubOpts(True, "t")]), 0.0)
    ctl = Control(graft=["t"])
    r.receive_rpc(b"p", RPC(control=ctl), 0.0)
    assert b"p" in r.mesh_peers("t")
    assert ctl._ihave is None and ctl._iwant is None and ctl._prune is None
    assert ctl._idontwant is None
