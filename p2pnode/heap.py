"""The start-up heap, frozen out of the cyclic collector's walks once a daemon is up.

Kept apart from the daemon so that the metrics can read the count without
importing the daemon, and without asking the interpreter (which counts the
frozen objects by walking them all) on every scrape.
"""

from __future__ import annotations

import gc

_frozen = 0


def freeze_startup_heap() -> int:
    """Move everything alive now out of the cyclic collector's reach; how many objects.

    Why: once a daemon is up, its heap is mostly what its imports and start-up
    built (modules, classes, functions, the host and services: ~190 k tracked
    objects), which lives as long as the process. Every collection of the oldest
    generation walks all of it, and while it does the event loop and the API
    thread stand still: 93-126 ms a time on a 2-core machine
    (benchmarks/collector.py). Frozen (`gc.freeze()`, after one full collection
    so that no garbage is frozen with it), those objects are skipped, and a full
    collection walks only what was made since. They are still freed by
    reference counting if they die; only a cycle among them that dies later
    would stay. So it is for a process that is one daemon (`sonm-p2p run`) or a
    one-off measurement that then exits, never for one that goes on building and
    dropping daemons (the test suite)."""
    global _frozen
    gc.collect()
    gc.freeze()
    _frozen = gc.get_freeze_count()
    return _frozen


def frozen_objects() -> int:
    """What the last `freeze_startup_heap` froze (0: never called in this process)."""
    return _frozen
