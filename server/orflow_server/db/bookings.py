"""Bookings: the statements of the booking transaction, confirm, cancel and reads.

Lock order, everywhere: the slot row, then its room, its surgeon, its
equipment types by ascending id, and the patient (an advisory lock). Every booking transaction locks one slot and
then resources in this single total order, so two of them can wait on each
other but never in a cycle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from ..domain.access import Actor
from ..domain.errors import FieldViolation, RequestIdReusedError
from ..domain.filters import BookingFilters
from ..domain.models import Booking, BookingStatus, EquipmentNeed, FailureReason, Usage
from .active import is_active
from .connection import Conn
from .errors import translate
from .where import Where

# Namespace of the patient advisory locks (the first key of the two-key form).
_PATIENT_LOCK_SPACE = 7_406_115
# The one-key advisory lock bulk expiry takes (one-key and two-key locks never collide).
_OVERDUE_SWEEP_LOCK = 7_406_116

_BOOKING_COLUMNS = "id, slot_id, patient_id, status, failure_reason, create_time, expire_time, update_time, request_id"


@dataclass(frozen=True)
class LockedSlot:
    """The facts of a slot that a booking copies, read under the slot's row lock."""

    id: int
    room_id: int
    doctor_id: int
    start_time: datetime
    end_time: datetime
    needs: tuple[EquipmentNeed, ...]


@dataclass(frozen=True)
class Conflicts:
    is_slot_taken: bool
    is_room_busy: bool
    is_surgeon_busy: bool
    is_patient_busy: bool


def booking_from_row(row: asyncpg.Record) -> Booking:
    reason = row["failure_reason"]
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
    )


async def lock_slot(conn: Conn, slot_id: int) -> LockedSlot | None:
    row = await conn.fetchrow(
        """
        SELECT s.id, s.room_id, s.doctor_id, s.start_time, s.end_time,
               ARRAY(SELECT se.equipment_id FROM slot_equipment se
                     WHERE se.slot_id = s.id ORDER BY se.equipment_id) AS equipment_ids,
               ARRAY(SELECT se.quantity FROM slot_equipment se
                     WHERE se.slot_id = s.id ORDER BY se.equipment_id) AS quantities
        FROM slots s WHERE s.id = $1
        FOR UPDATE OF s
        """,
        slot_id,
    )
    if row is None:
        return None
    needs = tuple(
        EquipmentNeed(equipment_id=e, quantity=q) for e, q in zip(row["equipment_ids"], row["quantities"], strict=True)
    )
    return LockedSlot(row["id"], row["room_id"], row["doctor_id"], row["start_time"], row["end_time"], needs)


async def lock_resources(conn: Conn, slot: LockedSlot, *, patient_id: str, actor: Actor) -> dict[int, tuple[str, int]]:
    """Locks the room, the surgeon, the equipment rows and the patient; returns equipment id → (name, quantity).

    One round trip: the four locks are uncorrelated sub-selects, which
    PostgreSQL runs in target-list order, so the lock order stays room,
    surgeon, equipment (by id), patient. A patient has no row, so a
    transaction-scoped advisory lock on a hash of the id stands in for one
    (a collision only makes two patients take turns). The same statement
    names the transaction's actor for the audit trail (db/audit.py), before
    its first write, so the booking transaction pays no extra round trip.
    """
    row = await conn.fetchrow(
        """
        SELECT (SELECT 1 FROM rooms WHERE id = $1 FOR UPDATE) AS room,
               (SELECT 1 FROM doctors WHERE id = $2 FOR UPDATE) AS surgeon,
               (SELECT coalesce(array_agg(json_build_array(e.id, e.name, e.quantity)::text ORDER BY e.id), '{}')
                FROM (SELECT id, name, quantity FROM equipment WHERE id = ANY($3::bigint[])
                      ORDER BY id FOR UPDATE) e) AS equipment,
               pg_advisory_xact_lock($4, hashtext($5)) AS patient,
               set_config('orflow.actor', $6, true) AS actor,
               set_config('orflow.actor_role', $7, true) AS actor_role
        """,
        slot.room_id,
        slot.doctor_id,
        [need.equipment_id for need in slot.needs],
        _PATIENT_LOCK_SPACE,
        patient_id,
        actor.subject,
        actor.role.value,
    )
    assert row is not None
    items = (json.loads(item) for item in row["equipment"])
    return {int(e_id): (str(name), int(quantity)) for e_id, name, quantity in items}


