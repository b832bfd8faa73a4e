"""Router micro-costs the simulator pays per RPC, each as a ratio against the way
it was done before, measured in the same run:

- `RPC.encoded_size()` by arithmetic against encoding the subscriptions and the
  control message to measure them (the simulator sizes every RPC it sends);
- making a `Control` and queueing one entry (what the router does per peer per
  heartbeat) with its lists created on use, against five lists made up front;
- a peer's queue turned into frames by `wire.encode_frames` (what the router's
  drain does), against building the RPC and framing its encoding;

    .venv/bin/python -m benchmarks.router_micro [--repeat 200000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from gossip.wire import (
    RPC,
    Control,
    Message,
    PeerInfo,
    Prune,
    SubOpts,
    _ld_size,
    decode_rpc,
    encode_frames,
    frame,
    split_frames,
)


def size_by_encoding(rpc: RPC) -> int:
    """The former RPC.encoded_size: encode the parts to measure them."""
    size = 0
    for s in rpc.subscriptions:
        size += _ld_size(len(s.encode()))
    for m in rpc.publish:
        size += _ld_size(len(m.encode()))
    if rpc.control:
        size += _ld_size(len(rpc.control.encode()))
    return size


def typical_rpcs() -> dict[str, RPC]:
    """What a simulated router sends most: messages, gossip, mesh upkeep, hellos."""
    ids = [bytes([i]) * 32 for i in range(12)]
    msg = Message("/sonm/orders/1", b"o" * 300)
    msg.encode()  # cached on the message, as after its first send
    return {
        "message": RPC(publish=[msg]),
        "ihave": RPC(control=Control(ihave=[("/sonm/orders/1", ids)])),
        "iwant": RPC(control=Control(iwant=ids[:3])),
        "graft": RPC(control=Control(graft=["/sonm/orders/1"])),
        "prune+px": RPC(
            control=Control(
                prune=[Prune("/sonm/orders/1", [PeerInfo(b"p" * 38) for _ in range(8)], 60)]
            )
        ),
        "hello": RPC(subscriptions=[SubOpts(True, "/sonm/orders/1"), SubOpts(True, "/sonm/hubs")]),
    }


class EagerControl:
    """The former Control: five lists per instance."""

    __slots__ = ("graft", "idontwant", "ihave", "iwant", "prune")

    def __init__(
        self,
        ihave: list[tuple[str, list[bytes]]] | None = None,
        iwant: list[bytes] | None = None,
        graft: list[str] | None = None,
        prune: list[Prune] | None = None,
        idontwant: list[bytes] | None = None,
    ) -> None:
        self.ihave = ihave if ihave is not None else []
        self.iwant = iwant if iwant is not None else []
        self.graft = graft if graft is not None else []
        self.prune = prune if prune is not None else []
        self.idontwant = idontwant if idontwant is not None else []


def per_call(fn: Callable[[RPC], object], arg: RPC, repeat: int) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn(arg)
        best = min(best, time.perf_counter() - t0)
    return best / repeat


def queue_prune(cls: type[Control] | type[EagerControl], pr: Prune) -> object:
    c = cls()
    c.prune.append(pr)
    return c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=200_000)
    args = ap.parse_args()

    print("-- RPC.encoded_size: arithmetic vs encoding to measure --")
    for name, rpc in typical_rpcs().items():
        assert rpc.encoded_size() == size_by_encoding(rpc) == len(rpc.encode())
        new = per_call(RPC.encoded_size, rpc, args.repeat)
        old = per_call(size_by_encoding, rpc, args.repeat)
        print(f"{name:>10}: {new * 1e9:7.0f} ns vs {old * 1e9:7.0f} ns = {new / old:.2f}x")

    print("-- Control() + one PRUNE queued: lists on use vs five lists up front --")
    pr = Prune("/sonm/orders/1", [], 60)
    new = per_call(lambda _: queue_prune(Control, pr), RPC(), args.repeat)
    old = per_call(lambda _: queue_prune(EagerControl, pr), RPC(), args.repeat)
    print(f"{'control':>10}: {new * 1e9:7.0f} ns vs {old * 1e9:7.0f} ns = {new / old:.2f}x")

    print("-- a peer's queue as frames: encode_frames vs frame(RPC(...).encode()) --")
    limit = 1 << 20
    for name, rpc in typical_rpcs().items():
        ctl = rpc.control
        (fr,) = encode_frames(rpc.subscriptions, rpc.publish, ctl, limit)
        assert decode_rpc(split_frames(fr, limit)[0][0]) == rpc

        def drained(r: RPC, ctl: Control | None = ctl) -> object:
            return encode_frames(r.subscriptions, r.publish, ctl, limit)

        def framed(r: RPC) -> object:
            return frame(r.encode())

        new = per_call(drained, rpc, args.repeat)
        old = per_call(framed, rpc, args.repeat)
        print(f"{name:>10}: {new * 1e9:7.0f} ns vs {old * 1e9:7.0f} ns = {new / old:.2f}x")


if __name__ == "__main__":
    main()
