"""Sign and verify throughput of orders: two baselines vs our fast path, same run.

Baselines:
- eth-keys (the straightforward implementation a careful user writes): the
  EIP-712 digest with the type hash computed once (gossip/eip712.py's digest),
  then eth-keys with its coincurve backend to sign (`sign_msg_hash`) and
  recover (`recover_public_key_from_msg_hash` + the address). This is the
  baseline that counts: the fast path differs from it only in the signature
  layer.
- eth-account end to end: `encode_typed_data` + `Account.sign_message` to sign,
  `encode_typed_data` + `Account.recover_message` to verify; it re-encodes the
  EIP-712 document in pure Python on every call, so it is shown for scale only.

Fast path (gossip/eip712.py): precompiled type hashes + C keccak for the digest,
libsecp256k1 (coincurve) called directly to sign and recover. Also shown: the
validator's whole cost per order (decode, canonical check, window, replay guard,
digest, recovery), which is what a node pays per new message.

All paths must agree on every signature; the script checks that before timing.

    .venv/bin/python -m benchmarks.sign_verify [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys import KeyAPI
from eth_keys.backends import CoinCurveECCBackend

from gossip import codec, eip712
from gossip.eip712 import SigningDomain
from gossip.orders import NetworkType, Order, Side
from gossip.topics import ORDERS_TOPIC
from gossip.validators import MessageValidator, ValidatorParams

DOMAIN = SigningDomain(chain_id=31337)
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
T0 = 1_700_000_000


def sample_orders(n: int) -> list[Order]:
    author = eip712.address_of_key(KEY)
    base = Order.create(
        author=author,
        side=Side.ASK,
        price_per_hour=25 * 10**16,
        duration=86_400,
        nonce=0,
        valid_from=T0,
        valid_until=T0 + 86_400,
        cpu_cores=16,
        ram_bytes=64 * 2**30,
        storage_bytes=2 * 10**12,
        gpu_count=2,
        gpu_mem_bytes=24 * 2**30,
        net_in_bps=10**9,
        net_out_bps=10**9,
        benchmarks={"gpu-eth-hashrate": 60_000_000, "cpu-sysbench-multi": 12_000},
        network=NetworkType.INBOUND_OUTBOUND,
        properties={"os": "linux", "region": "eu-central"},
        geo="DE",
    )
    return [dataclasses.replace(base, nonce=i) for i in range(n)]


def rate(fn: Callable[[int], None], items: int, seconds: float) -> float:
    """Operations per second of `fn(i)` over `items` distinct inputs, for ~`seconds`."""
    done = 0
    start = time.perf_counter()
    while True:
        for i in range(items):
            fn(i)
        done += items
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--orders", type=int, default=200, help="distinct orders")
    args = parser.parse_args(argv)

    unsigned = sample_orders(args.orders)
    fulls = [eip712.full_message(DOMAIN, o.EIP712_TYPE, o) for o in unsigned]
    signed = [o.signed(DOMAIN, KEY) for o in unsigned]
    digests = [o.digest(DOMAIN) for o in unsigned]
    encoded = [codec.encode(o) for o in signed]
    address = eip712.address_of_key(KEY)

    keys = KeyAPI(CoinCurveECCBackend)
    pk = keys.PrivateKey(KEY)

    def keys_signature(sig: bytes) -> object:
        return keys.Signature(sig[:64] + bytes([sig[64] - 27]))

    def keys_recover(d: bytes, sig: bytes) -> bytes:
        pub = keys_signature(sig).recover_public_key_from_msg_hash(d)  # type: ignore[attr-defined]
        return bytes(pub.to_canonical_address())

    # Correctness first: all paths agree on every digest and every signer.
    for full, o, d in zip(fulls, signed, digests, strict=True):
        ref = encode_typed_data(full_message=full)
        assert Account.sign_message(ref, KEY).signature == o.signature, "signatures differ"
        assert pk.sign_msg_hash(d).to_bytes()[:64] == o.signature[:64], "eth-keys differs"
        assert eip712.recover_address_eth_account(full, o.signature) == address
        assert eip712.recover_address(d, o.signature) == address
        assert keys_recover(d, o.signature) == address

    def sign_baseline(i: int) -> None:
        Account.sign_message(encode_typed_data(full_message=fulls[i]), KEY)

    def sign_keys(i: int) -> None:
        pk.sign_msg_hash(unsigned[i].digest(DOMAIN))

    def verify_keys(i: int) -> None:
        keys_recover(signed[i].digest(DOMAIN), signed[i].signature)

    def recover_keys(i: int) -> None:
        keys_recover(digests[i], signed[i].signature)

    def sign_fast(i: int) -> None:
        eip712.sign_digest(unsigned[i].digest(DOMAIN), KEY)

    def verify_baseline(i: int) -> None:
        signable = encode_typed_data(full_message=fulls[i])
        Account.recover_message(signable, signature=signed[i].signature)

    def verify_fast(i: int) -> None:
        eip712.recover_address(signed[i].digest(DOMAIN), signed[i].signature)

    def recover_only(i: int) -> None:
        eip712.recover_address(digests[i], signed[i].signature)

    def digest_only(i: int) -> None:
        signed[i].digest(DOMAIN)

    def decode_only(i: int) -> None:
        codec.decode(encoded[i])

    clock_now = [T0 + 10.0]
    validators: list[MessageValidator] = []

    def validate_full(i: int) -> None:
        if i == 0:  # a fresh replay guard each pass, so every order is new to it
            validators.append(
                MessageValidator(
                    ValidatorParams(domain=DOMAIN, accepted_cache_size=0),
                    clock=lambda: clock_now[0],
                )
            )
        validators[-1](ORDERS_TOPIC, encoded[i], b"peer")

    s = args.seconds
    results = {
        "sign, eth-account": rate(sign_baseline, args.orders, s),
        "sign, eth-keys": rate(sign_keys, args.orders, s),
        "sign, fast path": rate(sign_fast, args.orders, s),
        "verify, eth-account": rate(verify_baseline, args.orders, s),
        "verify, eth-keys": rate(verify_keys, args.orders, s),
        "  of which recovery": rate(recover_keys, args.orders, s),
        "verify, fast path": rate(verify_fast, args.orders, s),
        "  of which digest": rate(digest_only, args.orders, s),
        "  of which recovery ": rate(recover_only, args.orders, s),
        "decode (codec)": rate(decode_only, args.orders, s),
        "validator, whole": rate(validate_full, args.orders, s),
    }
    assert validators and validators[-1].counters.by_reason.get("accepted", 0) > 0
    size = len(encoded[0])
    print(f"order: {size} bytes encoded, EIP-712 digest, 65-byte signature\n")
    print(f"{'operation':<24}{'per second':>12}{'µs each':>10}")
    for name, r in results.items():
        print(f"{name:<24}{r:>12,.0f}{1e6 / r:>10.1f}")

    def ratio(a: str, b: str) -> float:
        return results[a] / results[b]

    print()
    print("ratios of operations per second (fast path's rate divided by the baseline's):")
    print(f"sign:   fast path / eth-keys    {ratio('sign, fast path', 'sign, eth-keys'):5.2f}x")
    print(f"verify: fast path / eth-keys    {ratio('verify, fast path', 'verify, eth-keys'):5.2f}x")
    print(f"sign:   fast path / eth-account {ratio('sign, fast path', 'sign, eth-account'):5.2f}x")
    print(
        f"verify: fast path / eth-account {ratio('verify, fast path', 'verify, eth-account'):5.2f}x"
    )
    print(
        "whole validator (decode + checks + digest + recovery) per second / eth-keys verify "
        f"per second: {ratio('validator, whole', 'verify, eth-keys'):.2f}x"
    )


if __name__ == "__main__":
    main()
