"""The edit rules with no services: update masks, etags, and which bookings stand in the way of a lower count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from orflow_server.domain.edits import bookings_over, check_etag, mask_violations
from orflow_server.domain.errors import EtagMismatchError
from orflow_server.domain.models import Usage, etag_for

T0 = datetime(2030, 1, 1, 8, tzinfo=UTC)


def use(booking_id: int, start_hour: float, end_hour: float, quantity: int = 1) -> Usage:
    return Usage(T0 + timedelta(hours=start_hour), T0 + timedelta(hours=end_hour), quantity, booking_id)


def test_bookings_over_names_only_those_at_the_busy_moments() -> None:
    usages = [use(1, 0, 2), use(2, 1, 3), use(3, 2.5, 4), use(4, 5, 6, quantity=2)]
    # Peak 2 at 1-2 h (bookings 1 and 2), at 2.5-3 h (2 and 3), and at 5-6 h (booking 4 alone, 2 units).
    assert bookings_over(usages, 2, T0) == (2, [])
    assert bookings_over(usages, 1, T0) == (2, [1, 2, 3, 4])
    assert bookings_over([use(1, 0, 2), use(2, 2, 4)], 1, T0) == (1, [])  # back to back never overlap


def test_bookings_over_counts_from_now_on() -> None:
    usages = [use(1, 0, 2), use(2, 1, 3), use(3, 4, 5)]
    assert bookings_over(usages, 1, T0 + timedelta(hours=2)) == (1, [])  # booking 1 has ended
    assert bookings_over(usages, 0, T0 + timedelta(hours=2.5)) == (1, [2, 3])
    assert bookings_over([], 0, T0) == (0, [])


def test_mask_violations_name_each_bad_path_once() -> None:
    violations = mask_violations(["name", "id", "colour", "name"], editable={"name"}, output_only={"id"})
    assert [(v.field, v.description.split(" ", 1)[1]) for v in violations] == [
        ("update_mask.paths[1]", "is output only and cannot be changed"),
        ("update_mask.paths[2]", "is not a field that can be changed (name)"),
        ("update_mask.paths[3]", "is listed twice"),
    ]
    assert mask_violations(["name"], editable={"name"}, output_only={"id"}) == []


def test_an_empty_etag_skips_the_check_and_a_stale_one_names_the_current() -> None:
    check_etag("", revision=3, resource="room", resource_id=7)
    check_etag(etag_for(3), revision=3, resource="room", resource_id=7)
    with pytest.raises(EtagMismatchError) as caught:
        check_etag(etag_for(2), revision=3, resource="room", resource_id=7)
    assert caught.value.metadata == {"resource": "room", "id": "7", "etag": etag_for(3)}
    assert etag_for(0) == ""
