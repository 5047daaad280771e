"""What SQL calls an active booking: the one definition every query here uses.

A PENDING, CONFIRMED, CHECKED_IN, IN_PROGRESS or COMPLETED booking holds its
slot, room, surgeon, patient and equipment (domain.models.ACTIVE_STATUSES).
The clause is spelt exactly as the partial indexes and EXCLUDE constraints of
migration 0007 (which widened 0001's) spell their
predicate, and it is literal SQL, never a $n parameter: PostgreSQL uses a
partial index only when it can prove at planning time that the query's WHERE
implies the index's predicate, which it cannot do for a parameter in a
generic plan. Migrations keep their own copies (an applied migration is
never edited); tests/db/test_active.py checks the two agree and that the
conflict checks still read through those indexes.
"""

from __future__ import annotations

from ..domain.models import ACTIVE_STATUSES, BookingStatus

ACTIVE_STATUS_LIST = ", ".join(f"'{status.value}'" for status in BookingStatus if status in ACTIVE_STATUSES)
"""The active statuses as a SQL list, in the enum's order: 'PENDING', 'CONFIRMED', 'CHECKED_IN', ...."""


def is_active(alias: str = "") -> str:
    """The clause `status IN ('PENDING', 'CONFIRMED', ...)` for the bookings row named `alias` (or unqualified)."""
    column = f"{alias}.status" if alias else "status"
    return f"{column} IN ({ACTIVE_STATUS_LIST})"
