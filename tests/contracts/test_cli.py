"""`sonm-p2p chain deploy`, `devnet` and `hubs`, run as an operator would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from contracts.chain import rpc_chain
from contracts.deploy import System, SystemAddresses
from p2pnode.cli.main import main

from .conftest import SNM, World


def test_deploy_to_the_embedded_chain_explains_itself(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    out = tmp_path / "addresses.json"
    assert main(["chain", "deploy", "--out", str(out), "--deposit", "12.5"]) == 0
    text = capsys.readouterr().out
    assert "embedded chain" in text and "--rpc" in text
    addresses = SystemAddresses.load(out)
    assert addresses.token in text


def test_deploy_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from contracts.anvil import free_port

    url = f"http://127.0.0.1:{free_port()}"
    code = main(["chain", "deploy", "--rpc", url, "--out", str(tmp_path / "a.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "unreachable" in err
    code = main(["chain", "deploy", "--out", str(tmp_path / "a.json"), "--lock-bps", "20000"])
    assert code == 2 and "lock_bps" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["chain", "deploy", "--out", "x", "--deposit", "-1"])
    assert e.value.code == 2
    key = tmp_path / "key"
    key.write_text("not hex")
    code = main(["chain", "deploy", "--out", "x", "--private-key-file", str(key)])
    assert code == 2 and "not a hex private key" in capsys.readouterr().err


def test_hubs_needs_a_chain_and_an_addresses_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hubs", "--chain", "--data-dir", str(tmp_path)]) == 2
    assert "embedded chain exists only inside" in capsys.readouterr().err
    # without --chain it is the running node's view: here no node has run
    assert main(["hubs", "--data-dir", str(tmp_path)]) == 2
    assert "no API token" in capsys.readouterr().err
    code = main(["hubs", "--rpc", "http://127.0.0.1:1", "--data-dir", str(tmp_path)])
    assert code == 2 and "--addresses" in capsys.readouterr().err
    code = main(
        [
            "hubs",
            "--rpc",
            "http://127.0.0.1:1",
            "--addresses",
            str(tmp_path / "none.json"),
            "--data-dir",
            str(tmp_path),
        ]
    )
    assert code == 2 and "none.json" in capsys.readouterr().err


@pytest.mark.anvil
@pytest.mark.integration
def test_devnet_then_hubs(
    anvil: object,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """devnet prints a working config; a hub registered there shows up in `hubs`."""
    out = tmp_path / "devnet.json"
    env = dict(os.environ, COLUMNS="250")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "p2pnode.cli.main",
            "devnet",
            "--out",
            str(out),
            "--accounts",
            "4",
            "--deposit",
            "100",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # Ctrl-C as a terminal sends it: a suite started in the background by a
        # non-interactive shell passes SIGINT down ignored, and Python keeps it so
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "press Ctrl-C" in line:
                break
        text = "".join(lines)
        assert "press Ctrl-C" in text, text + (proc.stderr.read() if proc.stderr else "")
        rpc = next(ln.split('"')[1] for ln in lines if ln.startswith("rpc = "))
        assert f'addresses = "{out}"' in text and "chain_id = 31337" in text
        addresses = SystemAddresses.load(out)
        chain = rpc_chain(rpc)
        system = System.connect(chain, addresses)
        owner = chain.accounts[1]
        assert system.token.balance_of(owner) == 1_000_000 * SNM  # funded by devnet
        wallet, _ = system.factory.create_wallet(sender=owner)
        system.token.transfer(wallet, 150 * SNM, sender=owner)
        system.wallet(wallet).register("devnet-hub", ["/ip4/127.0.0.1/tcp/4001"], sender=owner)
        system.wallet(wallet).transfer(chain.accounts[2], 10 * SNM, sender=owner)

        monkeypatch.setenv("COLUMNS", "250")
        capsys.readouterr()
        assert (
            main(["hubs", "--rpc", rpc, "--addresses", str(out), "--data-dir", str(tmp_path)]) == 0
        )
        table = capsys.readouterr().out
        assert "devnet-hub" in table and wallet in table and "REGISTERED" in table
        assert "accept" in table

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        with pytest.raises(httpx.HTTPError):  # anvil went down with it
            httpx.post(rpc, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.anvil
@pytest.mark.integration
def test_hub_create_wallet_then_register_on_anvil(
    anvil_world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The operations guide's hub set-up, as commands: the keystore's account makes a
    wallet through the factory, funds it from its own tokens and registers it."""
    from contracts.anvil import dev_private_keys
    from contracts.records import HubStatus
    from p2pnode.keys import import_private_key

    w = anvil_world
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("SONM_KEY_PASSWORD", "pw")
    addresses = tmp_path / "addresses.json"
    w.system.addresses.save(addresses)
    keystore = tmp_path / "keystore.json"
    owner = import_private_key(keystore, dev_private_keys(2)[1], "pw")
    assert owner == w.hub
    assert w.chain.url is not None
    rpc = w.chain.url
    base = ["--rpc", rpc, "--addresses", str(addresses), "--data-dir", str(tmp_path)]
    base += ["--keystore", str(keystore)]

    assert main(["hub", "create-wallet", *base]) == 0
    out = capsys.readouterr().out
    wallet = out.split('hub_wallet = "')[1].split('"')[0]
    assert w.system.factory.is_wallet(wallet) and w.system.wallet(wallet).owner() == owner

    # the owner holds no tokens yet: a sentence, no transaction
    reg = ["hub", "register", *base, "--wallet", wallet, "--name", "cli-hub"]
    addr = ["--addr", "/ip4/192.0.2.7/tcp/4001"]
    assert main([*reg, *addr]) == 2
    err = capsys.readouterr().err
    assert "needs" in err and "for the deposit" in err and owner in err
    assert w.system.wallet(wallet).status() == HubStatus.CREATED
    assert main([*reg]) == 2  # no --addr and no network.announce
    assert "--addr" in capsys.readouterr().err

    deposit = w.system.factory.deposit()
    w.system.token.transfer(owner, deposit + 5 * SNM, sender=w.dao)
    assert main([*reg, *addr]) == 0
    out = capsys.readouterr().out
    assert "fund: tx 0x" in out and "register: tx 0x" in out and "REGISTERED" in out
    state = w.system.wallet(wallet).state()
    assert state.status == HubStatus.REGISTERED and state.frozen_funds == deposit
    assert w.system.token.balance_of(owner) == 5 * SNM  # only what was short was sent
    listed = {h.wallet: h for h in w.system.whitelist.hubs()}
    assert listed[wallet].name == "cli-hub" and listed[wallet].owner == owner

    # registered already, or someone else's wallet: refused before anything is sent
    assert main([*reg, *addr]) == 2
    assert "REGISTERED: nothing to register" in capsys.readouterr().err
    other, _ = w.system.factory.create_wallet(sender=w.other)
    bad = ["hub", "register", *base, "--wallet", other, "--name", "x", *addr]
    assert main(bad) == 2
    assert f"belongs to {w.other}" in capsys.readouterr().err
    monkeypatch.setenv("SONM_KEY_PASSWORD", "wrong")
    assert main(["hub", "create-wallet", *base]) == 2
    assert "wrong password" in capsys.readouterr().err
