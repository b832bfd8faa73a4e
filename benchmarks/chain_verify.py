"""Hub verifications per second against anvil: warm cache vs cold, same run.

Baseline (cold): every verification reads the chain — factory, whitelist row, trusted
flag, wallet state, payout events (eth_call and eth_getLogs over JSON-RPC). Warm: the
same hubs again within the TTL, answered from the verifier's cache, which is what a
node pays for each re-announcement of a hub it already checked. Also shown: the cost
of one `poll()` over new blocks, which is what keeps the warm answers honest.

    .venv/bin/python -m benchmarks.chain_verify [--hubs 20] [--payouts 3] [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from contracts.anvil import AnvilProcess
from contracts.chain import rpc_chain
from contracts.deploy import System, SystemParams, deploy_system
from contracts.params import SNM
from contracts.verify import HubVerdict, HubVerifier, VerifierParams


def rate(fn: Callable[[], int], seconds: float) -> float:
    """Operations per second of `fn` (which returns how many it did), over ~seconds."""
    done = 0
    start = time.perf_counter()
    while True:
        done += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hubs", type=int, default=20)
    ap.add_argument("--payouts", type=int, default=3, help="miner payments per hub")
    ap.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = ap.parse_args()

    params = SystemParams(deposit=100 * SNM, payout_period=3600, waiting_period=60)
    with AnvilProcess() as anvil:
        chain = rpc_chain(anvil.url)
        system = System.connect(chain, deploy_system(chain, params=params))
        dao, miner = chain.accounts[0], chain.accounts[1]
        owners = chain.accounts[2:]
        hubs: list[tuple[str, str]] = []
        for i in range(args.hubs):
            owner = owners[i % len(owners)]
            wallet, _ = system.factory.create_wallet(sender=owner)
            system.token.transfer(wallet, 1_000 * SNM, sender=dao)
            hw = system.wallet(wallet)
            hw.register(f"hub-{i}", ["/ip4/127.0.0.1/tcp/4001"], sender=owner)
            for _ in range(args.payouts):
                hw.transfer(miner, 10 * SNM, sender=owner)
            hubs.append((wallet, owner))

        verifier = HubVerifier(system, VerifierParams(min_frozen_funds=params.deposit, ttl=3600))
        assert all(verifier.verify(w, o).verdict is HubVerdict.ACCEPT for w, o in hubs)

        def cold() -> int:
            for wallet, owner in hubs:
                verifier.invalidate(wallet)
                verifier._payouts.pop(wallet, None)  # the payout history is re-read too
                verifier.verify(wallet, owner)
            return len(hubs)

        def warm() -> int:
            for wallet, owner in hubs:
                verifier.verify(wallet, owner)
            return len(hubs)

        def poll() -> int:
            chain.mine()
            verifier.poll()
            return 1

        cold_rate = rate(cold, args.seconds)
        warm_rate = rate(warm, args.seconds)
        poll_rate = rate(poll, args.seconds)

    print(f"hubs: {args.hubs}, payouts per hub: {args.payouts}, chain: anvil over JSON-RPC")
    print(f"cold (chain reads)    : {cold_rate:12.1f} verifications/s  (baseline 1.00x)")
    print(
        f"warm (cache hit)      : {warm_rate:12.1f} verifications/s  ({warm_rate / cold_rate:.0f}x)"
    )
    print(f"poll (mine + events)  : {poll_rate:12.1f} polls/s")


if __name__ == "__main__":
    main()
