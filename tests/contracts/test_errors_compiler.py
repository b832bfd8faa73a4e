"""Revert decoding and the compile cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_abi import encode
from eth_tester.exceptions import TransactionFailed
from web3.exceptions import ContractLogicError, Web3RPCError

from contracts import compiler
from contracts.deploy import SystemAddresses, SystemParams
from contracts.errors import (
    AddressesFileError,
    ChainError,
    ContractRevert,
    decode_revert_data,
    reason_from_message,
    to_chain_error,
    translate_errors,
)
from p2pnode.errors import RemoteError, UserError

REVERT_DATA = "0x08c379a0" + encode(["string"], ["deals: zero price"]).hex()


def test_decode_error_string() -> None:
    assert decode_revert_data(REVERT_DATA) == "deals: zero price"
    assert decode_revert_data(bytes.fromhex(REVERT_DATA[2:])) == "deals: zero price"
    assert decode_revert_data("0x4e487b71" + "00" * 32) is None  # Panic(uint256)
    assert decode_revert_data("0x08c379a0ffff") is None  # truncated
    assert decode_revert_data(None) is None


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("execution reverted: wallet: zero amount", "wallet: zero amount"),
        ("execution reverted", ""),
        ("execution reverted: b''", ""),
        ("VM Exception while processing transaction: revert token: x", "token: x"),
        ("Error: execution reverted: nested", "nested"),
    ],
)
def test_reason_from_message(message: str, reason: str) -> None:
    assert reason_from_message(message) == reason


def test_every_backend_style_maps_to_contract_revert() -> None:
    styles: list[Exception] = [
        TransactionFailed("execution reverted: deals: zero price"),
        ContractLogicError("execution reverted: deals: zero price", data=REVERT_DATA),
        ContractLogicError("execution reverted: deals: zero price"),
        Web3RPCError("execution reverted: deals: zero price"),
    ]
    for exc in styles:
        mapped = to_chain_error(exc, "Deals.propose")
        assert isinstance(mapped, ContractRevert) and isinstance(mapped, RemoteError)
        assert mapped.reason == "deals: zero price" and mapped.function == "Deals.propose"
        assert str(mapped) == "Deals.propose: reverted: deals: zero price"
    assert to_chain_error(KeyError("x")) is None
    other = to_chain_error(Web3RPCError("nonce too low"))
    assert isinstance(other, ChainError) and not isinstance(other, ContractRevert)


def test_translate_errors_reraises_as_ours() -> None:
    with pytest.raises(ContractRevert) as e, translate_errors("f"):
        raise TransactionFailed("execution reverted: nope")
    assert isinstance(e.value.__cause__, TransactionFailed)
    with pytest.raises(KeyError), translate_errors("f"):
        raise KeyError("a bug stays a bug")


def test_compile_cache_reuses_and_repairs(tmp_path: Path) -> None:
    first = compiler.compile_contract("Token", tmp_path)
    files = list(tmp_path.glob("Token-*.json"))
    assert len(files) == 1
    assert json.loads(files[0].read_text())["source_hash"] == first.source_hash
    mtime = files[0].stat().st_mtime_ns
    again = compiler.compile_contract("Token", tmp_path)
    assert again == first and files[0].stat().st_mtime_ns == mtime  # read, not rewritten
    files[0].write_text("{torn")
    repaired = compiler.compile_contract("Token", tmp_path)
    assert repaired == first and json.loads(files[0].read_text())["bytecode"] == first.bytecode


def test_artifacts_hold_a_blueprint_for_the_wallet() -> None:
    art = compiler.load_artifacts()
    assert set(art) == set(compiler.CONTRACT_NAMES)
    assert art["HubWallet"].blueprint_bytecode.startswith("0x")
    assert art["HubWallet"].blueprint_bytecode != art["HubWallet"].bytecode


def test_addresses_file_errors_name_the_field(tmp_path: Path) -> None:
    good = SystemAddresses(1, *(["0x" + "11" * 20] * 6), 3)
    path = tmp_path / "a.json"
    good.save(path)
    assert SystemAddresses.load(path) == good
    with pytest.raises(AddressesFileError, match=r"missing\.json") as e:
        SystemAddresses.load(tmp_path / "missing.json")
    assert isinstance(e.value, UserError)
    data = json.loads(good.to_json())
    for field, bad, match in [
        ("token", "0x12", "token must be an address"),
        ("chain_id", "1", "chain_id must be an integer"),
        ("version", 9, "version must be 1"),
    ]:
        broken = dict(data, **{field: bad})
        with pytest.raises(AddressesFileError, match=match):
            SystemAddresses.from_json(json.dumps(broken))
    with pytest.raises(AddressesFileError, match="not JSON"):
        SystemAddresses.from_json("{")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"deposit": 0}, "deposit"),
        ({"lock_bps": 10_001}, "lock_bps"),
        ({"payout_period": 0}, "payout_period"),
        ({"waiting_period": -1}, "waiting_period"),
        ({"initial_supply": -1}, "initial_supply"),
    ],
)
def test_system_params_validate(kwargs: dict[str, int], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        SystemParams(**kwargs).validate()


def test_rpc_error_objects() -> None:
    from contracts.errors import rpc_error

    revert = rpc_error({"code": 3, "message": "execution reverted: x", "data": REVERT_DATA}, "f")
    assert isinstance(revert, ContractRevert) and revert.reason == "deals: zero price"
    plain = rpc_error({"code": 3, "message": "execution reverted: wallet: zero amount"})
    assert isinstance(plain, ContractRevert) and plain.reason == "wallet: zero amount"
    other = rpc_error({"code": -32000, "message": "header not found"}, "eth_call")
    assert type(other) is ChainError and str(other) == "eth_call: header not found"
    assert type(rpc_error("garbage")) is ChainError


def test_block_ranges_page_without_gaps_or_overlap() -> None:
    from contracts.client import block_ranges

    assert list(block_ranges(5, 14, 4)) == [(5, 8), (9, 12), (13, 14)]
    assert list(block_ranges(3, 3, 100)) == [(3, 3)]
    assert list(block_ranges(4, 3, 10)) == []
    with pytest.raises(ValueError, match="max_range"):
        list(block_ranges(0, 1, 0))
