"""Message types: field errors name the field; digests and recovery agree with eth-account."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak as eth_keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip import eip712
from gossip.eip712 import SECP256K1_N, SignatureError, SigningDomain
from gossip.hubs import HubAnnouncement
from gossip.messages import (
    ZERO_ADDRESS,
    FieldError,
    address_hex,
    parse_address,
)
from gossip.orders import (
    BENCHMARK_NAMES,
    ORDER_TYPE,
    NetworkType,
    Order,
    OrderCancel,
    Property,
    Side,
    make_benchmarks,
)
from gossip.peer_record import PeerRecord, ed25519_key_of_peer_id, ed25519_peer_id

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ADDR = eip712.address_of_key(KEY)
DOMAIN = SigningDomain(chain_id=31337)


def make_order(**kw: object) -> Order:
    base: dict[str, object] = dict(
        author=ADDR,
        side=Side.ASK,
        price_per_hour=3 * 10**17,
        duration=7200,
        nonce=1,
        valid_from=1_700_000_000,
        valid_until=1_700_086_400,
        cpu_cores=8,
        ram_bytes=16 * 2**30,
        gpu_count=1,
        gpu_mem_bytes=8 * 2**30,
        network=NetworkType.INBOUND_OUTBOUND,
        properties={"os": "linux"},
        geo="DE",
    )
    base.update(kw)
    return Order.create(**base)  # type: ignore[arg-type]


def make_hub(**kw: object) -> HubAnnouncement:
    base: dict[str, object] = dict(
        owner=ADDR,
        wallet=b"\x11" * 20,
        peer_id=ed25519_peer_id(b"\x22" * 32),
        multiaddrs=("/ip4/127.0.0.1/tcp/4001",),
        name="hub-one",
        description="GPUs in Frankfurt",
        sequence=3,
        valid_from=1_700_000_000,
        valid_until=1_700_003_600,
    )
    base.update(kw)
    return HubAnnouncement(**base)  # type: ignore[arg-type]


def eth_account_digest(full: dict[str, object]) -> bytes:
    s = encode_typed_data(full_message=full)
    return bytes(eth_keccak(b"\x19" + s.version + s.header + s.body))


# --- EIP-712: our hasher against eth-account -----------------------------------------


def test_type_strings_are_the_documented_ones() -> None:
    assert Order.EIP712_TYPE.encoded_type == (
        "Order(address author,uint8 side,uint256 pricePerHour,uint64 duration,"
        "uint64[] benchmarks,uint8 network,Property[] properties,address counterparty,"
        "address[] blacklist,uint16 minRating,string geo,uint64 nonce,uint64 validFrom,"
        "uint64 validUntil)Property(string key,string value)"
    )
    assert HubAnnouncement.EIP712_TYPE.encoded_type == (
        "HubAnnouncement(address owner,address wallet,bytes peerId,string[] multiaddrs,"
        "string name,string description,uint64 sequence,uint64 validFrom,uint64 validUntil)"
    )
    assert OrderCancel.EIP712_TYPE.encoded_type == (
        "OrderCancel(address author,bytes32 orderId,uint64 nonce,uint64 validFrom,"
        "uint64 validUntil)"
    )


def test_domain_separator_matches_eth_account() -> None:
    hub = make_hub()
    full = eip712.full_message(DOMAIN, hub.EIP712_TYPE, hub)
    assert encode_typed_data(full_message=full).header == DOMAIN.separator


@settings(max_examples=40, deadline=None)
@given(
    price=st.integers(0, 2**256 - 1),
    bench=st.lists(st.integers(0, 2**64 - 1), min_size=13, max_size=13),
    props=st.dictionaries(
        st.from_regex(r"[a-z0-9][a-z0-9._-]{0,10}", fullmatch=True), st.text(max_size=8), max_size=3
    ),
    black=st.lists(st.binary(min_size=20, max_size=20), max_size=3, unique=True),
    geo=st.sampled_from(["", "DE", "US"]),
    side=st.sampled_from(list(Side)),
)
def test_order_digest_matches_eth_account(
    price: int, bench: list[int], props: dict[str, str], black: list[bytes], geo: str, side: Side
) -> None:
    props = {k: "".join(c for c in v if c.isprintable()) for k, v in props.items()}
    order = make_order(
        price_per_hour=price,
        benchmarks=dict(zip(BENCHMARK_NAMES, bench, strict=True)),
        cpu_cores=bench[2],
        ram_bytes=bench[3],
        storage_bytes=bench[4],
        net_in_bps=bench[5],
        net_out_bps=bench[6],
        gpu_count=bench[7],
        gpu_mem_bytes=bench[8],
        properties=props,
        blacklist=tuple(black),
        geo=geo,
        side=side,
    )
    assert list(order.benchmarks) == bench
    full = eip712.full_message(DOMAIN, order.EIP712_TYPE, order)
    assert order.digest(DOMAIN) == eth_account_digest(full)


def test_hub_cancel_and_peer_digests_match_eth_account() -> None:
    peer_key = Ed25519PrivateKey.generate()
    pub = peer_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    messages: list[object] = [
        make_hub(multiaddrs=(), description=""),
        make_hub(multiaddrs=("/ip4/127.0.0.1/tcp/1", "/dns4/x/tcp/2"), name="ünïcode"),
        OrderCancel(ADDR, b"\x07" * 32, 9, 10, 20),
        PeerRecord(ADDR, ed25519_peer_id(pub), ("/ip4/127.0.0.1/tcp/9",), 1, 10, 20),
    ]
    for msg in messages:
        struct = msg.EIP712_TYPE  # type: ignore[attr-defined]
        full = eip712.full_message(DOMAIN, struct, msg)
        assert eip712.digest(DOMAIN, struct, msg) == eth_account_digest(full)


def test_chain_id_changes_the_digest() -> None:
    order = make_order()
    assert order.digest(DOMAIN) != order.digest(SigningDomain(chain_id=1))
    assert order.order_id(DOMAIN) == order.digest(DOMAIN)


# --- signing and recovery ------------------------------------------------------------


def test_sign_then_both_recoveries_agree() -> None:
    order = make_order().signed(DOMAIN, KEY)
    digest = order.digest(DOMAIN)
    full = eip712.full_message(DOMAIN, order.EIP712_TYPE, order)
    assert eip712.recover_address(digest, order.signature) == ADDR
    assert eip712.recover_address_eth_account(full, order.signature) == ADDR
    signable = encode_typed_data(full_message=full)
    assert Account.recover_message(signable, signature=order.signature) == address_hex(ADDR)


def test_a_wallet_signature_verifies_on_the_fast_path() -> None:
    """What MetaMask-style signing (eth-account sign_message) produces is accepted."""
    hub = make_hub()
    full = eip712.full_message(DOMAIN, hub.EIP712_TYPE, hub)
    signed = Account.sign_message(encode_typed_data(full_message=full), KEY)
    assert eip712.recover_address(hub.digest(DOMAIN), bytes(signed.signature)) == ADDR


def test_high_s_signature_is_refused() -> None:
    order = make_order().signed(DOMAIN, KEY)
    sig = order.signature
    s = int.from_bytes(sig[32:64], "big")
    flipped = sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    with pytest.raises(SignatureError, match="high"):
        eip712.recover_address(order.digest(DOMAIN), flipped)


@pytest.mark.parametrize(
    "sig, match",
    [
        (b"\x01" * 64, "65 bytes"),
        (b"\x01" * 64 + b"\x1d", "27 or 28"),
        (bytes(32) + b"\x01" * 32 + b"\x1b", "r out of range"),
        (b"\x01" * 32 + bytes(32) + b"\x1b", "s out of range"),
        (b"\xff" * 32 + b"\x01" * 32 + b"\x1b", "r out of range"),
    ],
)
def test_malformed_signatures_are_refused(sig: bytes, match: str) -> None:
    with pytest.raises(SignatureError, match=match):
        eip712.recover_address(b"\x00" * 32, sig)


def test_address_of_key_matches_eth_account() -> None:
    assert address_hex(ADDR) == Account.from_key(KEY).address
    assert parse_address("x", address_hex(ADDR)) == ADDR
    with pytest.raises(FieldError, match="40 hex"):
        parse_address("counterparty", "0x12")
    with pytest.raises(FieldError, match="40 hex"):
        parse_address("counterparty", "0x" + "zz" * 20)


def test_domain_validate() -> None:
    SigningDomain(chain_id=1).validate()
    with pytest.raises(ValueError, match="chain_id"):
        SigningDomain(chain_id=0).validate()
    with pytest.raises(ValueError, match="name"):
        SigningDomain(chain_id=1, name="").validate()


# --- field checks --------------------------------------------------------------------


ORDER_BAD: list[tuple[dict[str, object], str]] = [
    ({"author": b"\x01" * 19}, "author"),
    ({"side": 1}, "side"),
    ({"price_per_hour": -1}, "price_per_hour"),
    ({"price_per_hour": 2**256}, "price_per_hour"),
    ({"price_per_hour": True}, "price_per_hour"),
    ({"duration": 10**12}, "duration"),
    ({"benchmarks": (1, 2)}, "benchmarks"),
    ({"benchmarks": (0,) * 12 + (2**64,)}, "benchmarks.cpu-cryptonight"),
    ({"benchmarks": [0] * 13}, "benchmarks"),
    ({"network": 2}, "network"),
    ({"properties": (Property("b", "1"), Property("a", "2"))}, "properties"),
    ({"properties": (Property("a", "1"), Property("a", "2"))}, "properties"),
    ({"properties": (Property("A", "1"),)}, "properties[0].key"),
    ({"properties": (Property("a", "x" * 129),)}, "properties[0].value"),
    ({"properties": (Property("a", "\x1b[2J"),)}, "properties[0].value"),
    ({"properties": (("a", "b"),)}, "properties[0]"),
    ({"properties": tuple(Property(f"k{i:02}", "") for i in range(17))}, "properties"),
    ({"counterparty": b""}, "counterparty"),
    ({"blacklist": (b"\x02" * 20, b"\x01" * 20)}, "blacklist"),
    ({"blacklist": (b"\x01" * 21,)}, "blacklist[0]"),
    ({"blacklist": tuple(bytes([i]) * 20 for i in range(65))}, "blacklist"),
    ({"min_rating": 10_001}, "min_rating"),
    ({"geo": "de"}, "geo"),
    ({"geo": "DEU"}, "geo"),
    ({"nonce": 2**64}, "nonce"),
    ({"valid_until": 1_700_000_000}, "valid_until"),
    ({"valid_until": 1_700_000_000 + 32 * 86400}, "valid_until"),
    ({"valid_from": -1}, "valid_from"),
    ({"signature": b"\x00" * 64}, "signature"),
    ({"signature": b"\x00" * 64 + b"\x00"}, "signature"),
]


@pytest.mark.parametrize("change, field", ORDER_BAD)
def test_order_field_errors_name_the_field(change: dict[str, object], field: str) -> None:
    bad = dataclasses.replace(make_order(), **change)  # type: ignore[arg-type]
    with pytest.raises(FieldError) as err:
        bad.validate()
    assert err.value.field == field


HUB_BAD: list[tuple[dict[str, object], str]] = [
    ({"owner": "0xabc"}, "owner"),
    ({"wallet": b"\x01" * 32}, "wallet"),
    ({"peer_id": b""}, "peer_id"),
    ({"peer_id": b"x" * 65}, "peer_id"),
    ({"multiaddrs": ["/ip4/1.2.3.4"]}, "multiaddrs"),
    ({"multiaddrs": ("ip4/1.2.3.4",)}, "multiaddrs[0]"),
    ({"multiaddrs": ("/" + "a" * 256,)}, "multiaddrs[0]"),
    ({"multiaddrs": tuple(f"/ip4/127.0.0.{i}" for i in range(9))}, "multiaddrs"),
    ({"name": "x" * 65}, "name"),
    ({"name": "é" * 33}, "name"),
    ({"name": "bad\nname"}, "name"),
    ({"name": "\ud800"}, "name"),
    ({"description": "d" * 1025}, "description"),
    ({"sequence": -1}, "sequence"),
    ({"valid_until": 1_700_000_000 + 8 * 86400}, "valid_until"),
]


@pytest.mark.parametrize("change, field", HUB_BAD)
def test_hub_field_errors_name_the_field(change: dict[str, object], field: str) -> None:
    bad = dataclasses.replace(make_hub(), **change)  # type: ignore[arg-type]
    with pytest.raises(FieldError) as err:
        bad.validate()
    assert err.value.field == field
    assert field in str(err.value)


def test_cancel_and_peer_record_field_errors() -> None:
    with pytest.raises(FieldError, match="order_id"):
        OrderCancel(ADDR, b"\x01" * 31, 1, 10, 20).validate()
    with pytest.raises(FieldError, match="valid_until"):
        OrderCancel(ADDR, b"\x01" * 32, 1, 10, 10).validate()
    pid = ed25519_peer_id(b"\x01" * 32)
    with pytest.raises(FieldError, match="peer_id"):
        PeerRecord(ADDR, b"\x00\x25" + b"\x01" * 36, (), 1, 10, 20).validate()
    with pytest.raises(FieldError, match="peer_signature"):
        PeerRecord(ADDR, pid, (), 1, 10, 20, peer_signature=b"\x01" * 63).validate()
    with pytest.raises(FieldError, match="valid_until"):
        PeerRecord(ADDR, pid, (), 1, 10, 10 + 86401).validate()
    PeerRecord(ADDR, pid, (), 1, 10, 20).validate()


def test_create_sorts_and_names_resources() -> None:
    order = make_order(
        properties={"z": "1", "a": "2"},
        blacklist=(b"\x09" * 20, b"\x01" * 20, b"\x09" * 20),
        benchmarks={"gpu-eth-hashrate": 30_000_000},
        storage_bytes=10**11,
        net_in_bps=10**8,
        net_out_bps=10**7,
    )
    assert [p.key for p in order.properties] == ["a", "z"]
    assert order.blacklist == (b"\x01" * 20, b"\x09" * 20)
    assert (order.cpu_cores, order.ram_bytes, order.gpu_count) == (8, 16 * 2**30, 1)
    assert (order.gpu_mem_bytes, order.storage_bytes) == (8 * 2**30, 10**11)
    assert (order.net_in_bps, order.net_out_bps) == (10**8, 10**7)
    assert order.benchmark("gpu-eth-hashrate") == 30_000_000
    assert order.counterparty == ZERO_ADDRESS
    with pytest.raises(FieldError, match=r"benchmarks\.gpu-flops"):
        make_benchmarks({"gpu-flops": 1})
    with pytest.raises(FieldError, match="ram_bytes"):
        make_benchmarks(ram_bytes=-5)


def test_a_resource_given_once_is_signed_and_given_twice_must_agree() -> None:
    """A resource named both as a field and as a benchmark was silently overwritten by
    the field (its default 0 included): `--bench ram-size=1000` signed ram 0."""
    assert make_benchmarks({"ram-size": 1000, "gpu-count": 2})[3] == 1000
    order = _order_with(benchmarks={"ram-size": 1000, "gpu-count": 2})
    assert (order.ram_bytes, order.gpu_count) == (1000, 2)
    order = _order_with(cpu_cores=4, benchmarks={"cpu-cores": 4})  # twice, the same: fine
    assert order.cpu_cores == 4
    with pytest.raises(FieldError, match=r"benchmarks\.cpu-cores.*cpu_cores = 4") as info:
        _order_with(cpu_cores=4, benchmarks={"cpu-cores": 8})
    assert info.value.field == "benchmarks.cpu-cores"
    with pytest.raises(FieldError, match=r"benchmarks\.gpu-count") as info:
        _order_with(benchmarks={"gpu-count": -1})
    assert info.value.field == "benchmarks.gpu-count"
    with pytest.raises(FieldError, match="gpu_count"):
        _order_with(gpu_count=2**64)
    with pytest.raises(FieldError, match="not a resource"):
        make_benchmarks(ram_size=1)


def _order_with(**kw: object) -> Order:
    return Order.create(
        author=b"\x01" * 20,
        side=Side.ASK,
        price_per_hour=1,
        duration=0,
        nonce=1,
        valid_from=1,
        valid_until=2,
        **kw,  # type: ignore[arg-type]
    )


def test_network_type_subset() -> None:
    full, out, none = NetworkType.INBOUND_OUTBOUND, NetworkType.OUTBOUND, NetworkType.NONE
    assert full.covers(out) and full.covers(none) and out.covers(none)
    assert not out.covers(full) and not none.covers(out)


def test_peer_record_needs_the_peer_key_signature() -> None:
    peer_key = Ed25519PrivateKey.generate()
    pub = peer_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    pid = ed25519_peer_id(pub)
    assert ed25519_key_of_peer_id(pid) == pub
    rec = PeerRecord(ADDR, pid, ("/ip4/127.0.0.1/tcp/4001",), 5, 10, 20).signed(
        DOMAIN, KEY, peer_key
    )
    digest = rec.digest(DOMAIN)
    assert rec.peer_signature_valid(digest)
    assert eip712.recover_address(digest, rec.signature) == ADDR
    other = Ed25519PrivateKey.generate()
    forged = dataclasses.replace(rec, peer_signature=other.sign(digest))
    assert not forged.peer_signature_valid(digest)
    assert not rec.peer_signature_valid(b"\x00" * 32)


def test_replay_keys_separate_kinds_and_hubs() -> None:
    order = make_order()
    cancel = OrderCancel(ADDR, b"\x01" * 32, order.nonce, 10, 20)
    assert order.replay_key != cancel.replay_key
    assert order.replay_number == cancel.replay_number
    a, b = make_hub(), make_hub(wallet=b"\x12" * 20)
    assert a.replay_key != b.replay_key and a.MONOTONIC and not order.MONOTONIC


def test_packed_hash_struct_equals_the_per_field_encoding_even_for_unvalidated_members() -> None:
    """hashStruct packs fixed-size members with struct.pack; a member that does not
    fit its word (never validated: a short address, a uint64 over 2**64) must give the
    per-field encoder's answer, not a silently padded one."""
    order = make_order()
    odd = [
        order,
        dataclasses.replace(order, author=ADDR[:19]),
        dataclasses.replace(order, counterparty=ADDR + b"\x00"),
        dataclasses.replace(order, nonce=2**64),
        dataclasses.replace(order, benchmarks=(*order.benchmarks[:-1], 2**64 + 5)),
        OrderCancel(ADDR, b"\x07" * 31, 9, 10, 20),
    ]
    for msg in odd:
        struct = msg.EIP712_TYPE
        assert struct.hash_struct(msg) == struct.hash_struct_generic(msg)


