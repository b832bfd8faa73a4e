"""Start and stop anvil, the local JSON-RPC chain, for tests and `sonm-p2p devnet`.

anvil comes from the npm package @foundry-rs/anvil, installed into .tools/ by
scripts/setup-tools. It listens on a free loopback port; we wait until it answers
a JSON-RPC request before handing out its URL.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from gossip.errors import LocalError

REPO_ROOT = Path(__file__).resolve().parent.parent
# anvil's default mnemonic gives these well-known dev keys; printed by `devnet`.
DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"


class AnvilNotFound(LocalError):
    """No anvil binary here; run scripts/setup-tools (or `make tools`)."""


def find_anvil() -> str | None:
    """$SONM_ANVIL, then the project's .tools/bin, then PATH."""
    candidates = [os.environ.get("SONM_ANVIL"), str(REPO_ROOT / ".tools" / "bin" / "anvil")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("anvil")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class AnvilProcess:
    """One anvil child process on 127.0.0.1. Use as a context manager."""

    accounts: int = 10
    block_time: float | None = None
    startup_timeout: float = 15.0
    binary: str | None = None
    port: int = 0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AnvilProcess:
        binary = self.binary or find_anvil()
        if binary is None:
            raise AnvilNotFound("anvil not found: run scripts/setup-tools or set SONM_ANVIL")
        last_error = ""
        for _attempt in range(3):  # the free port can be taken between probe and bind
            self.port = free_port()
            cmd = [
                binary,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--silent",
                "--accounts",
                str(self.accounts),
                "--mnemonic",
                DEFAULT_MNEMONIC,
            ]
            if self.block_time is not None:
                cmd += ["--block-time", str(self.block_time)]
            self._proc = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
            )
            error = self._wait_ready()
            if error is None:
                return self
            last_error = error
            self.stop()
        raise LocalError(f"anvil did not start: {last_error}")

    def _wait_ready(self) -> str | None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                return f"exited with {self._proc.returncode}: {err.strip()[:300]}"
            try:
                r = httpx.post(self.url, json=body, timeout=1.0)
                if r.status_code == 200 and "result" in r.json():
                    return None
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.05)
        return f"no answer on {self.url} within {self.startup_timeout}s"

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> AnvilProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def dev_private_keys(count: int) -> list[str]:
    """The private keys anvil derives from DEFAULT_MNEMONIC (m/44'/60'/0'/0/i)."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    keys = []
    for i in range(count):
        acct = Account.from_mnemonic(DEFAULT_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        keys.append("0x" + bytes(acct.key).hex())
    return keys
