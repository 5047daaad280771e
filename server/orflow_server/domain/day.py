"""The day of surgery: which state a CONFIRMED booking may move to, from which, and what an overrun is."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from .errors import (
    BookingNotCheckedInError,
    BookingNotConfirmedError,
    BookingNotInProgressError,
    FailedPreconditionError,
)
from .models import BookingStatus


class Stamp(enum.Enum):
    """Which actual time a step records."""

    NONE = "NONE"
    START = "START"
    END = "END"


@dataclass(frozen=True)
class DayStep:
    """One allowed transition: from exactly one state to another, refused with `error` from any other."""

    source: BookingStatus
    target: BookingStatus
    stamp: Stamp
    error: type[FailedPreconditionError]


CHECK_IN = DayStep(BookingStatus.CONFIRMED, BookingStatus.CHECKED_IN, Stamp.NONE, BookingNotConfirmedError)
START = DayStep(BookingStatus.CHECKED_IN, BookingStatus.IN_PROGRESS, Stamp.START, BookingNotCheckedInError)
COMPLETE = DayStep(BookingStatus.IN_PROGRESS, BookingStatus.COMPLETED, Stamp.END, BookingNotInProgressError)
NO_SHOW = DayStep(BookingStatus.CONFIRMED, BookingStatus.NO_SHOW, Stamp.NONE, BookingNotConfirmedError)

DAY_STEPS = (CHECK_IN, START, COMPLETE, NO_SHOW)


def overrun(status: BookingStatus, *, end_time: datetime, actual_end_time: datetime | None, now: datetime) -> timedelta:
    """How far a case ran past its slot's end: to its actual end once COMPLETED, to now while IN_PROGRESS.

    The booking rule keeps the scheduled times (bookings are the plan; a
    refusal cannot stop a surgery), so an overrun is reported, never enforced.
    """
    if status is BookingStatus.COMPLETED and actual_end_time is not None:
        return max(actual_end_time - end_time, timedelta(0))
    if status is BookingStatus.IN_PROGRESS:
        return max(now - end_time, timedelta(0))
    return timedelta(0)
