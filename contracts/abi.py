"""ABI encoding and decoding straight from the artifacts, without web3 contract objects.

web3's contract layer resolves the ABI on every call (argument binding, name matching,
formatters): about 2 ms of Python per view call, more than the JSON-RPC round trip to
a local node. Hub verification is a handful of view calls and a log query, so the
verifier and event readers use these precomputed selectors and types instead.
Transactions still go through web3 (signing, fee fields, receipts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from contracts.compiler import load_artifacts


def _type_str(item: Mapping[str, Any]) -> str:
    t = str(item["type"])
    if t.startswith("tuple"):
        inner = ",".join(_type_str(c) for c in item["components"])
        return f"({inner}){t[len('tuple') :]}"
    return t


def _normalize(item: Mapping[str, Any], value: Any) -> Any:
    """Checksum addresses (as web3 does), recursively through tuples and arrays."""
    t = str(item["type"])
    if t.endswith("]"):
        inner = dict(item, type=t[: t.rindex("[")])
        return [_normalize(inner, v) for v in value]
    if t == "address":
        return to_checksum_address(value)
    if t == "tuple":
        return tuple(_normalize(c, v) for c, v in zip(item["components"], value, strict=True))
    return value


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    selector: bytes
    input_types: tuple[str, ...]
    outputs: tuple[Mapping[str, Any], ...]
    output_types: tuple[str, ...]

    def encode(self, args: Sequence[Any]) -> bytes:
        if len(args) != len(self.input_types):
            raise TypeError(f"{self.name}: {len(self.input_types)} arguments, got {len(args)}")
        return self.selector + abi_encode(list(self.input_types), list(args))

    def decode(self, data: bytes) -> Any:
        values = abi_decode(list(self.output_types), data)
        out = tuple(_normalize(o, v) for o, v in zip(self.outputs, values, strict=True))
        return out[0] if len(out) == 1 else out


@cache
def function_spec(contract: str, name: str) -> FunctionSpec:
    for item in load_artifacts()[contract].abi:
        if item.get("type") == "function" and item["name"] == name:
            inputs = tuple(_type_str(i) for i in item["inputs"])
            signature = f"{name}({','.join(inputs)})"
            return FunctionSpec(
                name=name,
                selector=keccak(text=signature)[:4],
                input_types=inputs,
                outputs=tuple(item["outputs"]),
                output_types=tuple(_type_str(o) for o in item["outputs"]),
            )
    raise KeyError(f"{contract} has no function {name!r}")


@dataclass(frozen=True)
class EventSpec:
    contract: str
    name: str
    indexed: tuple[Mapping[str, Any], ...]
    data: tuple[Mapping[str, Any], ...]

    def decode(self, topics: Sequence[bytes], data: bytes) -> dict[str, Any] | None:
        """The event's arguments, or None when the log does not fit this event."""
        if len(topics) != len(self.indexed) + 1:
            return None
        try:
            args: dict[str, Any] = {}
            for item, topic in zip(self.indexed, topics[1:], strict=True):
                (value,) = abi_decode([_type_str(item)], bytes(topic))
                args[item["name"]] = _normalize(item, value)
            values = abi_decode([_type_str(i) for i in self.data], bytes(data))
        except Exception:
            return None
        for item, value in zip(self.data, values, strict=True):
            args[item["name"]] = _normalize(item, value)
        return args


@cache
def event_index() -> dict[bytes, EventSpec]:
    """topic0 → event, over every contract of the system."""
    index: dict[bytes, EventSpec] = {}
    for contract, artifact in load_artifacts().items():
        for item in artifact.abi:
            if item.get("type") != "event":
                continue
            sig = f"{item['name']}({','.join(_type_str(i) for i in item['inputs'])})"
            index[keccak(text=sig)] = EventSpec(
                contract=contract,
                name=item["name"],
                indexed=tuple(i for i in item["inputs"] if i["indexed"]),
                data=tuple(i for i in item["inputs"] if not i["indexed"]),
            )
    return index
