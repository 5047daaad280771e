"""A site's local day as a UTC window (23 and 25 hours when the clocks change), and which zone names are real."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from orflow_server.domain.sites import is_known_time_zone, local_day_window, turnover_violations


@pytest.mark.parametrize(
    ("day", "zone", "start", "hours"),
    [
        pytest.param(date(2027, 3, 28), "Europe/London", "2027-03-28T00:00", 23, id="london-spring-forward"),
        pytest.param(date(2027, 10, 31), "Europe/London", "2027-10-30T23:00", 25, id="london-autumn-back"),
        pytest.param(date(2027, 7, 1), "Europe/London", "2027-06-30T23:00", 24, id="london-summer"),
        pytest.param(date(2027, 3, 28), "Asia/Kolkata", "2027-03-27T18:30", 24, id="kolkata-no-dst"),
        pytest.param(date(2027, 3, 14), "America/New_York", "2027-03-14T05:00", 23, id="new-york-spring"),
        pytest.param(date(2027, 4, 4), "Australia/Sydney", "2027-04-03T13:00", 25, id="sydney-autumn-in-april"),
    ],
)
def test_a_local_day_runs_from_local_midnight_to_the_next(day: date, zone: str, start: str, hours: int) -> None:
    first, end = local_day_window(day, zone)
    assert first == datetime.fromisoformat(start).replace(tzinfo=UTC)
    assert end - first == timedelta(hours=hours)


def test_a_day_whose_midnight_does_not_exist_starts_at_its_first_instant() -> None:
    """America/Santiago springs forward at local midnight (2027-09-05 00:00 becomes 01:00)."""
    first, end = local_day_window(date(2027, 9, 5), "America/Santiago")
    assert first == datetime(2027, 9, 5, 4, 0, tzinfo=UTC)
    assert end - first == timedelta(hours=23)


@pytest.mark.parametrize(
    ("name", "known"),
    [
        ("Europe/London", True),
        ("Asia/Kolkata", True),
        ("UTC", True),
        ("europe/london", False),
        ("BST", False),
        ("", False),
        ("Nowhere/Land", False),
    ],
)
def test_only_iana_names_tzdata_knows_are_time_zones(name: str, known: bool) -> None:
    assert is_known_time_zone(name) is known


@pytest.mark.parametrize(
    ("turnover", "fields"),
    [
        (timedelta(0), []),
        (timedelta(minutes=45), []),
        (timedelta(hours=24), []),
        (timedelta(hours=24, seconds=1), ["turnover"]),
        (timedelta(seconds=-1), ["turnover"]),
        (timedelta(seconds=1, microseconds=5), ["turnover"]),
    ],
)
def test_a_rooms_turnover_is_bounded(turnover: timedelta, fields: list[str]) -> None:
    assert [v.field for v in turnover_violations("turnover", turnover)] == fields