def test_signature_word_bounds_are_exact() -> None:
    """r and s are compared as 32-byte big-endian words: the bounds are the numbers'."""
    n, half = SECP256K1_N, SECP256K1_N // 2
    one = (1).to_bytes(32, "big")

    def word(x: int) -> bytes:
        return x.to_bytes(32, "big")

    for sig, refused in [
        (word(n) + one + b"\x1b", "r out of range"),
        (one + word(half + 1) + b"\x1b", "s out of range or high"),
    ]:
        with pytest.raises(SignatureError, match=refused):
            eip712.recover_address(b"\x00" * 32, sig)
    for sig in (word(n - 1) + one + b"\x1b", one + word(half) + b"\x1b"):
        try:  # in range: refused, if at all, only because it does not recover
            eip712.recover_address(b"\x01" * 32, sig)
        except SignatureError as exc:
            assert "does not recover" in str(exc)
    with pytest.raises(SignatureError, match="32 bytes"):
        eip712.recover_address(b"\x00" * 31, make_order().signed(DOMAIN, KEY).signature)


def test_kept_nested_hashes_are_bounded_and_match_the_per_field_encoding() -> None:
    """Property arrays and short strings are hashed once and kept; the kept answer is
    the per-field encoder's, and a flood of new values does not grow the cache."""
    orders = [
        make_order(nonce=i, properties={"os": "linux", "zone": f"z{i % 3}"}, geo="DE")
        for i in range(6)
    ]
    for order in orders * 2:
        assert ORDER_TYPE.hash_struct(order) == ORDER_TYPE.hash_struct_generic(order)
    for i in range(eip712._NESTED_CACHE_SIZE + 10):
        eip712._enc_short_string(f"s{i}")
    assert 0 < len(eip712._enc_string_cached.cache) <= eip712._NESTED_CACHE_SIZE
    assert eip712._enc_short_string("s1") == eip712.keccak(b"s1")
    long = "x" * (eip712._SHORT_STRING + 1)
    assert eip712._enc_short_string(long) == eip712.keccak(long.encode())
    assert eip712._enc_short_string("") == eip712.keccak(b"")


