"""The intern cache of subscription sets, shared by every router of the process.

Kept apart from the peer bookkeeping because it subclasses builtins (a frozenset,
a weak reference), which the compiled modules (gossip/_native.py) cannot; this
module always runs as Python.
"""

from __future__ import annotations

import weakref


class TopicSet(frozenset[str]):
    """A frozenset the intern cache can hold weakly (a plain frozenset takes no weakref)."""


NO_TOPICS: frozenset[str] = TopicSet()

# The intern cache of subscription sets, shared by every router of the process:
# hash -> weak reference to the one set with that hash. Weak, so a set (and the
# topic names in it) lives only as long as some peer subscribes to it: when a
# peer leaves, what it made us hold goes with it.
_TOPIC_SETS: dict[int, _TopicSetRef] = {}


def intern_topics(topics: frozenset[str]) -> frozenset[str]:
    """One shared set per distinct subscription set, across all routers of the
    process (memory: 10^5 simulated routers x their peers). A pure cache, held
    weakly: it never keeps a set nobody uses."""
    h = hash(topics)
    ref = _TOPIC_SETS.get(h)
    if ref is not None:
        got = ref()
        if got is not None and got == topics:
            return got
    new = TopicSet(topics)
    _TOPIC_SETS[h] = _TopicSetRef(new, h)
    return new


class _TopicSetRef(weakref.ref[TopicSet]):
    """A weak reference that removes its own cache entry when its set dies."""

    __slots__ = ("key",)

    def __new__(cls, ts: TopicSet, key: int) -> _TopicSetRef:
        return super().__new__(cls, ts, _forget_topic_set)

    def __init__(self, ts: TopicSet, key: int) -> None:
        super().__init__(ts, _forget_topic_set)  # type: ignore[call-arg]
        self.key = key


def _forget_topic_set(ref: weakref.ref[TopicSet]) -> None:
    key = ref.key if isinstance(ref, _TopicSetRef) else None
    if key is not None and _TOPIC_SETS.get(key) is ref:
        del _TOPIC_SETS[key]


def interned_topic_sets() -> int:
    """How many subscription sets the intern cache holds (memory accounting, tests)."""
    return len(_TOPIC_SETS)
