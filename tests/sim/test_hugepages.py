"""The huge-page re-exec: it happens once, and only where the kernel has them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from simulations import hugepages

PROBE = (
    "import json, os, sys\n"
    "from simulations import hugepages\n"
    "hugepages.reexec_on_huge_pages(['-c', sys.argv[1] if len(sys.argv) > 1 else ''])\n"
    "print(json.dumps({'malloc': os.environ.get('PYTHONMALLOC'),"
    " 'tunables': os.environ.get('GLIBC_TUNABLES'), 'active': hugepages.active()}))\n"
)


def test_active_needs_both_the_allocator_and_the_tunable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONMALLOC", "malloc")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2:" + hugepages.TUNABLE)
    assert hugepages.active()
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    assert not hugepages.active()
    monkeypatch.delenv("PYTHONMALLOC")
    monkeypatch.setenv("GLIBC_TUNABLES", hugepages.TUNABLE)
    assert not hugepages.active()


def test_reexec_sets_the_heap_once_and_keeps_other_tunables() -> None:
    env = {
        "GLIBC_TUNABLES": "glibc.malloc.arena_max=2",
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }
    # the re-executed process runs the probe again: it must not re-exec a second time
    out = subprocess.run(
        [sys.executable, "-c", PROBE, PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(out) == 1
    got = json.loads(out[0])
    if hugepages.available():
        assert got == {
            "malloc": "malloc",
            "tunables": "glibc.malloc.arena_max=2:" + hugepages.TUNABLE,
            "active": True,
        }
    else:  # no transparent huge pages here: the process runs as it was started
        assert got == {"malloc": None, "tunables": "glibc.malloc.arena_max=2", "active": False}
