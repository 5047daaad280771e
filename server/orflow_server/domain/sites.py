"""Sites and their time zones: which zone names are real, a local day's window in UTC, a room's turnover bound.

A site keeps its day in its own IANA zone. The window of a local day is
[local midnight, next local midnight) converted to UTC, so it is 23 hours on
a spring-forward day and 25 on an autumn one; a fixed 24-hour window would
drop or repeat an hour of slots on exactly the days the clocks change.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

from .errors import FieldViolation

MAX_TURNOVER = timedelta(hours=24)
"""A room's turnover, like the server's default (ORFLOW_TURNOVER_MINUTES), is at most a day (0009's CHECK agrees)."""


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def is_known_time_zone(name: str) -> bool:
    """True for an IANA zone name that tzdata knows, spelt exactly ("Europe/London", not "europe/london" or "BST")."""
    return name in _known_zones()


def time_zone_violations(field: str, name: str) -> list[FieldViolation]:
    if not name:
        return [FieldViolation(field, "is required (an IANA time zone such as Asia/Kolkata)")]
    if not is_known_time_zone(name):
        return [FieldViolation(field, f"{name[:64]!r} is not an IANA time zone known to tzdata (e.g. Europe/London)")]
    return []


def turnover_violations(field: str, turnover: timedelta) -> list[FieldViolation]:
    if turnover < timedelta(0):
        return [FieldViolation(field, "must not be negative")]
    if turnover > MAX_TURNOVER:
        return [FieldViolation(field, "must be at most 24 hours")]
    if turnover % timedelta(seconds=1):
        return [FieldViolation(field, "must be a whole number of seconds")]
    return []


def local_day_window(day: date, time_zone: str) -> tuple[datetime, datetime]:
    """[local midnight of `day`, local midnight of the next day) in `time_zone`, as UTC instants.

    A zone whose clocks jump at midnight has no 00:00 that day; fold=0 then
    maps the missing wall time forward, as zoneinfo does, to the first instant
    of the day.
    """
    zone = ZoneInfo(time_zone)
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)
