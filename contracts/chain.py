"""Chain backends: the embedded in-process EVM and any JSON-RPC endpoint.

One `Chain` object hides the differences a caller would otherwise trip on: how
time is moved forward (eth-tester's time travel vs `evm_increaseTime`), how state is
snapshotted and restored (for fast tests), and which accounts are unlocked.
The embedded chain lives only in the process that made it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import httpx
from web3 import Web3
from web3.types import BlockIdentifier, TxParams

from contracts.errors import ChainError, ChainUnavailable, rpc_error, translate_errors

BackendKind = Literal["embedded", "rpc"]


@dataclass
class Chain:
    w3: Web3
    kind: BackendKind
    url: str | None = None
    receipt_timeout: float = 30.0
    _tester: Any = field(default=None, repr=False)
    _http: httpx.Client | None = field(default=None, repr=False)

    def call_many(
        self, calls: Sequence[tuple[str, bytes]], block: BlockIdentifier = "latest"
    ) -> list[bytes | ChainError]:
        """eth_call each (to, data) at one block; a failed call gives its error in place.

        On a JSON-RPC node this is one batch request: a hub check is several view
        calls, and one round trip instead of five is most of the cold-path cost.
        """
        tag = hex(block) if isinstance(block, int) else block
        if self._http is None or self.url is None:
            out: list[bytes | ChainError] = []
            for to, data in calls:
                try:
                    with translate_errors("eth_call"):
                        raw = self.w3.eth.call(cast(TxParams, {"to": to, "data": data}), block)
                    out.append(bytes(raw))
                except ChainError as exc:
                    out.append(exc)
            return out
        body = [
            {
                "jsonrpc": "2.0",
                "id": i,
                "method": "eth_call",
                "params": [{"to": to, "data": "0x" + data.hex()}, tag],
            }
            for i, (to, data) in enumerate(calls)
        ]
        try:
            response = self._http.post(self.url, json=body)
            response.raise_for_status()
            answers = response.json()
        except httpx.HTTPError as exc:
            raise ChainUnavailable(f"chain endpoint unreachable: {exc}") from exc
        except ValueError as exc:
            raise ChainError(f"eth_call batch: answer is not JSON: {exc}") from exc
        if not isinstance(answers, list):
            raise ChainError(f"eth_call batch: expected a list, got {str(answers)[:200]}")
        by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
        results: list[bytes | ChainError] = []
        for i in range(len(calls)):
            answer = by_id.get(i)
            if answer is None:
                results.append(ChainError(f"eth_call batch: no answer for call {i}"))
            elif "error" in answer:
                results.append(rpc_error(answer["error"]))
            else:
                result = answer.get("result")
                try:
                    results.append(bytes.fromhex(str(result).removeprefix("0x")))
                except ValueError:
                    results.append(ChainError(f"eth_call: result is not hex: {result!r:.80}"))
        return results

    @property
    def accounts(self) -> list[str]:
        with translate_errors("eth_accounts"):
            return [Web3.to_checksum_address(a) for a in self.w3.eth.accounts]

    @property
    def chain_id(self) -> int:
        with translate_errors("eth_chainId"):
            return int(self.w3.eth.chain_id)

    def block_number(self) -> int:
        with translate_errors("eth_blockNumber"):
            return int(self.w3.eth.block_number)

    def now(self) -> int:
        """Timestamp of the latest block: the contracts' notion of the present."""
        with translate_errors("eth_getBlockByNumber"):
            return int(self.w3.eth.get_block("latest")["timestamp"])

    def block_time(self, number: int) -> int:
        """Timestamp of block `number`."""
        with translate_errors("eth_getBlockByNumber"):
            return int(self.w3.eth.get_block(number)["timestamp"])

    def mine(self) -> None:
        with translate_errors("mine"):
            if self._tester is not None:
                self._tester.mine_blocks(1)
            else:
                self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def increase_time(self, seconds: int) -> int:
        """Move chain time forward and mine one block at the new time; returns it."""
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        with translate_errors("increase_time"):
            if self._tester is not None:
                # eth-tester mines the travelling block one second before its target
                self._tester.time_travel(self.now() + seconds + 1)
            else:
                self._rpc("evm_increaseTime", [seconds])
                self._rpc("evm_mine", [])
        return self.now()

    def snapshot(self) -> Any:
        with translate_errors("snapshot"):
            if self._tester is not None:
                return self._tester.take_snapshot()
            return self._rpc("evm_snapshot", [])

    def revert(self, snapshot_id: Any) -> None:
        with translate_errors("revert"):
            if self._tester is not None:
                self._tester.revert_to_snapshot(snapshot_id)
            else:
                self._rpc("evm_revert", [snapshot_id])

    def close(self) -> None:
        """Release the HTTP connection pool (a JSON-RPC chain); harmless otherwise."""
        if self._http is not None:
            self._http.close()

    def _rpc(self, method: str, params: list[Any]) -> Any:
        response = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in response:
            raise ChainError(f"{method}: {response['error']}")
        return response.get("result")


def embedded_chain() -> Chain:
    """A fresh in-process chain (eth-tester + py-evm) with ten funded unlocked accounts."""
    from eth_tester import EthereumTester, PyEVMBackend
    from web3 import EthereumTesterProvider

    tester = EthereumTester(backend=PyEVMBackend())
    w3 = Web3(EthereumTesterProvider(tester))
    return Chain(w3=w3, kind="embedded", _tester=tester)


def rpc_chain(url: str, *, timeout: float = 10.0) -> Chain:
    """A chain behind a JSON-RPC URL (anvil for development, a real node in production)."""
    if not url.startswith(("http://", "https://")):
        raise ChainUnavailable(f"--rpc must be an http(s) URL, got {url!r}")
    # cache_allowed_requests: web3 asks eth_chainId twice per call otherwise (validation)
    provider = Web3.HTTPProvider(
        url, request_kwargs={"timeout": timeout}, cache_allowed_requests=True
    )
    w3 = Web3(provider)
    http = httpx.Client(timeout=timeout, trust_env=False)
    chain = Chain(w3=w3, kind="rpc", url=url, _http=http)
    chain.block_number()  # fail here, clearly, when nothing answers
    return chain


def connect(url: str | None) -> Chain:
    return embedded_chain() if url is None else rpc_chain(url)
