"""The one error type a contract revert becomes, whichever chain answered.

eth-tester raises `TransactionFailed("execution reverted: reason")`; a JSON-RPC node
(anvil, geth) answers with an error object that web3 turns into `ContractLogicError`
(reason and ABI-encoded data) or a generic RPC error. Callers should not care which
backend they talk to, so `translate_errors` maps all of them to `ContractRevert`
carrying the bare reason string the contract wrote.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from eth_abi import decode as abi_decode

from gossip.errors import RemoteError, UserError

_ERROR_SELECTOR = "08c379a0"  # Error(string)
_PREFIXES = (
    "execution reverted: ",
    "execution reverted:",
    "VM Exception while processing transaction: revert ",
)


class ChainError(RemoteError):
    """The chain (a node or the embedded EVM) refused or failed a request."""


class ContractRevert(ChainError):
    """A contract call or transaction reverted. `reason` is the contract's message."""

    def __init__(self, reason: str, *, function: str = "") -> None:
        self.reason = reason
        self.function = function
        where = f"{function}: " if function else ""
        super().__init__(f"{where}reverted: {reason or '(no reason given)'}")


class ChainUnavailable(ChainError):
    """No answer from the JSON-RPC endpoint (not running, wrong URL, timeout)."""


class AddressesFileError(UserError):
    """The addresses file the operator named is missing or malformed."""


def decode_revert_data(data: str | bytes | None) -> str | None:
    """Decode `Error(string)` revert data; None when it is something else."""
    if data is None:
        return None
    raw = data.hex() if isinstance(data, bytes) else data.removeprefix("0x")
    if not raw.startswith(_ERROR_SELECTOR):
        return None
    try:
        (reason,) = abi_decode(["string"], bytes.fromhex(raw[8:]))
    except Exception:
        return None
    return str(reason)


def reason_from_message(message: str) -> str:
    """Strip the node's prefixes so both backends give the same reason text."""
    text = message.strip()
    for prefix in _PREFIXES:
        if text.startswith(prefix):
            return reason_from_message(text[len(prefix) :])
    if text in ("execution reverted", "revert", "b''", ""):
        return ""
    match = re.search(r"execution reverted:?\s*(.*)$", text)
    if match:
        return match.group(1).strip()
    return text


def rpc_error(error: object, function: str = "") -> ChainError:
    """A JSON-RPC error object ({"code", "message", "data"}) as one of our errors."""
    if not isinstance(error, dict):
        return ChainError(f"{function}: malformed JSON-RPC error {error!r:.200}")
    message = str(error.get("message", ""))
    data = error.get("data")
    decoded = decode_revert_data(data) if isinstance(data, str) else None
    if decoded is not None:
        return ContractRevert(decoded, function=function)
    if "revert" in message:
        return ContractRevert(reason_from_message(message), function=function)
    return ChainError(f"{function}: {message}" if function else message)


def to_chain_error(exc: BaseException, function: str = "") -> ChainError | None:
    """Map one backend exception to ours, or None when it is not a chain error."""
    from eth_tester.exceptions import TransactionFailed
    from web3.exceptions import (
        ContractCustomError,
        ContractLogicError,
        ContractPanicError,
        TimeExhausted,
        Web3RPCError,
    )

    if isinstance(exc, ChainError):
        return exc
    if isinstance(exc, TransactionFailed):
        arg = exc.args[0] if exc.args else ""
        if isinstance(arg, bytes):
            return ContractRevert(decode_revert_data(arg) or arg.hex(), function=function)
        return ContractRevert(reason_from_message(str(arg)), function=function)
    if isinstance(exc, ContractPanicError | ContractCustomError):
        return ContractRevert(str(exc.message or exc), function=function)
    if isinstance(exc, ContractLogicError):
        data = exc.data if isinstance(exc.data, str | bytes) else None
        decoded = decode_revert_data(data)
        return ContractRevert(
            decoded if decoded is not None else reason_from_message(str(exc.message or exc)),
            function=function,
        )
    if isinstance(exc, Web3RPCError):
        message = str(exc.message or exc)
        if "revert" in message:
            return ContractRevert(reason_from_message(message), function=function)
        return ChainError(f"{function}: {message}" if function else message)
    if isinstance(exc, TimeExhausted):
        return ChainUnavailable(f"{function}: no receipt in time: {exc}")
    if isinstance(exc, ConnectionError | OSError):
        return ChainUnavailable(f"chain endpoint unreachable: {exc}")
    try:
        import requests

        if isinstance(exc, requests.exceptions.RequestException):
            return ChainUnavailable(f"chain endpoint unreachable: {exc}")
    except ImportError:  # pragma: no cover - web3 depends on requests
        pass
    return None


@contextmanager
def translate_errors(function: str = "") -> Iterator[None]:
    """Run a chain request; re-raise backend errors as ChainError subclasses."""
    try:
        yield
    except ChainError:
        raise
    except Exception as exc:
        mapped = to_chain_error(exc, function)
        if mapped is None:
            raise
        raise mapped from exc