async def find_by_request_id(conn: Conn, patient_id: str, request_id: str) -> Booking | None:
    row = await conn.fetchrow(
        f"SELECT {_BOOKING_COLUMNS} FROM bookings WHERE patient_id = $1 AND request_id = $2",
        patient_id,
        request_id,
    )
    return None if row is None else booking_from_row(row)


async def expire_overdue_holds(conn: Conn, slot: LockedSlot, *, turnover: timedelta) -> datetime:
    """Fails every overdue hold overlapping the slot's room window; returns the clock.

    An overdue hold counts as free. Failing it here, under its row lock,
    before the checks read, means a confirm racing this transaction either
    committed first (and the checks see CONFIRMED) or finds it FAILED: never
    both. The window covers the slot's room time with turnover, which contains
    every interval the surgeon, patient and equipment checks look at.
    """
    now: datetime = await conn.fetchval(
        """
        WITH clock AS (SELECT clock_timestamp() AS now),
        expired AS (  -- a data-modifying CTE always runs to completion
            UPDATE bookings b
            SET status = 'FAILED', failure_reason = 'HOLD_EXPIRED', update_time = clock.now
            FROM clock
            WHERE b.status = 'PENDING' AND b.expire_time <= clock.now
              AND b.room_during && tstzrange($1, $2, '[)')
        )
        SELECT now FROM clock
        """,
        slot.start_time,
        slot.end_time + turnover,
    )
    return now


_FIND_CONFLICTS = f"""
SELECT
  EXISTS (SELECT 1 FROM bookings
          WHERE slot_id = $1 AND {is_active()}) AS slot_taken,
  EXISTS (SELECT 1 FROM bookings
          WHERE room_id = $2 AND {is_active()}
            AND room_during && tstzrange($4, $6, '[)')) AS room_busy,
  EXISTS (SELECT 1 FROM bookings
          WHERE doctor_id = $3 AND {is_active()}
            AND during && tstzrange($4, $5, '[)')) AS surgeon_busy,
  EXISTS (SELECT 1 FROM bookings
          WHERE patient_id = $7 AND {is_active()}
            AND during && tstzrange($4, $5, '[)')) AS patient_busy
"""


async def find_conflicts(conn: Conn, slot: LockedSlot, *, patient_id: str, turnover: timedelta) -> Conflicts:
    """Which active bookings stand in the way (read after expire_overdue_holds)."""
    row = await conn.fetchrow(
        _FIND_CONFLICTS,
        slot.id,
        slot.room_id,
        slot.doctor_id,
        slot.start_time,
        slot.end_time,
        slot.end_time + turnover,
        patient_id,
    )
    assert row is not None
    return Conflicts(row["slot_taken"], row["room_busy"], row["surgeon_busy"], row["patient_busy"])


_EQUIPMENT_USAGE = f"""
SELECT se.equipment_id, b.start_time, b.end_time, se.quantity
FROM bookings b JOIN slot_equipment se ON se.slot_id = b.slot_id
WHERE {is_active("b")} AND b.during && tstzrange($1, $2, '[)')
  AND se.equipment_id = ANY($3::bigint[])
"""


async def equipment_usage(conn: Conn, slot: LockedSlot) -> dict[int, list[Usage]]:
    """Active bookings' use of the slot's equipment types within the slot's interval."""
    usage: dict[int, list[Usage]] = {need.equipment_id: [] for need in slot.needs}
    if not slot.needs:
        return usage
    rows = await conn.fetch(
        _EQUIPMENT_USAGE,
        slot.start_time,
        slot.end_time,
        list(usage),
    )
    for r in rows:
        usage[r["equipment_id"]].append(Usage(r["start_time"], r["end_time"], r["quantity"]))
    return usage


