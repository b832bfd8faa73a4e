"""The connection keeper's policy in virtual time: re-dial backoff, candidate
choice, px pacing, trimming and re-dial after a lost connection. No sockets, no
sleeps; the clock is a number the test moves and randomness is seeded."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pytest

from p2pnode.config import NetworkSection
from p2pnode.discovery_policy import (
    Candidate,
    DiscoveryParams,
    DiscoveryPolicy,
    backoff_delay,
)
from p2pnode.errors import UserError

ME = "me"
SETTLE = 0.05  # the driver's pause after a wake-up, before the next round


@dataclass(frozen=True)
class Row:
    peer_id: str
    addrs: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/1",)
    failures: int = 0


class FixedRandom(random.Random):
    """random() always answers `value`: jitter becomes exact."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def _policy(seed: int = 1, **kw: float) -> DiscoveryPolicy:
    params = DiscoveryParams(**kw)  # type: ignore[arg-type]
    return DiscoveryPolicy(params, random.Random(seed), ME)


def _table(*rows: Row) -> Callable[[], list[Candidate]]:
    return lambda: list(rows)


def _dialled(
    policy: DiscoveryPolicy, now: float, connected: set[str], rows: Iterable[Row]
) -> list[str]:
    table: list[Candidate] = list(rows)
    return [c.peer_id for c in policy.plan(now, connected, lambda: table).dial]


# -- params ----------------------------------------------------------------------


def test_params_come_from_the_network_config_and_validate() -> None:
    net = NetworkSection(min_connections=3, max_connections=5, redial_interval=0.5)
    p = DiscoveryParams.from_network(net)
    assert (p.min_connections, p.max_connections, p.redial_interval) == (3, 5, 0.5)
    assert (p.redial_max_interval, p.px_interval) == (net.redial_max_interval, net.px_interval)
    assert p.validate() is p
    assert DiscoveryParams().validate() == DiscoveryParams()


@pytest.mark.parametrize(
    ("kw", "names"),
    [
        ({"min_connections": -1}, "DiscoveryParams.min_connections=-1: must be >= 0"),
        ({"max_connections": 0, "min_connections": 0}, "max_connections=0: must be >= 1"),
        ({"min_connections": 4, "max_connections": 3}, "must be >= min_connections (4)"),
        ({"redial_interval": 0.0}, "redial_interval=0.0: must be > 0"),
        ({"redial_max_interval": 1.0}, "redial_max_interval=1.0: must be >= redial_interval"),
        ({"px_interval": 0}, "px_interval=0: must be > 0"),
        ({"px_min_gap": -1.0}, "px_min_gap=-1.0: must be >= 0"),
        ({"px_fanout_short": 0}, "px_fanout_short=0: must be >= 1"),
        ({"max_concurrent_dials": 0}, "max_concurrent_dials=0: must be >= 1"),
    ],
)
def test_a_param_out_of_bounds_is_named(kw: dict[str, Any], names: str) -> None:
    with pytest.raises(UserError) as err:
        DiscoveryParams(**kw).validate()
    assert names in str(err.value)
    with pytest.raises(UserError):
        DiscoveryPolicy(DiscoveryParams(**kw), random.Random(0), ME)


# -- backoff ---------------------------------------------------------------------


def test_backoff_doubles_from_the_redial_interval_and_stops_at_the_cap() -> None:
    p = DiscoveryParams(redial_interval=0.1, redial_max_interval=0.8)
    delays = [backoff_delay(p, n) for n in range(1, 8)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 0.8, 0.8, 0.8])
    assert backoff_delay(p, 10_000) == 0.8  # a huge failure count stays finite


def test_each_failure_lengthens_the_wait_with_exact_jitter_bounds() -> None:
    params = DiscoveryParams(redial_interval=0.1, redial_max_interval=0.8)
    waits = {}
    for value in (0.0, 0.5, 0.999999):
        policy = DiscoveryPolicy(params, FixedRandom(value), ME)
        waits[value] = [policy.dial_failed("x", now=0.0) for _ in range(6)]
    assert waits[0.5] == pytest.approx([0.1, 0.2, 0.4, 0.8, 0.8, 0.8])
    assert waits[0.0] == pytest.approx([0.075, 0.15, 0.3, 0.6, 0.6, 0.6])  # -25 %
    assert waits[0.999999] == pytest.approx([0.125, 0.25, 0.5, 1.0, 1.0, 1.0], rel=1e-5)
    # a seeded source keeps every wait inside ±25 % of the plain backoff
    policy = DiscoveryPolicy(params, random.Random(7), ME)
    for n in range(1, 30):
        wait = policy.dial_failed("y", now=100.0)
        plain = backoff_delay(params, n)
        assert 0.75 * plain <= wait < 1.25 * plain
        assert policy.backoff["y"].next_try == pytest.approx(100.0 + wait)


def test_the_stored_failure_count_carries_the_backoff_across_restarts() -> None:
    policy = DiscoveryPolicy(DiscoveryParams(), FixedRandom(0.5), ME)
    wait = policy.dial_failed("x", now=0.0, stored_failures=4)  # the table remembers 4
    assert policy.backoff["x"].failures == 4
    assert wait == backoff_delay(DiscoveryParams(), 4) == 16.0


