"""The node's two identities and how they are kept on disk.

- The economic identity is an Ethereum account, kept only as an encrypted keystore
  (Web3 Secret Storage, UTC/JSON, scrypt) so a copied data dir does not leak funds.
- The network identity is an Ed25519 libp2p key, stored unencrypted (mode 0600) in
  the data dir, because the daemon must restart unattended with the same peer id.

Every failure an operator can cause (missing file, wrong password, corrupt file)
becomes a UserError with one line naming the file, never a traceback.
"""

from __future__ import annotations

import getpass
import importlib.abc
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.identity_utils import load_identity, save_identity
from libp2p.peer.id import ID

from p2pnode.errors import UserError


class _KeepRecursionLimit(importlib.abc.MetaPathFinder):
    """Puts the recursion limit back once py_ecc's package init has run.

    eth-account (and web3, eth-tester: anything that signs or hashes keys) pulls in
    py_ecc, whose package init raises the interpreter's recursion limit to 100000
    for the whole process. With that limit a deeply nested JSON value makes the C
    parser overflow the thread's C stack (a segfault) instead of raising
    RecursionError. The daemon imports this module before anything else, so
    whichever service first imports py_ecc, the limit stays the interpreter's; and
    a node that never signs never pays for importing it.
    """

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "py_ecc":
            return None
        sys.meta_path.remove(self)  # once; and find_spec below must not find us again
        spec = importlib.util.find_spec(fullname)
        loader = getattr(spec, "loader", None)
        if loader is None:
            return spec
        run_init = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            limit = sys.getrecursionlimit()
            try:
                run_init(module)
            finally:
                sys.setrecursionlimit(limit)

        loader.exec_module = exec_module
        return spec


if "py_ecc" not in sys.modules and not any(
    isinstance(f, _KeepRecursionLimit) for f in sys.meta_path
):
    sys.meta_path.insert(0, _KeepRecursionLimit())

PASSWORD_ENV = "SONM_KEY_PASSWORD"
IDENTITY_FILE = "identity.key"
MIN_PASSWORD_LEN = 1
MAX_SECRET_FILE = 64 * 1024


@dataclass(frozen=True)
class PasswordSource:
    """Where the password comes from, in the order tried: file, environment, prompt."""

    file: str | None = None
    environ: Mapping[str, str] | None = None
    prompt: Callable[[str], str] | None = None
    interactive: bool | None = None

    def validate(self) -> None:
        if self.file is not None and not self.file.strip():
            raise UserError("--password-file is empty: give a file path")


def read_password(source: PasswordSource, *, confirm: bool = False) -> str:
    source.validate()
    if source.file is not None:
        text = _read_small_file(Path(source.file), "password file").decode("utf-8", "replace")
        password = text.rstrip("\r\n")
    else:
        environ = os.environ if source.environ is None else source.environ
        if PASSWORD_ENV in environ:
            password = environ[PASSWORD_ENV]
        else:
            interactive = sys.stdin.isatty() if source.interactive is None else source.interactive
            if not interactive:
                raise UserError(
                    f"no password given: use --password-file, set {PASSWORD_ENV}, "
                    "or run in a terminal to be prompted"
                )
            ask = source.prompt or getpass.getpass
            password = ask("Keystore password: ")
            if confirm and ask("Repeat password: ") != password:
                raise UserError("the two passwords differ")
    if len(password) < MIN_PASSWORD_LEN:
        raise UserError("the password is empty")
    return password


def _read_small_file(path: Path, what: str) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_SECRET_FILE:
            raise UserError(f"{what} {path} is {size} bytes: allowed at most {MAX_SECRET_FILE}")
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"{what} {path} is a directory, not a file") from None
    except PermissionError:
        raise UserError(f"{what} {path} cannot be read: permission denied") from None


