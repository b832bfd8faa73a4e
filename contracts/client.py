"""The plumbing every typed contract wrapper shares.

Every transaction is first simulated with `eth_call` so that a revert comes back with
its reason on any backend, then sent with an explicit gas limit (never estimated by
the node behind our back), then its receipt is checked. Events are read by bounded
block ranges, page by page, because public nodes cap `eth_getLogs` ranges.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import BlockIdentifier, Nonce, TxParams

from contracts.abi import event_index, function_spec
from contracts.chain import Chain
from contracts.compiler import load_artifacts
from contracts.errors import ChainError, ContractRevert, translate_errors

Sender = str | LocalAccount
DEFAULT_GAS = 400_000
DEFAULT_MAX_BLOCK_RANGE = 2_000


@dataclass(frozen=True)
class EventRecord:
    """One decoded log: which event, from which contract, with which arguments."""

    name: str
    address: str
    args: Mapping[str, Any]
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class TxResult:
    tx_hash: str
    block_number: int
    gas_used: int
    events: tuple[EventRecord, ...]

    def event(self, name: str) -> EventRecord:
        """The first event of that name in this transaction (raises KeyError if none)."""
        for record in self.events:
            if record.name == name:
                return record
        raise KeyError(f"no {name} event in tx {self.tx_hash}")


def sender_address(sender: Sender) -> ChecksumAddress:
    if isinstance(sender, str):
        return Web3.to_checksum_address(sender)
    return Web3.to_checksum_address(sender.address)


def decode_logs(w3: Web3, logs: Sequence[Any]) -> list[EventRecord]:
    """Decode raw logs emitted by any of our contracts; other logs are skipped."""
    index = event_index()
    out: list[EventRecord] = []
    for log in logs:
        topics = [bytes(t) for t in log["topics"]]
        if not topics:
            continue
        spec = index.get(topics[0])
        if spec is None:
            continue
        args = spec.decode(topics, bytes(log["data"]))
        if args is None:
            continue  # same signature, different indexing: not ours
        out.append(
            EventRecord(
                name=spec.name,
                address=Web3.to_checksum_address(log["address"]),
                args=args,
                block_number=int(log["blockNumber"]),
                tx_hash="0x" + bytes(log["transactionHash"]).hex(),
                log_index=int(log["logIndex"]),
            )
        )
    return out


def block_ranges(start: int, end: int, max_range: int) -> Iterator[tuple[int, int]]:
    """Inclusive [a, b] windows covering [start, end], each at most max_range blocks."""
    if max_range < 1:
        raise ValueError(f"max_range must be >= 1, got {max_range}")
    a = start
    while a <= end:
        b = min(end, a + max_range - 1)
        yield a, b
        a = b + 1


def read_logs(
    chain: Chain,
    addresses: Sequence[str],
    from_block: int,
    to_block: int | None = None,
    *,
    max_range: int = DEFAULT_MAX_BLOCK_RANGE,
    topics: Sequence[Any] | None = None,
) -> list[EventRecord]:
    """Decoded events of `addresses` in [from_block, to_block], read page by page."""
    end = chain.block_number() if to_block is None else to_block
    if not addresses or from_block > end:
        return []
    out: list[EventRecord] = []
    addr = [Web3.to_checksum_address(a) for a in addresses]
    for a, b in block_ranges(from_block, end, max_range):
        params: dict[str, Any] = {"fromBlock": a, "toBlock": b, "address": addr}
        if topics is not None:
            params["topics"] = list(topics)
        with translate_errors("eth_getLogs"):
            logs = chain.w3.eth.get_logs(params)  # type: ignore[arg-type]
        out.extend(decode_logs(chain.w3, logs))
    return out


class BoundContract:
    """A deployed contract of one of our types, with call/send helpers."""

    NAME: ClassVar[str]
    GAS: ClassVar[Mapping[str, int]] = {}

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.address = Web3.to_checksum_address(address)
        self._contract: Contract | None = None

    @property
    def contract(self) -> Contract:
        """web3's contract object, built on first use (transactions only)."""
        if self._contract is None:
            self._contract = self.chain.w3.eth.contract(
                address=self.address, abi=load_artifacts()[self.NAME].abi
            )
        return self._contract

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address})"

    def _fn(self, name: str, *args: Any) -> ContractFunction:
        return self.contract.functions[name](*args)

    def _call(self, name: str, *args: Any, block: BlockIdentifier = "latest") -> Any:
        return self._calls([(name, args)], block=block)[0]

    def _calls(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, block: BlockIdentifier = "latest"
    ) -> list[Any]:
        """Several view calls on this contract at one block (one round trip on a node)."""
        return call_views([(self, name, args) for name, args in calls], block=block)

    def _send(self, name: str, *args: Any, sender: Sender, gas: int | None = None) -> TxResult:
        return send_transaction(
            self.chain,
            self._fn(name, *args),
            sender=sender,
            gas=gas if gas is not None else self.GAS.get(name, DEFAULT_GAS),
            label=f"{self.NAME}.{name}",
        )

    def events(
        self,
        from_block: int = 0,
        to_block: int | None = None,
        *,
        names: Sequence[str] | None = None,
        max_range: int = DEFAULT_MAX_BLOCK_RANGE,
    ) -> list[EventRecord]:
        records = read_logs(self.chain, [self.address], from_block, to_block, max_range=max_range)
        if names is None:
            return records
        wanted = set(names)
        return [r for r in records if r.name in wanted]