async def insert_booking(
    conn: Conn,
    slot: LockedSlot,
    *,
    patient_id: str,
    request_id: str,
    now: datetime,
    hold_ttl: timedelta,
    turnover: timedelta,
) -> Booking:
    try:
        row = await conn.fetchrow(
            f"""
            INSERT INTO bookings (slot_id, room_id, doctor_id, start_time, end_time, room_free_time,
                                  patient_id, request_id, status, create_time, expire_time, update_time)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'PENDING', $9, $10, $9)
            RETURNING {_BOOKING_COLUMNS}
            """,
            slot.id,
            slot.room_id,
            slot.doctor_id,
            slot.start_time,
            slot.end_time,
            slot.end_time + turnover,
            patient_id,
            request_id or None,
            now,
            now + hold_ttl,
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "bookings_request_id_key":
            # The same key raced in on another slot (the slot lock only
            # serialises retries on the same slot).
            raise RequestIdReusedError(
                [FieldViolation("request_id", "was already used for another booking; use a new request_id")]
            ) from exc
        raise (translate(exc) or exc) from exc
    except (asyncpg.ExclusionViolationError, asyncpg.CheckViolationError) as exc:
        raise (translate(exc) or exc) from exc
    assert row is not None
    return booking_from_row(row)


async def fetch_booking(conn: Conn, booking_id: int) -> Booking | None:
    row = await conn.fetchrow(f"SELECT {_BOOKING_COLUMNS} FROM bookings WHERE id = $1", booking_id)
    return None if row is None else booking_from_row(row)


async def confirm_pending(conn: Conn, booking_id: int, *, patient_scope: str | None) -> Booking | None:
    """Compare-and-set: confirms only a PENDING hold not yet past expire_time (and the patient's own, if scoped)."""
    row = await conn.fetchrow(
        f"""
        UPDATE bookings SET status = 'CONFIRMED', update_time = clock_timestamp()
        WHERE id = $1 AND status = 'PENDING' AND expire_time > clock_timestamp()
          AND ($2::text IS NULL OR patient_id = $2)
        RETURNING {_BOOKING_COLUMNS}
        """,
        booking_id,
        patient_scope,
    )
    return None if row is None else booking_from_row(row)


async def cancel_active(conn: Conn, booking_id: int, *, patient_scope: str | None) -> Booking | None:
    """Compare-and-set: cancels a CONFIRMED booking or a live PENDING hold (the patient's own, if scoped)."""
    row = await conn.fetchrow(
        f"""
        UPDATE bookings SET status = 'CANCELLED', update_time = clock_timestamp()
        WHERE id = $1 AND (status = 'CONFIRMED'
                           OR (status = 'PENDING' AND expire_time > clock_timestamp()))
          AND ($2::text IS NULL OR patient_id = $2)
        RETURNING {_BOOKING_COLUMNS}
        """,
        booking_id,
        patient_scope,
    )
    return None if row is None else booking_from_row(row)


# Status as it reads now: an overdue PENDING hold reads FAILED.
_STATUS_CLAUSES: dict[BookingStatus, str] = {
    BookingStatus.PENDING: "(status = 'PENDING' AND expire_time > now())",
    BookingStatus.FAILED: "(status = 'FAILED' OR (status = 'PENDING' AND expire_time <= now()))",
    BookingStatus.CONFIRMED: "status = 'CONFIRMED'",
    BookingStatus.CANCELLED: "status = 'CANCELLED'",
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
    if before_id is not None:
        where.add(f"id < {where.bind(before_id)}")
    sql = f"SELECT {_BOOKING_COLUMNS} FROM bookings {where.sql()} ORDER BY id DESC LIMIT {where.bind(limit)}"
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
        WHERE status = 'PENDING' AND expire_time <= clock_timestamp()
        RETURNING extract(epoch FROM update_time - expire_time)::float8 AS lag
        """
    )
    return [float(r["lag"]) for r in rows]
