"""The worker's hub choice and leave rule, as tables: pure, no clock, no I/O."""

from __future__ import annotations

import pytest

from p2pnode.worker import policy as p
from reputation.state import HubStatus as S

A, B, C, D = (bytes([i]) * 20 for i in range(1, 5))
NONE = p.PolicyParams()


def _c(wallet: bytes, status: S, pay: int | None = 100, open_: bool = True) -> p.Candidate:
    return p.Candidate(wallet, status, pay, open_)


def test_checked_or_safe_first_then_unverified_then_pay() -> None:
    hubs = [
        _c(A, S.UNVERIFIED, pay=1_000),
        _c(B, S.CHECKED, pay=10),
        _c(C, S.SAFE, pay=20),
        _c(D, S.UNVERIFIED, pay=2_000),
    ]
    assert [c.wallet for c in p.rank(hubs, NONE)] == [C, B, D, A]
    action = p.decide(None, S.UNKNOWN, 0, hubs, NONE)
    assert action == p.Join(C, "status safe, pays 20 per hour")


@pytest.mark.parametrize("status", [S.UNKNOWN, S.SUSPECTED, S.FAKE])
def test_unknown_suspected_and_fake_hubs_are_never_joined(status: S) -> None:
    assert p.excluded(_c(A, status), NONE) == f"status {status.name.lower()}"
    assert isinstance(p.decide(None, S.UNKNOWN, 0, [_c(A, status)], NONE), p.Stay)


def test_equal_hubs_are_ordered_by_wallet_so_the_choice_is_stable() -> None:
    hubs = [_c(B, S.UNVERIFIED), _c(A, S.UNVERIFIED)]
    assert [c.wallet for c in p.rank(hubs, NONE)] == [A, B]
    assert [c.wallet for c in p.rank(list(reversed(hubs)), NONE)] == [A, B]


def test_pins_forbids_floor_and_closed_offers() -> None:
    hubs = [_c(A, S.SAFE, 500), _c(B, S.UNVERIFIED, 50), _c(C, S.CHECKED, 900, open_=False)]
    pinned = p.PolicyParams(pinned=frozenset({B}))
    assert [c.wallet for c in p.rank(hubs, pinned)] == [B]
    assert p.excluded(hubs[0], pinned) == "not in worker.hubs_pin"
    forbid = p.PolicyParams(forbidden=frozenset({A}))
    assert [c.wallet for c in p.rank(hubs, forbid)] == [B]
    assert p.excluded(hubs[0], forbid) == "forbidden by worker.hubs_forbid"
    floor = p.PolicyParams(min_pay_per_hour=100)
    assert [c.wallet for c in p.rank(hubs, floor)] == [A]
    assert "below worker.min_pay_per_hour" in (p.excluded(hubs[1], floor) or "")
    assert p.excluded(hubs[2], NONE) == "takes no workers now"
    assert p.excluded(_c(D, S.SAFE, None), NONE) == "no offer heard"


def test_a_pinned_hub_nothing_can_check_is_joined_on_the_operators_word() -> None:
    pinned = p.PolicyParams(pinned=frozenset({A}))
    assert p.excluded(_c(A, S.UNKNOWN), pinned) is None
    assert p.excluded(_c(A, S.UNKNOWN), NONE) == "status unknown"
    assert p.excluded(_c(A, S.FAKE), pinned) == "status fake"  # the chain still says no


def test_a_hub_in_good_standing_is_kept_even_when_a_better_one_appears() -> None:
    better = [_c(B, S.SAFE, pay=10**9)]
    assert p.decide(A, S.UNVERIFIED, 0, better, NONE) == p.Stay("joined hub is in good standing")


@pytest.mark.parametrize("status", [S.SUSPECTED, S.FAKE])
def test_a_hub_turning_bad_is_left_once_its_tasks_end(status: S) -> None:
    others = [_c(B, S.CHECKED)]
    waiting = p.decide(A, status, 2, others, NONE)
    assert waiting == p.WaitToLeave(A, f"hub turned {status.name.lower()}; 2 task(s) still running")
    assert p.decide(A, status, 0, others, NONE) == p.Leave(A, f"hub turned {status.name.lower()}")
    # once left, the next look joins another hub, never the bad one
    after = p.decide(None, S.UNKNOWN, 0, [_c(A, status), *others], NONE)
    assert after == p.Join(B, "status checked, pays 100 per hour")