def test_a_peer_that_failed_is_not_redialled_before_its_backoff() -> None:
    policy = _policy(redial_interval=1.0, redial_max_interval=8.0, min_connections=1)
    policy.rng = FixedRandom(0.5)
    rows = [Row("dead")]
    assert _dialled(policy, 0.0, set(), rows) == ["dead"]
    assert _dialled(policy, 0.0, set(), rows) == []  # in flight: not twice
    policy.dial_failed("dead", now=0.0)  # waits 1 s
    assert _dialled(policy, 0.999, set(), rows) == []
    assert _dialled(policy, 1.0, set(), rows) == ["dead"]
    policy.dial_failed("dead", now=1.0)  # waits 2 s
    assert _dialled(policy, 2.999, set(), rows) == []
    assert _dialled(policy, 3.0, set(), rows) == ["dead"]


def test_a_dead_seed_is_retried_at_a_bounded_pace() -> None:
    """The keeper's loop played in virtual time against a seed that never answers:
    a round every redial_interval (and SETTLE after each wake-up), every dial failing
    at once. Without backoff a 0.1 s round would dial ~25 times in 2.5 s."""
    policy = _policy(seed=3, redial_interval=0.1, redial_max_interval=0.8, min_connections=1)
    policy.seeds.add("seed")
    rows = [Row("seed")]
    dial_times: list[float] = []
    now = 0.0
    while now < 12.0:
        dialled = _dialled(policy, now, set(), rows)
        for pid in dialled:
            dial_times.append(now)
            policy.dial_failed(pid, now)
        now += SETTLE if dialled else policy.params.redial_interval + SETTLE
    early = dial_times[1]  # after the first two failures, as the real test measured
    later = [t for t in dial_times if early < t <= early + 2.5]
    assert 1 <= len(later) <= 6, dial_times
    gaps = [b - a for a, b in itertools.pairwise(dial_times)]
    assert max(gaps) <= 0.8 * 1.25 + policy.params.redial_interval + SETTLE  # it keeps trying
    assert gaps[-1] >= 0.8 * 0.75  # and settles at the capped interval
    assert policy.backoff["seed"].failures == len(dial_times)


def test_connecting_or_a_newer_record_clears_the_backoff() -> None:
    policy = _policy(min_connections=1)
    policy.dial_failed("a", now=0.0)
    policy.dial_failed("b", now=0.0)
    assert not policy.may_dial("a", 0.5) and not policy.may_dial("b", 0.5)
    policy.connected("a", 0.5)  # it dialled us
    policy.record_refreshed("b")  # it published new addresses
    assert policy.may_dial("a", 0.5) and policy.may_dial("b", 0.5)
    assert policy.backoff == {}


# -- candidates ------------------------------------------------------------------


def test_candidates_are_chosen_in_a_stable_order_whatever_order_the_table_lists() -> None:
    rows = [Row(f"p{i:02d}", failures=i % 3) for i in range(20)]
    picks = []
    shuffled = rows[:]
    random.Random(5).shuffle(shuffled)
    for order in (rows, rows[::-1], shuffled):
        policy = _policy(seed=42, min_connections=6)
        picks.append(_dialled(policy, 0.0, set(), order))
    assert picks[0] == picks[1] == picks[2]
    assert len(picks[0]) == 6
    # fewest failures first
    failures = {r.peer_id: r.failures for r in rows}
    assert [failures[p] for p in picks[0]] == sorted(failures[p] for p in picks[0])
    assert all(failures[p] == 0 for p in picks[0])  # 7 rows have none: enough for 6
    # another seed picks another subset of the equally good ones
    other = _dialled(_policy(seed=43, min_connections=6), 0.0, set(), rows)
    assert set(other) != set(picks[0])


def test_seeds_go_last_once_the_node_knows_someone() -> None:
    rows = [Row("seed", failures=0), Row("peer1", failures=2), Row("peer2", failures=3)]
    lonely = _policy(min_connections=3)
    lonely.seeds.add("seed")
    assert _dialled(lonely, 0.0, set(), rows)[0] == "seed"  # the first connection
    known = _policy(min_connections=4)
    known.seeds.add("seed")
    assert _dialled(known, 0.0, {"friend"}, rows) == ["peer1", "peer2", "seed"]


def test_self_connected_and_in_flight_peers_are_not_candidates() -> None:
    policy = _policy(min_connections=10)
    rows = [Row(ME), Row("conn"), Row("a"), Row("b")]
    assert sorted(_dialled(policy, 0.0, {"conn"}, rows)) == ["a", "b"]
    assert _dialled(policy, 0.0, {"conn"}, rows) == []  # a and b still in flight
    policy.dial_ended("a")  # its task went away without an answer
    assert _dialled(policy, 0.0, {"conn"}, rows) == ["a"]