def private_dir(path: Path) -> None:
    """Make `path` a directory only its owner can enter (0700), creating it if needed.

    The data dir holds the API token, the identity key and the keystore; made 0755
    by the first command that writes there, it stayed readable to every local user
    until the daemon first started and tightened it.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _write_private(path: Path, data: bytes) -> None:
    """Write a secret atomically with mode 0600 (a crash never leaves half a key)."""
    if not path.parent.exists():
        private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


# -- Ethereum keystore -------------------------------------------------------


def _encrypt(private_key: bytes, password: str) -> dict[str, Any]:
    from eth_account import Account

    return dict(Account.encrypt(private_key, password, kdf="scrypt"))


def create_keystore(path: Path, password: str) -> str:
    """A fresh account in a new keystore file. Returns its checksummed address."""
    from eth_account import Account

    if path.exists():
        raise UserError(f"keystore {path} already exists; refusing to overwrite it")
    account = Account.create()
    _write_private(path, json.dumps(_encrypt(account.key, password)).encode())
    return str(account.address)


def import_private_key(path: Path, private_key_hex: str, password: str) -> str:
    from eth_account import Account

    if path.exists():
        raise UserError(f"keystore {path} already exists; refusing to overwrite it")
    text = private_key_hex.strip()
    try:
        account = Account.from_key(text)
    except Exception:
        raise UserError("the private key is not 32 bytes of hex") from None
    _write_private(path, json.dumps(_encrypt(account.key, password)).encode())
    return str(account.address)


def import_keystore(path: Path, source: Path, password: str) -> str:
    """Copy an existing keystore in after proving the password opens it."""
    if path.exists():
        raise UserError(f"keystore {path} already exists; refusing to overwrite it")
    data = _read_small_file(source, "keystore")
    address = _decrypt(source, data, password)[1]
    _write_private(path, data)
    return address


def keystore_address(path: Path) -> str:
    """The address recorded in the keystore, read without the password."""
    raw = _load_keystore_json(path, _read_small_file(path, "keystore"))
    addr = raw.get("address")
    if not isinstance(addr, str) or len(addr.removeprefix("0x")) != 40:
        raise UserError(f"keystore {path} is corrupt: no valid address field")
    from eth_utils import to_checksum_address

    return str(to_checksum_address("0x" + addr.removeprefix("0x")))


def _load_keystore_json(path: Path, data: bytes) -> dict[str, Any]:
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"keystore {path} is corrupt: not JSON") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("crypto", raw.get("Crypto")), dict):
        raise UserError(f"keystore {path} is corrupt: not a UTC/JSON keystore")
    return raw


def _decrypt(path: Path, data: bytes, password: str) -> tuple[bytes, str]:
    from eth_account import Account

    raw = _load_keystore_json(path, data)
    try:
        key = bytes(Account.decrypt(raw, password))
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise UserError(f"wrong password for keystore {path}") from None
        raise UserError(f"keystore {path} is corrupt: {exc}") from None
    except Exception as exc:
        raise UserError(f"keystore {path} is corrupt: {type(exc).__name__}") from None
    address = str(Account.from_key(key).address)
    return key, address


def unlock_keystore(path: Path, password: str) -> tuple[bytes, str]:
    """The private key and address; wrong password or bad file → UserError."""
    return _decrypt(path, _read_small_file(path, "keystore"), password)


# -- libp2p identity -----------------------------------------------------------


def identity_path(data_dir: Path) -> Path:
    return data_dir / IDENTITY_FILE


def load_or_create_identity(data_dir: Path) -> KeyPair:
    """The persisted Ed25519 key; created (0600) on first start so the peer id is stable."""
    private_dir(data_dir)
    path = identity_path(data_dir)
    if path.exists():
        return load_node_identity(path)
    key_pair = create_new_key_pair()
    save_identity(key_pair, path)
    os.chmod(path, 0o600)
    return key_pair


def load_node_identity(path: Path) -> KeyPair:
    if not path.exists():
        raise UserError(f"identity key {path} does not exist")
    try:
        key_pair = load_identity(path)
    except (ValueError, OSError):
        raise UserError(f"identity key {path} is corrupt") from None
    if key_pair.private_key.get_type().name != "Ed25519":
        raise UserError(f"identity key {path} is not an Ed25519 key")
    return key_pair


def peer_id_of(key_pair: KeyPair) -> ID:
    return ID.from_pubkey(key_pair.public_key)
