"""The hub's reservations in virtual time: one consumer per slot, expiry, deals
occupying slots, caps, and what a restarted hub (no reservations) accepts."""

from __future__ import annotations

import pytest

from p2pnode.market.reservations import ReservationParams, Reservations

A, B, C = b"\xaa" * 20, b"\xbb" * 20, b"\xcc" * 20
ASK1, ASK2 = b"\x01" * 32, b"\x02" * 32


def test_two_consumers_cannot_take_one_slot() -> None:
    r = Reservations(ReservationParams(ttl=30))
    first = r.reserve("s1", ASK1, A, now=100)
    assert first.ok and first.until == 130
    second = r.reserve("s1", ASK1, B, now=101)
    assert not second.ok and second.reason == "slot reserved by another consumer"
    again = r.reserve("s1", ASK1, A, now=110)  # the holder asking again keeps its lease
    assert again.ok and again.until == 130
    assert r.check_proposal("s1", ASK1, B, now=111).reason == "slot reserved by another consumer"
    assert r.check_proposal("s1", ASK1, A, now=111).ok


def test_a_reservation_without_a_proposal_expires() -> None:
    r = Reservations(ReservationParams(ttl=30))
    r.reserve("s1", ASK1, A, now=100)
    assert r.next_deadline() == 130
    assert r.expire(129.9) == []
    [gone] = r.expire(130)
    assert gone.consumer == A and len(r) == 0 and r.expired == 1
    assert r.next_deadline() is None
    assert r.reserve("s1", ASK1, B, now=130).ok


def test_expiry_happens_on_the_next_call_too() -> None:
    r = Reservations(ReservationParams(ttl=5))
    r.reserve("s1", ASK1, A, now=0)
    assert r.reserve("s1", ASK1, B, now=5).ok  # no separate expire() needed


def test_a_deal_occupies_the_slot_until_it_ends() -> None:
    r = Reservations()
    r.reserve("s1", ASK1, A, now=0)
    r.occupy("s1", 7)
    assert r.get("s1") is None and r.occupied_by("s1") == 7
    assert r.reserve("s1", ASK2, B, now=1).reason == "slot taken by deal 7"
    assert r.check_proposal("s1", ASK1, A, now=1).reason == "slot taken by deal 7"
    assert not r.vacate("s1", 8)  # another deal's end does not free it
    assert r.vacate("s1", 7) and r.occupied_by("s1") is None
    assert r.reserve("s1", ASK2, B, now=2).ok


def test_a_restarted_hub_accepts_a_proposal_for_a_free_slot() -> None:
    r = Reservations()
    assert r.check_proposal("s1", ASK1, A, now=0).ok  # nothing reserved: first on chain wins
    r.occupy("s1", 1)
    assert not r.check_proposal("s1", ASK1, B, now=0).ok


def test_reservation_for_another_ask_of_the_slot() -> None:
    r = Reservations()
    r.reserve("s1", ASK1, A, now=0)
    assert r.check_proposal("s1", ASK2, A, now=1).reason.startswith("reservation is for another")


def test_caps_per_consumer_and_in_total() -> None:
    r = Reservations(ReservationParams(ttl=10, max_reservations=3, max_per_consumer=2))
    assert r.reserve("s1", ASK1, A, 0).ok and r.reserve("s2", ASK1, A, 0).ok
    assert r.reserve("s3", ASK1, A, 0).reason == "at most 2 reservations each"
    assert r.reserve("s3", ASK1, B, 0).ok
    assert r.reserve("s4", ASK1, C, 0).reason == "too many reservations at this hub"
    r.release("s1")
    assert r.reserve("s4", ASK1, C, 0).ok


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"ttl": 0.5}, "ttl"),
        ({"max_reservations": 0}, "max_reservations"),
        ({"max_per_consumer": 0}, "max_per_consumer"),
    ],
)
def test_params_name_the_bound(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        ReservationParams(**kwargs).validate()  # type: ignore[arg-type]