def test_dials_stay_within_what_is_missing_and_the_concurrency_cap() -> None:
    rows = [Row(f"p{i}") for i in range(30)]
    few = _policy(min_connections=5)
    assert len(_dialled(few, 0.0, {"x", "y"}, rows)) == 3  # 5 wanted, 2 held
    many = _policy(min_connections=20, max_concurrent_dials=8)
    assert len(_dialled(many, 0.0, set(), rows)) == 8
    assert _dialled(many, 0.0, set(), rows) == []  # all 8 slots busy
    many.dial_failed(sorted(many.dialing)[0], 0.0)  # one slot frees up
    assert len(_dialled(many, 0.0, set(), rows)) == 1


def test_the_table_is_read_only_when_the_node_is_short() -> None:
    policy = _policy(min_connections=1)
    reads = []

    def table() -> list[Candidate]:
        reads.append(1)
        return [Row("a")]

    policy.plan(0.0, {"x"}, table)
    assert reads == []
    policy.plan(0.0, set(), table)
    assert reads == [1]


# -- peer exchange pacing ----------------------------------------------------------


def test_a_network_smaller_than_the_target_does_not_flood_the_seed() -> None:
    """Wants 8 peers, only the seed exists: the keeper asks it again and again, but
    at most once per px_min_gap (1 s), over 3 s of rounds every SETTLE seconds."""
    policy = _policy(min_connections=8)
    asked: list[float] = []
    now = 0.0
    while now <= 3.0:
        asked.extend(now for pid in policy.plan(now, {"seed"}, _table()).ask if pid == "seed")
        now = round(now + SETTLE, 6)
    assert len(asked) >= 2  # it does keep asking
    assert len(asked) <= 3.0 / 1.0 + 2
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(asked)), asked


def test_short_of_peers_asks_three_at_the_target_asks_one_per_px_interval() -> None:
    connected = {f"p{i}" for i in range(6)}
    short = _policy(min_connections=8, px_interval=30.0)
    assert len(short.plan(0.0, connected, _table()).ask) == 3
    full = _policy(min_connections=2, px_interval=30.0)
    assert len(full.plan(0.0, connected, _table()).ask) == 1
    assert full.plan(29.9, connected, _table()).ask == []
    assert len(full.plan(30.0, connected, _table()).ask) == 1


def test_a_new_neighbour_counts_as_asked_and_gone_peers_are_forgotten() -> None:
    policy = _policy(min_connections=8)
    policy.dialing.add("new")
    policy.dial_succeeded("new", now=5.0)  # the driver asks it right away
    assert "new" not in policy.dialing
    assert policy.plan(5.5, {"new"}, _table()).ask == []  # not twice within the gap
    assert policy.plan(6.0, {"new"}, _table()).ask == ["new"]
    policy.plan(6.1, set(), _table())
    assert policy.last_asked == {}


# -- trimming --------------------------------------------------------------------


def test_trimming_keeps_the_maximum_and_drops_the_newest() -> None:
    policy = _policy(min_connections=0, max_connections=2, redial_max_interval=60.0)
    for i, pid in enumerate(["old", "older", "mid", "new", "newest"]):
        policy.connected(pid, now={"older": 0.5}.get(pid, float(i + 1)))
    connected = {"old", "older", "mid", "new", "newest"}
    decided = policy.plan(10.0, connected, _table())
    assert decided.drop == ["newest", "new", "mid"]
    assert connected - set(decided.drop) == {"older", "old"}
    assert decided.dial == []
    # a dropped peer is not dialled straight back
    assert all(policy.backoff[p].next_try == 70.0 for p in decided.drop)
    assert policy.plan(10.1, {"old", "older"}, _table()).drop == []


def test_within_the_bounds_nothing_is_dropped_or_dialled() -> None:
    policy = _policy(min_connections=2, max_connections=3)
    decided = policy.plan(0.0, {"a", "b", "c"}, _table(Row("d")))
    assert decided.drop == [] and decided.dial == []


def test_a_reconnect_keeps_the_age_of_the_first_connection() -> None:
    policy = _policy(min_connections=0, max_connections=1)
    policy.connected("a", 1.0)
    policy.connected("b", 2.0)
    policy.connected("a", 3.0)  # a second connection to a
    policy.disconnected("a", still_connected=True)
    assert policy.plan(4.0, {"a", "b"}, _table()).drop == ["b"]


# -- losing a connection -----------------------------------------------------------


def test_a_lost_connection_triggers_a_redial() -> None:
    policy = _policy(min_connections=1, redial_interval=2.0)
    policy.seeds.add("seed")
    rows = [Row("seed")]
    assert _dialled(policy, 0.0, set(), rows) == ["seed"]
    policy.connected("seed", 0.1)
    policy.dial_succeeded("seed", 0.1)
    assert _dialled(policy, 0.2, {"seed"}, rows) == []  # at the target
    policy.disconnected("seed", still_connected=False)  # it hung up
    assert "seed" not in policy.connected_at
    # the driver wakes at once; losing a connection is no failure: no backoff
    assert _dialled(policy, 0.2 + SETTLE, set(), rows) == ["seed"]
