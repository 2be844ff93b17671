"""The as-of rule, pure: at, before, between and after observations, with and without valid_to."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from app.domain import asof


@dataclass(frozen=True)
class Obs:
    observation_id: int
    valid_from: dt.datetime
    valid_to: dt.datetime | None = None
    group: str = "g"


def d(day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2025, 1, day, hour, tzinfo=dt.UTC)


A = Obs(1, d(10))  # open-ended
B = Obs(2, d(20), valid_to=d(25))  # a period
C = Obs(3, d(28))


def ids(items: list[Obs], at: dt.datetime) -> list[int]:
    return [o.observation_id for o in asof.in_force(items, at, key=lambda o: o.group)]


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (d(9), []),  # before anything
        (d(10), [1]),  # exactly at valid_from: in force
        (d(15), [1]),  # between A and B
        (d(20), [2]),  # B replaces A at its valid_from
        (d(24, 23), [2]),  # inside B's period
        (d(25), []),  # at B's valid_to: expired (half-open), and A does not come back
        (d(27), []),  # between B's end and C
        (d(28), [3]),
        (d(31), [3]),  # after the last: still in force (open-ended)
    ],
)
def test_in_force(at: dt.datetime, expected: list[int]) -> None:
    assert ids([C, A, B], at) == expected


def test_groups_are_independent() -> None:
    other = Obs(9, d(1), group="other")
    assert sorted(ids([A, B, other], d(21))) == [2, 9]


def test_tie_on_valid_from_the_later_record_wins() -> None:
    first, second = Obs(1, d(10)), Obs(2, d(10))
    assert ids([second, first], d(11)) == [2]


def test_validity_until_matches_in_force() -> None:
    ordered = asof.chronological([A, B, C])
    assert asof.validity_until(ordered) == [d(20), d(25), None]
    # the interval rule and the pick-latest rule agree at every hour of the month
    for day in range(1, 32):
        for hour in (0, 12):
            at = d(day, hour)
            by_interval = [
                o.observation_id
                for o, until in zip(ordered, asof.validity_until(ordered), strict=True)
                if o.valid_from <= at and (until is None or at < until)
            ]
            assert by_interval == ids(ordered, at)
