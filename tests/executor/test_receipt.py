"""Receipts: EIP-712 like the gossip messages, verified by the consumer; any change
to the receipt or to what it hashes is rejected."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from gossip import eip712
from gossip.eip712 import SigningDomain
from p2pnode.executor.receipt import RECEIPT_TYPE, Receipt, ReceiptError, verify_receipt

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
OTHER = bytes.fromhex("11" * 32)
DOMAIN = SigningDomain(chain_id=31337)
SUPPLIER = eip712.address_of_key(KEY)
ARCHIVE = b"results archive bytes"


def receipt(**changes: object) -> Receipt:
    base = Receipt(
        supplier=SUPPLIER,
        deal_id=2**200 + 5,
        task_id="t-1",
        image_digest="sha256:" + "ab" * 32,
        exit_code=0,
        reason="exited",
        started_at_ms=1_700_000_000_000,
        ended_at_ms=1_700_000_001_500,
        cpu_time_ns=12_345_678,
        peak_memory_bytes=3 * 2**20,
        results_sha256=hashlib.sha256(ARCHIVE).digest(),
        results_bytes=len(ARCHIVE),
        stdout_sha256=hashlib.sha256(b"out").digest(),
        stdout_bytes=3,
        stderr_sha256=hashlib.sha256(b"").digest(),
        stderr_bytes=0,
        log_bytes_dropped=0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def check(r: Receipt, **kw: object) -> None:
    args: dict[str, object] = {"domain": DOMAIN, "supplier": SUPPLIER, "deal_id": 2**200 + 5}
    args.update(kw)
    verify_receipt(r, **args)  # type: ignore[arg-type]


def test_signed_receipt_verifies_with_the_downloaded_hashes() -> None:
    r = receipt().signed(DOMAIN, KEY)
    check(
        r,
        results_sha256=hashlib.sha256(ARCHIVE).digest(),
        stdout_sha256=hashlib.sha256(b"out").digest(),
        stderr_sha256=hashlib.sha256(b"").digest(),
    )


def test_digest_is_standard_eip712() -> None:
    """A wallet (eth-account here) computes the same digest and recovers the supplier."""
    r = receipt().signed(DOMAIN, KEY)
    full = eip712.full_message(DOMAIN, RECEIPT_TYPE, r)
    signable = encode_typed_data(full_message=full)
    recovered = Account.recover_message(signable, signature=r.signature)
    assert bytes.fromhex(recovered[2:]) == SUPPLIER


def test_tampered_archive_or_logs_rejected() -> None:
    r = receipt().signed(DOMAIN, KEY)
    with pytest.raises(ReceiptError, match="results archive"):
        check(r, results_sha256=hashlib.sha256(ARCHIVE + b"x").digest())
    with pytest.raises(ReceiptError, match="stdout"):
        check(r, stdout_sha256=hashlib.sha256(b"ou7").digest())
    with pytest.raises(ReceiptError, match="stderr"):
        check(r, stderr_sha256=hashlib.sha256(b"!").digest())


@pytest.mark.parametrize(
    "change",
    [
        {"exit_code": 1},
        {"reason": "failed"},
        {"cpu_time_ns": 1},
        {"results_sha256": b"\x00" * 32},
        {"image_digest": "sha256:" + "cd" * 32},
        {"ended_at_ms": 1_700_000_009_000},
    ],
)
def test_changed_receipt_rejected(change: dict) -> None:
    r = dataclasses.replace(receipt().signed(DOMAIN, KEY), **change)
    with pytest.raises(ReceiptError, match="not the supplier's"):
        check(r)


def test_wrong_signer_deal_or_domain_rejected() -> None:
    forged = receipt(supplier=eip712.address_of_key(OTHER)).signed(DOMAIN, OTHER)
    with pytest.raises(ReceiptError, match="another supplier"):
        check(forged)
    forged = dataclasses.replace(forged, supplier=SUPPLIER)
    with pytest.raises(ReceiptError, match="not the supplier's"):
        check(forged)
    r = receipt().signed(DOMAIN, KEY)
    with pytest.raises(ReceiptError, match="deal"):
        check(r, deal_id=5)
    with pytest.raises(ReceiptError, match="not the supplier's"):
        check(r, domain=SigningDomain(chain_id=1))
    with pytest.raises(ReceiptError, match="not signed"):
        check(receipt())
    with pytest.raises(ValueError, match="not the supplier"):
        receipt().signed(DOMAIN, OTHER)


def test_json_round_trip_and_malformed_input() -> None:
    r = receipt().signed(DOMAIN, KEY)
    assert Receipt.from_dict(r.to_dict()) == r
    data = r.to_dict()
    del data["exit_code"]
    with pytest.raises(ReceiptError, match="exit_code: missing"):
        Receipt.from_dict(data)
    with pytest.raises(ReceiptError, match="results_sha256"):
        Receipt.from_dict({**r.to_dict(), "results_sha256": "0x00"})
    with pytest.raises(ReceiptError, match="deal_id"):
        Receipt.from_dict({**r.to_dict(), "deal_id": -1})
    with pytest.raises(ReceiptError, match="reason"):
        Receipt.from_dict({**r.to_dict(), "reason": "made-up"})