def test_a_hub_forbidden_after_joining_is_left() -> None:
    forbid = p.PolicyParams(forbidden=frozenset({A}))
    assert p.decide(A, S.SAFE, 0, [], forbid) == p.Leave(A, "forbidden by worker.hubs_forbid")


def test_params_refuse_a_hub_pinned_and_forbidden() -> None:
    with pytest.raises(ValueError, match="pinned and forbidden both hold"):
        p.PolicyParams(pinned=frozenset({A}), forbidden=frozenset({A})).validate()
    with pytest.raises(ValueError, match="min_pay_per_hour"):
        p.PolicyParams(min_pay_per_hour=-1).validate()


def test_a_warned_hub_is_not_joined_and_a_warning_makes_the_worker_leave() -> None:
    warned = p.Candidate(A, S.SAFE, 1_000, True, warned=True)
    assert p.excluded(warned, NONE) == p.WARNED
    # the warned hub pays more and is safe; the unwarned one is joined all the same
    assert p.decide(None, S.UNKNOWN, 0, [warned, _c(B, S.UNVERIFIED)], NONE) == p.Join(
        B, "status unverified, pays 100 per hour"
    )
    assert isinstance(p.decide(None, S.UNKNOWN, 0, [warned], NONE), p.Stay)
    # joined: a warning is left like a bad status, once the running tasks end
    assert p.decide(A, S.SAFE, 1, [], NONE, joined_warned=True) == p.WaitToLeave(
        A, f"{p.WARNED}; 1 task(s) still running"
    )
    assert p.decide(A, S.SAFE, 0, [], NONE, joined_warned=True) == p.Leave(A, p.WARNED)
    assert p.decide(A, S.SAFE, 0, [], NONE) == p.Stay("joined hub is in good standing")


def test_the_best_hub_is_asked_about_before_it_is_joined() -> None:
    def cand(wallet: bytes, pay: int, *, asked: bool, warned: bool = False) -> p.Candidate:
        return p.Candidate(wallet, S.UNVERIFIED, pay, True, warned=warned, asked=asked)

    # only the one to be joined is asked about, not every hub heard
    hubs = [cand(A, 500, asked=False), cand(B, 100, asked=False)]
    assert p.decide(None, S.UNKNOWN, 0, hubs, NONE) == p.Ask(
        A, "before joining it (status unverified, pays 500 per hour)"
    )
    # the answers are in and hold no warning: joined
    hubs[0] = cand(A, 500, asked=True)
    assert p.decide(None, S.UNKNOWN, 0, hubs, NONE) == p.Join(
        A, "status unverified, pays 500 per hour"
    )
    # they warn: the next best is asked about in its turn; a warned hub never is
    hubs[0] = cand(A, 500, asked=True, warned=True)
    assert p.decide(None, S.UNKNOWN, 0, hubs, NONE) == p.Ask(
        B, "before joining it (status unverified, pays 100 per hour)"
    )
    assert isinstance(p.decide(None, S.UNKNOWN, 0, [hubs[0]], NONE), p.Stay)
    # nothing joinable, nothing asked; and a joined worker asks nothing before staying
    assert p.decide(
        None, S.UNKNOWN, 0, [cand(C, 10, asked=False)], p.PolicyParams(min_pay_per_hour=100)
    ) == p.Stay("no hub to join")
    assert p.decide(A, S.SAFE, 0, [cand(B, 900, asked=False)], NONE) == p.Stay(
        "joined hub is in good standing"
    )


def test_the_ask_budget_keeps_a_failing_join_under_the_peers_question_limit() -> None:
    b = p.AskBudget()
    # a burst of six, then one a minute (60 an hour: with the poll rounds' 48, under
    # the 120 an hour the trust topic's peers take from one asker)
    assert [b.take(0.0) for _ in range(7)] == [True] * 6 + [False]
    assert b.take(59.0) is False
    assert b.take(60.0) is True and b.take(60.0) is False
    # a question that could not be sent gives its token back, up to the burst
    b.refund()
    assert b.take(60.0) is True
    for _ in range(10):
        b.refund()
    assert b.tokens == 6.0
    # an hour of looks at a 10 s check_interval asks at most burst + 60
    b = p.AskBudget()
    asked = sum(b.take(t * 10.0) for t in range(360))
    assert asked == 6 + 59
    # a clock set back refills nothing
    b = p.AskBudget(tokens=0.0, updated=1000.0)
    assert b.take(500.0) is False and b.take(500.0 + 59.0) is False
