"""The replay guard: spent numbers stay spent until they expire, memory stays under the caps."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip.replay import ReplayGuard, ReplayParams, ReplayRecord

A, B = b"signer-a", b"signer-b"


def test_unique_numbers_are_spent_until_they_expire() -> None:
    g = ReplayGuard()
    assert not g.seen(A, 5)
    g.record(A, 5, expires=100.0, monotonic=False, now=0.0)
    assert g.seen(A, 5)
    assert not g.seen(A, 4) and not g.seen(A, 6) and not g.seen(B, 5)
    g.expire(99.0)
    assert g.seen(A, 5)
    g.expire(100.0)
    assert not g.seen(A, 5)
    assert len(g) == 0
    assert g.counters.replays_seen == 2


def test_monotonic_keys_spend_everything_up_to_the_newest() -> None:
    g = ReplayGuard()
    g.record(A, 10, expires=50.0, monotonic=True, now=0.0)
    assert g.seen(A, 10) and g.seen(A, 3) and not g.seen(A, 11)
    g.record(A, 12, expires=80.0, monotonic=True, now=1.0)
    assert g.seen(A, 11)
    assert len(g) == 1  # one key, one floor, no per-number entries
    g.expire(60.0)  # the older floor entry passing does not lower the newer floor
    assert g.seen(A, 12)
    g.expire(80.0)
    assert not g.seen(A, 12) and len(g) == 0


def test_per_key_cap_folds_the_smallest_into_the_floor() -> None:
    g = ReplayGuard(ReplayParams(max_entries=1000, max_per_key=3))
    for n in (10, 11, 12, 13):
        g.record(A, n, expires=100.0 + n, monotonic=False, now=0.0)
    assert g.counters.folded == 1
    assert all(g.seen(A, n) for n in (10, 11, 12, 13))
    assert g.seen(A, 2)  # folded: refused, never accepted again (safe side)
    assert not g.seen(A, 14)
    assert len(g) == 1 + 3


def test_global_cap_folds_then_forgets_keys() -> None:
    g = ReplayGuard(ReplayParams(max_entries=4, max_per_key=4))
    g.record(A, 1, expires=10.0, monotonic=False, now=0.0)
    g.record(A, 2, expires=20.0, monotonic=False, now=0.0)
    g.record(A, 3, expires=30.0, monotonic=False, now=0.0)  # cost 1 + 3 = 4
    g.record(B, 1, expires=40.0, monotonic=False, now=0.0)  # over: fold A's earliest
    assert len(g) <= 4
    assert g.seen(A, 1) and g.seen(A, 2) and g.seen(A, 3) and g.seen(B, 1)
    assert g.counters.folded >= 1
    for i in range(10):
        g.record(bytes([i]), 1, expires=50.0 + i, monotonic=False, now=0.0)
        assert len(g) <= 4
    assert g.counters.forgotten_keys > 0
    assert g.seen(bytes([9]), 1)  # the newest survive


def test_folding_keeps_the_longest_expiry_of_what_it_covers() -> None:
    """Folding n=1 (expiring soon) also covers n=0 (expiring later): the floor must
    last until n=0 would have expired."""
    g = ReplayGuard(ReplayParams(max_entries=2, max_per_key=2))
    g.record(A, 0, expires=20.0, monotonic=False, now=0.0)
    g.record(A, 1, expires=10.0, monotonic=False, now=0.0)  # cost 3 > 2: fold n=1
    assert len(g) == 1 and g.counters.folded >= 1
    g.expire(15.0)
    assert g.seen(A, 0)
    g.expire(20.0)
    assert not g.seen(A, 0)


def test_records_drain_and_load_round_trip() -> None:
    g = ReplayGuard()
    g.record(A, 7, expires=100.0, monotonic=False, now=0.0)
    g.record(B, 3, expires=100.0, monotonic=True, now=0.0)
    records = g.drain_records()
    assert records == [
        ReplayRecord(A, 7, 100.0, is_floor=False),
        ReplayRecord(B, 3, 100.0, is_floor=True),
    ]
    assert g.drain_records() == []
    h = ReplayGuard()
    h.load([*records, ReplayRecord(b"old", 1, 5.0, False)], now=10.0)
    assert h.seen(A, 7) and h.seen(B, 2) and not h.seen(b"old", 1)
    assert h.drain_records() == []  # loading is not news to persist


def test_params_validate() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        ReplayParams(max_entries=0).validate()
    with pytest.raises(ValueError, match="max_per_key"):
        ReplayParams(max_entries=10, max_per_key=11).validate()


ops = st.lists(
    st.tuples(
        st.sampled_from([A, B, b"c", b"d"]),
        st.integers(0, 30),
        st.integers(1, 40),  # lifetime
        st.booleans(),  # monotonic (per key fixed below)
        st.integers(0, 3),  # time step
    ),
    max_size=80,
)


@settings(max_examples=500, deadline=None)
@given(ops, st.integers(2, 12), st.integers(1, 6))
def test_never_forgets_a_live_number_unless_it_says_so(
    steps: list[tuple[bytes, int, int, bool, int]], max_entries: int, max_per_key: int
) -> None:
    """Safety: a recorded, unexpired number is reported seen, unless its key was forgotten
    under the global cap (counted). Memory never exceeds the cap."""
    max_per_key = min(max_per_key, max_entries)
    g = ReplayGuard(ReplayParams(max_entries=max_entries, max_per_key=max_per_key))
    monotonic = {A: True, B: False, b"c": False, b"d": True}
    live: list[tuple[bytes, int, float]] = []
    now = 0.0
    for key, number, life, _, step in steps:
        now += step
        g.expire(now)
        if g.seen(key, number):
            continue
        g.record(key, number, now + life, monotonic=monotonic[key], now=now)
        live.append((key, number, now + life))
        assert len(g) <= max_entries
        if g.counters.forgotten_keys == 0:
            for k, n, exp in live:
                if exp > now:
                    assert g.seen(k, n), (k, n, exp, now)
