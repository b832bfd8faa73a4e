"""Router micro-costs the simulator pays per RPC, each as a ratio against the way
it was done before, measured in the same run:

- `RPC.encoded_size()` by arithmetic against encoding the subscriptions and the
  control message to measure them (the simulator sizes every RPC it sends);

    .venv/bin/python -m benchmarks.router_micro [--repeat 200000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from gossip.wire import RPC, Control, Message, PeerInfo, Prune, SubOpts, _ld_size


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


def per_call(fn: Callable[[RPC], int], rpc: RPC, repeat: int) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn(rpc)
        best = min(best, time.perf_counter() - t0)
    return best / repeat


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


if __name__ == "__main__":
    main()