def call_views(
    calls: Sequence[tuple[BoundContract, str, Sequence[Any]]],
    *,
    block: BlockIdentifier = "latest",
    tolerate: bool = False,
) -> list[Any]:
    """View calls on any of our contracts (same chain), decoded. The first failure
    raises, or with `tolerate` gives None in its place (e.g. asking a plain account)."""
    if not calls:
        return []
    chain = calls[0][0].chain
    specs = [function_spec(c.NAME, name) for c, name, _ in calls]
    encoded = []
    for spec, (c, name, args) in zip(specs, calls, strict=True):
        try:
            encoded.append((c.address, spec.encode(args)))
        except Exception as exc:
            raise TypeError(f"{c.NAME}.{name}: bad arguments {args!r}: {exc}") from exc
    raws = chain.call_many(encoded, block)
    out: list[Any] = []
    for spec, (c, name, _), raw in zip(specs, calls, raws, strict=True):
        label = f"{c.NAME}.{name}"
        if tolerate and (isinstance(raw, ChainError) or (not raw and spec.output_types)):
            out.append(None)
            continue
        if isinstance(raw, ContractRevert):
            raise ContractRevert(raw.reason, function=label) from raw
        if isinstance(raw, ChainError):
            raise raw
        if not raw and spec.output_types:
            raise ChainError(f"{label}: no contract code at {c.address}")
        try:
            out.append(spec.decode(raw))
        except Exception as exc:
            if tolerate:
                out.append(None)
                continue
            raise ChainError(f"{label}: undecodable answer {raw.hex()[:80]}: {exc}") from exc
    return out


def send_transaction(
    chain: Chain, fn: ContractFunction, *, sender: Sender, gas: int, label: str
) -> TxResult:
    """Simulate, send with explicit gas, wait, check status; reverts → ContractRevert."""
    if gas <= 0:
        raise ValueError(f"gas must be > 0, got {gas}")
    address = sender_address(sender)
    w3 = chain.w3
    with translate_errors(label):
        fn.call({"from": address, "gas": gas})  # revert reason on every backend
        if isinstance(sender, LocalAccount):
            params: TxParams = {
                "from": address,
                "gas": gas,
                "nonce": w3.eth.get_transaction_count(address, "pending"),
                "chainId": w3.eth.chain_id,
            }
            tx = fn.build_transaction(params)
            signed = sender.sign_transaction(tx)  # type: ignore[arg-type]
            tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        else:
            tx_hash = fn.transact({"from": address, "gas": gas})
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=chain.receipt_timeout)
    return _result(w3, receipt, label, gas)


@dataclass(frozen=True)
class SignedTx:
    """A transaction signed here and not sent yet: its hash is known before any node
    sees it, so a caller can write it down first and look for it on chain later."""

    tx_hash: str
    raw: bytes
    nonce: int
    sender: str


