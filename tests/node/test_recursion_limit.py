"""The daemon's process keeps the interpreter's recursion limit.

py_ecc (under eth-account) raises it to 100000 on import; with that limit a deeply
nested JSON body overflows the C stack and kills the node instead of raising
RecursionError. A fresh interpreter imports what `sonm-p2p run` imports, in the
same order (the entry point and the daemon first, then every module a service
factory reaches), and the limit must still be the default.
"""

from __future__ import annotations

import pytest

from tests.conftest import run_python

PROBE = r"""
import importlib, pkgutil, sys
default = sys.getrecursionlimit()
import p2pnode.cli.main
import p2pnode.daemon
import p2pnode.services
for package in ("p2pnode", "gossip", "reputation"):
    pkg = importlib.import_module(package)
    for info in pkgutil.walk_packages(pkg.__path__, package + "."):
        importlib.import_module(info.name)
import eth_account, web3  # what the services reach lazily
assert "py_ecc" in sys.modules, "py_ecc was not imported: the probe proves nothing"
print(default, sys.getrecursionlimit())
"""


@pytest.mark.slow
def test_importing_the_daemon_keeps_the_default_recursion_limit() -> None:
    result = run_python(PROBE, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    default, after = result.stdout.split()
    assert after == default
