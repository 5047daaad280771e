"""Bookings: the booking transaction (one server-side function), confirm, cancel and reads.

Lock order, everywhere: the slot row, then its room, its surgeon, its
equipment types by ascending id, and the patient (an advisory lock). Every booking transaction locks one slot and
then resources in this single total order, so two of them can wait on each
other but never in a cycle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from ..domain.access import Actor
from ..domain.day import DayStep, Stamp
from ..domain.errors import FieldViolation, RequestIdReusedError
from ..domain.filters import BookingFilters
from ..domain.models import Booking, BookingStatus, CancellationReason, FailureReason, Site
from .connection import Conn
from .errors import translate
from .where import Where

# Namespace of the patient advisory locks (the first key of the two-key form); orflow_book() uses it.
PATIENT_LOCK_SPACE = 7_406_115
# The one-key advisory lock bulk expiry takes (one-key and two-key locks never collide).
_OVERDUE_SWEEP_LOCK = 7_406_116

# The site of a booking's room (bookings.room_id, or the slot's room for a row without one), as one JSON array.
_SITE_OF = (
    "(SELECT json_build_array(st.id, st.name, st.display_name, st.time_zone)"
    " FROM rooms r JOIN sites st ON st.id = r.site_id WHERE r.id = {room_id})"
)
BOOKING_COLUMNS = (
    "id, slot_id, patient_id, status, failure_reason, create_time, expire_time, update_time, request_id,"
    " cancellation_reason, cancellation_note, cancelled_by, actual_start_time, actual_end_time, end_time, "
    + _SITE_OF.format(room_id="bookings.room_id")
    + " AS site"
)


def booking_from_row(row: asyncpg.Record) -> Booking:
    """A booking from a row of BOOKING_COLUMNS (orflow_book()'s rows lack the day-of-surgery columns)."""
    reason = row["failure_reason"]
    cancellation = row.get("cancellation_reason")
    return Booking(
        id=row["id"],
        slot_id=row["slot_id"],
        patient_id=row["patient_id"],
        status=BookingStatus(row["status"]),
        failure_reason=FailureReason(reason) if reason else None,
        create_time=row["create_time"],
        expire_time=row["expire_time"],
        update_time=row["update_time"],
        request_id=row["request_id"] or "",
        cancellation_reason=CancellationReason(cancellation) if cancellation else None,
        cancellation_note=row.get("cancellation_note") or "",
        cancelled_by=row.get("cancelled_by") or "",
        actual_start_time=row.get("actual_start_time"),
        actual_end_time=row.get("actual_end_time"),
        slot_end_time=row.get("end_time"),
        site=_site_from_json(row.get("site")),
    )


def _site_from_json(value: str | None) -> Site | None:
    if value is None:
        return None
    site_id, name, display_name, time_zone = json.loads(value)
    return Site(id=site_id, name=name, display_name=display_name, time_zone=time_zone)


@dataclass(frozen=True)
class Refusal:
    """Why the booking function refused, with its details (codes in migration 0006)."""

    code: str
    details: dict[str, Any]


@dataclass(frozen=True)
class Hold:
    """What the booking function made or found: a new hold, or a replayed request's earlier booking."""

    booking: Booking
    is_new: bool
    clock: datetime


REFUSED = "ORF01"  # the SQLSTATE orflow_book() (and the other functions of 0006/0007) raise a refusal with


async def hold_slot(
    conn: Conn,
    *,
    slot_id: int,
    patient_id: str,
    request_id: str,
    actor: Actor,
    turnover: timedelta,
    hold_ttl: timedelta,
) -> Hold | Refusal:
    """The whole booking transaction (the lock order above) in ONE statement: orflow_book(), migration 0006.

    Called outside an explicit transaction, the statement is its own
    implicit transaction: one round trip, BEGIN and COMMIT included. A
    refusal is raised inside the function, so everything it wrote on the way
    (overdue holds failed) rolls back with it. `turnover` is the default for
    a room without its own (migration 0009). The booking comes back with its
    site, read in the same statement.
    """
    try:
        row = await conn.fetchrow(
            "SELECT h.*, "
            + _SITE_OF.format(room_id="(SELECT sl.room_id FROM slots sl WHERE sl.id = h.slot_id)")
            + " AS site FROM orflow_book($1, $2, $3, $4, $5, $6, $7) h",
            slot_id,
            patient_id,
            request_id or None,
            actor.subject,
            actor.role.value,
            turnover,
            hold_ttl,
        )
    except asyncpg.PostgresError as exc:
        return refusal_or_raise(exc)
    assert row is not None
    return Hold(booking_from_row(row), row["outcome"] == "BOOKED", row["clock"])


@dataclass(frozen=True)
class Moved:
    """What the reschedule function did: moved the booking, or found a replayed request's result."""

    booking_id: int
    is_new: bool


async def move_booking(
    conn: Conn,
    *,
    booking_id: int,
    slot_id: int,
    request_id: str,
    actor: Actor,
    turnover: timedelta,
) -> Moved | Refusal:
    """RescheduleBooking in ONE statement: orflow_reschedule(), migration 0007 (lock order there; 0009: the room's
    own turnover, `turnover` being the default)."""
    try:
        row = await conn.fetchrow(
            "SELECT * FROM orflow_reschedule($1, $2, $3, $4, $5, $6, $7)",
            booking_id,
            slot_id,
            actor.patient_scope,
            request_id or None,
            actor.subject,
            actor.role.value,
            turnover,
        )
    except asyncpg.PostgresError as exc:
        return refusal_or_raise(exc)
    assert row is not None
    return Moved(row["booking_id"], row["outcome"] == "RESCHEDULED")


def refusal_or_raise(exc: asyncpg.PostgresError) -> Refusal:
    """A rule function's refusal (SQLSTATE ORF01) as a Refusal; any other error translated and raised."""
    if exc.sqlstate == REFUSED:
        return Refusal(str(exc.message), dict(json.loads(getattr(exc, "detail", None) or "{}")))
    error = _translated(exc)
    if error is None:
        raise exc
    raise error from exc


def _translated(exc: asyncpg.PostgresError) -> Exception | None:
    """The constraints are the backstop: what they refuse maps to the same errors as the checks."""
    if isinstance(exc, asyncpg.UniqueViolationError) and exc.constraint_name == "bookings_request_id_key":
        # The same key raced in on another slot (the slot lock only
        # serialises retries on the same slot).
        return RequestIdReusedError(
            [FieldViolation("request_id", "was already used for another booking; use a new request_id")]
        )
    if isinstance(exc, (asyncpg.UniqueViolationError, asyncpg.ExclusionViolationError, asyncpg.CheckViolationError)):
        return translate(exc)
    return None


async def fetch_booking(conn: Conn, booking_id: int) -> Booking | None:
    row = await conn.fetchrow(f"SELECT {BOOKING_COLUMNS} FROM bookings WHERE id = $1", booking_id)
    return None if row is None else booking_from_row(row)


# Names the transaction's actor for the audit trail (db/audit.py) in the same
# statement as the change: the CTE is joined, so set_config runs before the
# row is updated and the audit trigger fires at the statement's end.
_WITH_ACTOR = (
    "WITH actor AS (SELECT set_config('orflow.actor', $3, true) AS subject,"
    " set_config('orflow.actor_role', $4, true) AS role)"
)


async def confirm_pending(conn: Conn, booking_id: int, *, actor: Actor) -> Booking | None:
    """Compare-and-set: confirms only a PENDING hold not yet past expire_time (the actor's own, if a patient)."""
    row = await conn.fetchrow(
        f"""
        {_WITH_ACTOR}
        UPDATE bookings SET status = 'CONFIRMED', update_time = clock_timestamp()
        FROM actor
        WHERE id = $1 AND status = 'PENDING' AND expire_time > clock_timestamp()
          AND ($2::text IS NULL OR patient_id = $2)
        RETURNING {BOOKING_COLUMNS}
        """,
        booking_id,
        actor.patient_scope,
        actor.subject,
        actor.role.value,
    )
    return None if row is None else booking_from_row(row)


async def extend_pending(
    conn: Conn, booking_id: int, *, by: timedelta, request_id: str, actor: Actor
) -> Booking | None:
    """Compare-and-set: moves a live, never-extended PENDING hold's expire_time `by` later (the actor's own, if a
    patient), recording when and with which request_id. A rival that fails the hold as overdue in the same
    instant takes the same row lock: whichever commits first wins and the other finds no row to change."""
    row = await conn.fetchrow(
        f"""
        {_WITH_ACTOR}
        UPDATE bookings SET expire_time = expire_time + $5::interval, update_time = clock_timestamp(),
                            hold_extended_at = clock_timestamp(), hold_extension_request_id = nullif($6, '')
        FROM actor
        WHERE id = $1 AND status = 'PENDING' AND expire_time > clock_timestamp() AND hold_extended_at IS NULL
          AND ($2::text IS NULL OR patient_id = $2)
        RETURNING {BOOKING_COLUMNS}
        """,
        booking_id,
        actor.patient_scope,
        actor.subject,
        actor.role.value,
        by,
        request_id,
    )
    return None if row is None else booking_from_row(row)


async def hold_extension_request_id(conn: Conn, booking_id: int) -> str | None:
    """The request_id of the hold's extension ("" if it had none); None if it was never extended."""
    row = await conn.fetchrow(
        "SELECT hold_extended_at, hold_extension_request_id FROM bookings WHERE id = $1", booking_id
    )
    if row is None or row["hold_extended_at"] is None:
        return None
    return str(row["hold_extension_request_id"] or "")


async def cancel_active(
    conn: Conn, booking_id: int, *, actor: Actor, reason: CancellationReason | None, note: str
) -> Booking | None:
    """Compare-and-set: cancels a CONFIRMED or CHECKED_IN booking or a live PENDING hold, recording why and by whom.

    A patient may cancel only its own, and only before the day of surgery
    has begun for it (CHECKED_IN is staff's to cancel).
    """
    row = await conn.fetchrow(
        f"""
        {_WITH_ACTOR}
        UPDATE bookings SET status = 'CANCELLED', update_time = clock_timestamp(),
                            cancellation_reason = $5, cancellation_note = nullif($6, ''), cancelled_by = $3
        FROM actor
        WHERE id = $1 AND (status = 'CONFIRMED'
                           OR (status = 'CHECKED_IN' AND $2::text IS NULL)
                           OR (status = 'PENDING' AND expire_time > clock_timestamp()))
          AND ($2::text IS NULL OR patient_id = $2)
        RETURNING {BOOKING_COLUMNS}
        """,
        booking_id,
        actor.patient_scope,
        actor.subject,
        actor.role.value,
        None if reason is None else reason.value,
        note,
    )
    return None if row is None else booking_from_row(row)


async def advance_day_state(conn: Conn, booking_id: int, step: DayStep, *, actor: Actor) -> Booking | None:
    """Compare-and-set: moves the booking from step.source to step.target, stamping the actual start or end."""
    row = await conn.fetchrow(
        f"""
        {_WITH_ACTOR}
        UPDATE bookings SET status = $5, update_time = clock_timestamp(),
            actual_start_time = CASE WHEN $7 THEN clock_timestamp() ELSE actual_start_time END,
            actual_end_time = CASE WHEN $8 THEN clock_timestamp() ELSE actual_end_time END
        FROM actor
        WHERE id = $1 AND status = $6 AND ($2::text IS NULL OR patient_id = $2)
        RETURNING {BOOKING_COLUMNS}
        """,
        booking_id,
        actor.patient_scope,
        actor.subject,
        actor.role.value,
        step.target.value,
        step.source.value,
        step.stamp is Stamp.START,
        step.stamp is Stamp.END,
    )
    return None if row is None else booking_from_row(row)


# Status as it reads now: an overdue PENDING hold reads FAILED.
_STATUS_CLAUSES: dict[BookingStatus, str] = {
    BookingStatus.PENDING: "(status = 'PENDING' AND expire_time > now())",
    BookingStatus.FAILED: "(status = 'FAILED' OR (status = 'PENDING' AND expire_time <= now()))",
    BookingStatus.CONFIRMED: "status = 'CONFIRMED'",
    BookingStatus.CANCELLED: "status = 'CANCELLED'",
    BookingStatus.CHECKED_IN: "status = 'CHECKED_IN'",
    BookingStatus.IN_PROGRESS: "status = 'IN_PROGRESS'",
    BookingStatus.COMPLETED: "status = 'COMPLETED'",
    BookingStatus.NO_SHOW: "status = 'NO_SHOW'",
}


async def list_bookings(conn: Conn, filters: BookingFilters, *, before_id: int | None, limit: int) -> list[Booking]:
    """One keyset page of bookings, newest (highest id) first."""
    where = Where()
    if filters.status is not None:
        where.add(_STATUS_CLAUSES[filters.status])
    if filters.patient_id:
        where.add(f"patient_id = {where.bind(filters.patient_id)}")
    if filters.slot_id:
        where.add(f"slot_id = {where.bind(filters.slot_id)}")
    if filters.slot_ids:
        where.add(f"slot_id = ANY({where.bind(list(filters.slot_ids))}::bigint[])")
    if before_id is not None:
        where.add(f"id < {where.bind(before_id)}")
    sql = f"SELECT {BOOKING_COLUMNS} FROM bookings {where.sql()} ORDER BY id DESC LIMIT {where.bind(limit)}"
    return [booking_from_row(row) for row in await conn.fetch(sql, *where.params)]


async def seconds_until_expiry(conn: Conn, booking_id: int) -> float | None:
    """Seconds (by the database clock) until a PENDING hold expires; None if it is not PENDING."""
    value = await conn.fetchval(
        "SELECT extract(epoch FROM expire_time - clock_timestamp())::float8 FROM bookings"
        " WHERE id = $1 AND status = 'PENDING'",
        booking_id,
    )
    return None if value is None else float(value)


async def fail_overdue_hold(conn: Conn, booking_id: int) -> float | None:
    """Compare-and-set: fails the hold only if still PENDING and overdue; returns its lag, or None."""
    lag = await conn.fetchval(
        """
        UPDATE bookings SET status = 'FAILED', failure_reason = 'HOLD_EXPIRED', update_time = clock_timestamp()
        WHERE id = $1 AND status = 'PENDING' AND expire_time <= clock_timestamp()
        RETURNING extract(epoch FROM update_time - expire_time)::float8
        """,
        booking_id,
    )
    return None if lag is None else float(lag)


async def fail_all_overdue_holds(conn: Conn, *, is_waiting: bool = True) -> list[float] | None:
    """Fails every overdue hold; returns each one's lag (seconds past expire_time).

    Two of these at once could lock the same rows in different orders and
    deadlock, so they take turns on one advisory lock. With `is_waiting`
    False (an expiry job that already holds its own hold's row lock) it does
    not wait for its turn: it returns None and leaves the work to whoever has it.
    """
    if is_waiting:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _OVERDUE_SWEEP_LOCK)
    elif not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _OVERDUE_SWEEP_LOCK):
        return None
    rows = await conn.fetch(
        """
        UPDATE bookings SET status = 'FAILED', failure_reason = 'HOLD_EXPIRED', update_time = clock_timestamp()
        WHERE id IN (SELECT id FROM bookings WHERE status = 'PENDING' AND expire_time <= clock_timestamp()
                     ORDER BY id FOR UPDATE)  -- ascending id, as orflow_check_slot_free locks them (0008)
        RETURNING extract(epoch FROM update_time - expire_time)::float8 AS lag
        """
    )
    return [float(r["lag"]) for r in rows]