def sign_transaction(
    chain: Chain,
    fn: ContractFunction,
    *,
    sender: LocalAccount,
    gas: int,
    label: str,
    nonce: int | None = None,
) -> SignedTx:
    """Simulate (a revert comes back with its reason), then sign with an explicit
    nonce (the account's next one, pending transactions counted, unless given)."""
    if gas <= 0:
        raise ValueError(f"gas must be > 0, got {gas}")
    address = sender_address(sender)
    w3 = chain.w3
    with translate_errors(label):
        fn.call({"from": address, "gas": gas})
        if nonce is None:
            nonce = w3.eth.get_transaction_count(address, "pending")
        params: TxParams = {
            "from": address,
            "gas": gas,
            "nonce": Nonce(nonce),
            "chainId": w3.eth.chain_id,
        }
        tx = fn.build_transaction(params)
    signed = sender.sign_transaction(tx)  # type: ignore[arg-type]
    return SignedTx(
        tx_hash="0x" + bytes(signed.hash).hex(),
        raw=bytes(signed.raw_transaction),
        nonce=int(nonce),
        sender=address,
    )


def broadcast(chain: Chain, raw: bytes, *, label: str) -> None:
    """Hand a signed transaction to the node. Sending the same bytes again is
    harmless (one nonce, one hash: it is mined at most once); the node may refuse
    the repeat ("already known", "nonce too low"), which the caller reads as
    ChainError and settles by the receipt."""
    with translate_errors(label):
        chain.w3.eth.send_raw_transaction(raw)


def receipt_of(chain: Chain, tx_hash: str, *, label: str) -> TxResult | None:
    """The mined transaction's result; None while no block holds it. A transaction
    that failed on chain raises ContractRevert, as `send_transaction` does."""
    from web3.exceptions import TransactionNotFound

    try:
        with translate_errors(label):
            receipt = chain.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    except TransactionNotFound:
        return None
    except ChainError as exc:  # web3 may raise it as an RPC error, translated
        if isinstance(exc.__cause__, TransactionNotFound):
            return None
        raise
    if receipt is None:
        return None
    return _result(chain.w3, receipt, label, None)


def wait_for_receipt(chain: Chain, tx_hash: str, *, label: str, timeout: float) -> TxResult | None:
    """`receipt_of`, waiting up to `timeout` seconds for a block to hold it."""
    from web3.exceptions import TimeExhausted

    try:
        with translate_errors(label):
            chain.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout)  # type: ignore[arg-type]
    except ChainError as exc:
        if isinstance(exc.__cause__, TimeExhausted):  # translated to ChainUnavailable
            return None
        raise
    return receipt_of(chain, tx_hash, label=label)


def nonce_used(chain: Chain, address: str, nonce: int) -> bool:
    """Whether a mined transaction of `address` already took `nonce` (so another
    transaction signed with it can never be mined)."""
    with translate_errors("eth_getTransactionCount"):
        count = chain.w3.eth.get_transaction_count(Web3.to_checksum_address(address), "latest")
    return int(count) > nonce


def _result(w3: Web3, receipt: Any, label: str, gas: int | None) -> TxResult:
    if receipt["status"] != 1:
        used = int(receipt["gasUsed"])
        hint = " (out of gas?)" if gas is not None and used >= gas else ""
        raise ContractRevert(f"transaction failed on chain{hint}", function=label)
    return TxResult(
        tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
        block_number=int(receipt["blockNumber"]),
        gas_used=int(receipt["gasUsed"]),
        events=tuple(decode_logs(w3, receipt["logs"])),
    )


def deploy_contract(
    chain: Chain,
    name: str,
    *args: Any,
    sender: Sender,
    gas: int = 6_000_000,
    blueprint: bool = False,
) -> str:
    """Deploy one artifact (or its EIP-5202 blueprint) and return the new address."""
    artifact = load_artifacts()[name]
    w3 = chain.w3
    address = sender_address(sender)
    with translate_errors(f"deploy {name}"):
        if blueprint:
            data = artifact.blueprint_bytecode
        else:
            ctor = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode).constructor(*args)
            data = ctor.build_transaction({"from": address, "gas": gas})["data"]
        tx: dict[str, Any] = {"from": address, "gas": gas, "data": data}
        w3.eth.call(tx)  # type: ignore[arg-type]  # a constructor revert, with its reason
        if isinstance(sender, LocalAccount):
            tx["nonce"] = w3.eth.get_transaction_count(address, "pending")
            tx["chainId"] = w3.eth.chain_id
            tx["gasPrice"] = w3.eth.gas_price
            signed = sender.sign_transaction(tx)
            tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        else:
            tx_hash = w3.eth.send_transaction(tx)  # type: ignore[arg-type]
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=chain.receipt_timeout)
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise ContractRevert("deployment failed", function=f"deploy {name}")
    return Web3.to_checksum_address(receipt["contractAddress"])
