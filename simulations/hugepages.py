"""Run a large simulation with its heap on transparent huge pages.

Why: at 10^5 nodes the routers' state is ~1 GB of small objects, and every
event touches a different router's. With 4 KiB pages almost every such touch
misses the TLB as well as the caches, and the page walk misses too: at 3x10^4
nodes the start-up ran ~27 % faster with the heap on 2 MiB pages, the same
events in the same order (nothing in a run depends on where an object lives:
the routers order peers by insertion, never by address).

CPython's own allocator (pymalloc) takes its arenas from mmap and never asks
for huge pages; glibc's malloc does when told to (`glibc.malloc.hugetlb=1`,
glibc >= 2.35, with transparent huge pages in `madvise` or `always` mode).
Both are chosen when the interpreter starts, so the process re-executes
itself with `PYTHONMALLOC=malloc` and that tunable set, once, before it
builds anything. Where the kernel has no transparent huge pages it does
nothing. The cost: glibc's malloc keeps a 16-byte header per object that
pymalloc does not, and huge pages are filled whole, so RSS per node grows
(benchmarks/sim_scale.py prints it either way).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

TUNABLE = "glibc.malloc.hugetlb=1"
_THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def available() -> bool:
    """Transparent huge pages that a madvise can get (mode `always` or `madvise`)."""
    try:
        mode = _THP.read_text()
    except OSError:
        return False
    return "[never]" not in mode and sys.platform.startswith("linux")


def active() -> bool:
    """This process's heap is glibc's malloc with the huge-page tunable."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return os.environ.get("PYTHONMALLOC") == "malloc" and TUNABLE in tunables.split(":")


def reexec_on_huge_pages(argv: list[str]) -> None:
    """Replace this process by `argv` run on huge pages, unless it already is
    or the kernel has none. Call it first thing, before anything is built:
    what ran before is lost (output flushed)."""
    if active() or not available():
        return
    env = dict(os.environ)
    env["PYTHONMALLOC"] = "malloc"
    tunables = env.get("GLIBC_TUNABLES")
    env["GLIBC_TUNABLES"] = f"{tunables}:{TUNABLE}" if tunables else TUNABLE
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv], env)
