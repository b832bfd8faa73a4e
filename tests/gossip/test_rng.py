"""gossip.rng.sample makes the picks `random.Random.sample` makes, draw for draw:
a seed must give the peers it always gave, in the daemon and in the simulator."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossip.rng import sample


@given(seed=st.integers(0, 2**32), n=st.integers(0, 300), k_frac=st.floats(0.0, 1.0))
def test_sample_matches_random_sample(seed: int, n: int, k_frac: float) -> None:
    population = [b"p%d" % i for i in range(n)]
    k = int(k_frac * n)
    ours, theirs = random.Random(seed), random.Random(seed)
    assert sample(ours, population, k) == theirs.sample(population, k)
    # and both generators are left in the same state: later draws agree too
    assert ours.getrandbits(64) == theirs.getrandbits(64)


@pytest.mark.parametrize(("n", "k"), [(1, 1), (5, 5), (21, 6), (22, 6), (200, 6), (40, 39)])
def test_sample_matches_at_the_pool_and_set_boundaries(n: int, k: int) -> None:
    # n <= setsize draws from a shrinking pool, larger n rejects repeats from a
    # set: both branches, and the edges between them, give the same picks
    population = list(range(1000, 1000 + n))
    for seed in range(50):
        ours, theirs = random.Random(seed), random.Random(seed)
        picks = sample(ours, population, k)
        assert picks == theirs.sample(population, k)
        assert len(set(picks)) == k


def test_sample_with_a_system_generator_picks_distinct_members() -> None:
    population = list(range(100))
    picks = sample(random.SystemRandom(), population, 30)
    assert len(set(picks)) == 30 and set(picks) <= set(population)


@pytest.mark.parametrize("k", [-1, 4])
def test_sample_refuses_impossible_sizes(k: int) -> None:
    with pytest.raises(ValueError, match="Sample larger than population or is negative"):
        sample(random.Random(0), [1, 2, 3], k)