_ODD_VALUES = st.sampled_from(
    [
        0,
        1,
        -1,
        True,
        2**64,
        2**64 - 1,
        2**256,
        31 * 86400 + 1,
        10_001,
        1.0,
        "",
        "DE",
        "de",
        "D",
        "\x00\x01",
        b"",
        ADDR,
        ADDR[:19],
        b"\x00" * 65,
        b"\x01" * 64 + b"\x1b",
        (),
        (0,) * 13,
        (0,) * 12 + (-1,),
        (b"\x01" * 20,),
        (Property("os", "linux"),),
        (Property("os", "linux"), Property("a", "b")),
        (Property("Os", "x"),),
        Side.ASK,
        NetworkType.NONE,
        None,
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([f.name for f in dataclasses.fields(Order)]), _ODD_VALUES),
        max_size=3,
    )
)
def test_the_order_fast_check_passes_only_what_the_full_checks_pass(
    changes: list[tuple[str, object]],
) -> None:
    order = dataclasses.replace(make_order(properties={"os": "linux"}), **dict(changes))
    try:
        order._validate_field_by_field()
        valid = True
    except FieldError:
        valid = False
    if order._plainly_valid():
        assert valid, changes


def test_the_common_order_takes_the_fast_check() -> None:
    order = make_order(properties={"os": "linux", "zone": "a"}, geo="DE")
    order.validate()  # its properties are now known
    assert order._plainly_valid()
    listed = dataclasses.replace(order, blacklist=(b"\x02" * 20,))
    assert not listed._plainly_valid()
    listed.validate()  # valid all the same, checked field by field
