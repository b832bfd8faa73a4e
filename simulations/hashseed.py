"""Runs reproducible across processes: a fixed PYTHONHASHSEED.

The router keeps peers in sets of bytes, and CPython randomises the hash of
bytes per process, so the order in which a set is walked (and with it which
peers a seeded `rng.sample` picks) differs from one process to the next.
Within one process a seed always gives the same run; across processes it
does only when PYTHONHASHSEED is fixed before the interpreter starts. The CLI
re-runs itself with it set, and sweep workers are spawned with it.

(Giving simulated peer ids a fixed hash instead was measured to halve the
simulator's speed: a Python-level __hash__ runs on every set and dict lookup.)
"""

from __future__ import annotations

import os

HASH_SEED = "0"


def is_fixed() -> bool:
    return os.environ.get("PYTHONHASHSEED") == HASH_SEED


def fixed_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = HASH_SEED
    return env
