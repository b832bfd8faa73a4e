"""Keys: keystore round trip, peer identity persistence, and every operator error
as one line on stderr with exit code 2 from the real CLI."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from p2pnode import keys
from p2pnode.errors import UserError
from tests.conftest import run_cli

PW = {"SONM_KEY_PASSWORD": "correct horse"}


def _one_line_error(result, *needles: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sonm-p2p: error: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data dir with a keystore made by `keys new` (scrypt is slow: share it)."""
    data = tmp_path_factory.mktemp("made")
    result = run_cli("keys", "new", "--data-dir", str(data), env=PW)
    assert result.returncode == 0, result.stderr
    return data


def test_new_creates_private_keystore_and_identity(made: Path) -> None:
    store = made / "keystore.json"
    ident = made / "identity.key"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert stat.S_IMODE(ident.stat().st_mode) == 0o600
    raw = json.loads(store.read_text())
    assert raw["crypto"]["kdf"] == "scrypt"
    assert keys.keystore_address(store).startswith("0x")  # unlocking: see test_show_...


def test_new_makes_the_data_dir_private_before_the_daemon_runs(tmp_path: Path) -> None:
    fresh = tmp_path / "a" / "data"
    result = run_cli("keys", "new", "--data-dir", str(fresh), env=PW)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    existing = tmp_path / "existing"  # made by hand, world-readable: tightened as well
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)
    keys.load_or_create_identity(existing)
    assert stat.S_IMODE(existing.stat().st_mode) == 0o700


def test_show_unlocks_and_prints_address_and_peer_id(made: Path) -> None:
    result = run_cli("keys", "show", "--data-dir", str(made), env=PW)
    assert result.returncode == 0, result.stderr
    assert keys.keystore_address(made / "keystore.json") in result.stdout
    peer = keys.peer_id_of(keys.load_node_identity(made / "identity.key")).to_base58()
    assert peer in result.stdout


def test_show_with_password_file(made: Path, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text(PW["SONM_KEY_PASSWORD"] + "\n")
    result = run_cli("keys", "show", "--data-dir", str(made), "--password-file", str(pw))
    assert result.returncode == 0, result.stderr


def test_wrong_password(made: Path) -> None:
    result = run_cli("keys", "show", "--data-dir", str(made), env={"SONM_KEY_PASSWORD": "nope"})
    _one_line_error(result, "wrong password", "keystore.json")


def test_new_refuses_to_overwrite(made: Path) -> None:
    result = run_cli("keys", "new", "--data-dir", str(made), env=PW)
    _one_line_error(result, "already exists")


def test_missing_keystore(tmp_path: Path) -> None:
    result = run_cli("keys", "show", "--data-dir", str(tmp_path), env=PW)
    _one_line_error(result, "does not exist", "keys new")


def test_missing_password_file(made: Path, tmp_path: Path) -> None:
    result = run_cli(
        "keys", "show", "--data-dir", str(made), "--password-file", str(tmp_path / "nope")
    )
    _one_line_error(result, "password file", "does not exist")


def test_no_password_without_a_terminal(made: Path) -> None:
    result = run_cli("keys", "show", "--data-dir", str(made))  # stdin is not a tty here
    _one_line_error(result, "no password given", "SONM_KEY_PASSWORD")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\x00\xffnot json", "not JSON"),
        (b"[1, 2]", "not a UTC/JSON keystore"),
        (b'{"address": "00", "crypto": {"kdf": "scrypt"}}', "no valid address"),
    ],
    ids=["binary", "json-list", "no-address"],
)
def test_corrupt_keystore(tmp_path: Path, content: bytes, needle: str) -> None:
    (tmp_path / "keystore.json").write_bytes(content)
    result = run_cli("keys", "show", "--data-dir", str(tmp_path), env=PW)
    _one_line_error(result, "corrupt", needle)


def test_tampered_keystore_is_corrupt_not_a_crash(made: Path, tmp_path: Path) -> None:
    raw = json.loads((made / "keystore.json").read_text())
    raw["crypto"]["kdfparams"] = {"bogus": 1}
    (tmp_path / "keystore.json").write_text(json.dumps(raw))
    result = run_cli("keys", "show", "--data-dir", str(tmp_path), env=PW)
    _one_line_error(result, "corrupt")


def test_import_private_key_round_trip(tmp_path: Path) -> None:
    secret = "0x" + "11" * 32
    (tmp_path / "pk").write_text(secret + "\n")
    data = tmp_path / "d"
    result = run_cli(
        "keys",
        "import",
        "--data-dir",
        str(data),
        "--private-key-file",
        str(tmp_path / "pk"),
        env=PW,
    )
    assert result.returncode == 0, result.stderr
    from eth_account import Account

    address = Account.from_key(secret).address
    assert keys.keystore_address(data / "keystore.json") == address
    assert address in result.stdout


def test_import_bad_private_key(tmp_path: Path) -> None:
    (tmp_path / "pk").write_text("0x1234")
    result = run_cli(
        "keys",
        "import",
        "--data-dir",
        str(tmp_path / "d"),
        "--private-key-file",
        str(tmp_path / "pk"),
        env=PW,
    )
    _one_line_error(result, "not 32 bytes")


def test_import_keystore_checks_the_password(made: Path, tmp_path: Path) -> None:
    src = made / "keystore.json"
    bad = run_cli(
        "keys",
        "import",
        "--data-dir",
        str(tmp_path / "a"),
        "--keystore-file",
        str(src),
        env={"SONM_KEY_PASSWORD": "nope"},
    )
    _one_line_error(bad, "wrong password")
    assert not (tmp_path / "a" / "keystore.json").exists()
    good = run_cli(
        "keys", "import", "--data-dir", str(tmp_path / "b"), "--keystore-file", str(src), env=PW
    )
    assert good.returncode == 0, good.stderr
    assert keys.keystore_address(tmp_path / "b" / "keystore.json") == keys.keystore_address(src)


def test_identity_persists_and_is_private(tmp_path: Path) -> None:
    first = keys.peer_id_of(keys.load_or_create_identity(tmp_path))
    second = keys.peer_id_of(keys.load_or_create_identity(tmp_path))
    assert first == second
    assert stat.S_IMODE((tmp_path / "identity.key").stat().st_mode) == 0o600
    assert keys.load_or_create_identity(tmp_path).private_key.get_type().name == "Ed25519"


def test_corrupt_identity_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "identity.key").write_bytes(b"garbage")
    with pytest.raises(UserError, match=r"identity key .* is corrupt"):
        keys.load_or_create_identity(tmp_path)


def test_password_sources_in_order(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("from-file\r\n")
    src = keys.PasswordSource(file=str(pw), environ={"SONM_KEY_PASSWORD": "from-env"})
    assert keys.read_password(src) == "from-file"
    assert keys.read_password(keys.PasswordSource(environ={"SONM_KEY_PASSWORD": "e"})) == "e"
    answers = iter(["a", "b"])
    prompt = keys.PasswordSource(environ={}, prompt=lambda _: next(answers), interactive=True)
    with pytest.raises(UserError, match="differ"):
        keys.read_password(prompt, confirm=True)
    with pytest.raises(UserError, match="empty"):
        keys.read_password(keys.PasswordSource(environ={"SONM_KEY_PASSWORD": ""}))
