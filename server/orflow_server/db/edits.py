"""Edits and retirements of rooms, surgeons, equipment types and slots (migration 0010).

Lock order, the one of db/bookings.py: slot rows (ascending id), then rooms,
surgeons and equipment types (each by ascending id), then the patient's
advisory lock. A statement with ORDER BY ... FOR UPDATE locks its rows in
that order. Table and column names below come from fixed tables in this
module, never from a caller; values are always $n parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from ..domain.access import Actor
from ..domain.edits import Retirable
from ..domain.models import Booking, CancellationReason, Usage
from .active import is_active
from .bookings import BOOKING_COLUMNS, PATIENT_LOCK_SPACE, Refusal, booking_from_row, refusal_or_raise
from .connection import Conn
from .errors import translate
from .inventory import DOCTOR_COLUMNS, EQUIPMENT_COLUMNS, ROOM_COLUMNS

_TABLES: Mapping[Retirable, tuple[str, str]] = {
    "room": ("rooms", ROOM_COLUMNS),
    "doctor": ("doctors", DOCTOR_COLUMNS),
    "equipment": ("equipment", EQUIPMENT_COLUMNS),
    "slot": (
        "slots",
        "id, room_id, doctor_id, procedure_type, start_time, end_time, revision, retire_time, cancel_time",
    ),
}
EDITABLE_COLUMNS: Mapping[Retirable, frozenset[str]] = {
    "room": frozenset({"name", "site_id", "turnover"}),
    "doctor": frozenset({"name", "specialty"}),
    "equipment": frozenset({"name", "quantity"}),
    "slot": frozenset({"procedure_type", "start_time", "end_time", "room_id", "doctor_id"}),
}

# Which slots depend on a resource, and which bookings (alias b) do.
_SLOTS_OF: Mapping[Retirable, str] = {
    "room": "room_id = $1",
    "doctor": "doctor_id = $1",
    "equipment": "id IN (SELECT slot_id FROM slot_equipment WHERE equipment_id = $1)",
    "slot": "id = $1",
}
_BOOKINGS_OF: Mapping[Retirable, str] = {
    "room": "b.room_id = $1",
    "doctor": "b.doctor_id = $1",
    "equipment": "b.slot_id IN (SELECT slot_id FROM slot_equipment WHERE equipment_id = $1)",
    "slot": "b.slot_id = $1",
}


async def lock_row(conn: Conn, kind: Retirable, resource_id: int) -> asyncpg.Record | None:
    """The resource's row, locked FOR UPDATE until the transaction ends; None if there is none."""
    table, columns = _TABLES[kind]
    return await conn.fetchrow(f"SELECT {columns} FROM {table} WHERE id = $1 FOR UPDATE", resource_id)


async def read_row(conn: Conn, kind: Retirable, resource_id: int) -> asyncpg.Record:
    """The resource's row as it is now (the caller knows it exists: rows are never deleted)."""
    table, columns = _TABLES[kind]
    row = await conn.fetchrow(f"SELECT {columns} FROM {table} WHERE id = $1", resource_id)
    assert row is not None
    return row


async def update_row(conn: Conn, kind: Retirable, resource_id: int, changes: Mapping[str, Any]) -> asyncpg.Record:
    """Sets the given editable columns; the database bumps the revision (0010) and the audit trigger records it."""
    unknown = set(changes) - EDITABLE_COLUMNS[kind]
    if unknown or not changes:
        raise ValueError(f"cannot set {sorted(unknown) or 'nothing'} on a {kind}")
    table, columns = _TABLES[kind]
    names = sorted(changes)
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    try:
        row = await conn.fetchrow(
            f"UPDATE {table} SET {assignments} WHERE id = $1 RETURNING {columns}",
            resource_id,
            *(changes[name] for name in names),
        )
    except (asyncpg.UniqueViolationError, asyncpg.CheckViolationError) as exc:
        raise (translate(exc) or exc) from exc
    assert row is not None, "update_row is called on a row the transaction has locked"
    return row


async def retire_row(conn: Conn, kind: Retirable, resource_id: int) -> None:
    table, _ = _TABLES[kind]
    await conn.execute(
        f"UPDATE {table} SET retire_time = clock_timestamp() WHERE id = $1 AND retire_time IS NULL", resource_id
    )


async def lock_dependent_slots(conn: Conn, kind: Retirable, resource_id: int) -> list[int]:
    """Locks the slots still to end that use the resource, by ascending id (the first step of the lock order)."""
    rows = await conn.fetch(
        f"SELECT id FROM slots WHERE {_SLOTS_OF[kind]} AND end_time > now() ORDER BY id FOR UPDATE", resource_id
    )
    return [r["id"] for r in rows]


@dataclass(frozen=True)
class Dependent:
    booking_id: int
    status: str


async def dependent_bookings(conn: Conn, kind: Retirable, resource_id: int) -> list[Dependent]:
    """Active bookings still to end that use the resource (a hold past its expiry no longer counts)."""
    rows = await conn.fetch(
        f"""
        SELECT b.id, b.status FROM bookings b
        WHERE {_BOOKINGS_OF[kind]} AND {is_active("b")} AND b.status <> 'COMPLETED'
          AND (b.status <> 'PENDING' OR b.expire_time > clock_timestamp()) AND b.end_time > now()
        ORDER BY b.id
        """,
        resource_id,
    )
    return [Dependent(r["id"], r["status"]) for r in rows]


async def cancel_bookings(
    conn: Conn, booking_ids: Sequence[int], *, reason: CancellationReason, note: str, actor: Actor
) -> list[Booking]:
    """Cancels those still live (rows locked by ascending id), recording why and by whom."""
    rows = await conn.fetch(
        f"""
        UPDATE bookings SET status = 'CANCELLED', update_time = clock_timestamp(),
                            cancellation_reason = $2, cancellation_note = nullif($3, ''), cancelled_by = $4
        WHERE id IN (SELECT id FROM bookings WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE)
          AND (status IN ('CONFIRMED', 'CHECKED_IN') OR (status = 'PENDING' AND expire_time > clock_timestamp()))
        RETURNING {BOOKING_COLUMNS}
        """,
        list(booking_ids),
        reason.value,
        note,
        actor.subject,
    )
    return sorted((booking_from_row(r) for r in rows), key=lambda b: b.id)


async def fail_overdue_holds_using(conn: Conn, equipment_id: int) -> int:
    """Fails the overdue holds that need this equipment type (locked by id, the order every expiry uses, 0008),
    as the booking rule does before it counts: a lower count then never leaves a lapsed hold over it."""
    status = await conn.execute(
        """
        UPDATE bookings b SET status = 'FAILED', failure_reason = 'HOLD_EXPIRED', update_time = clock_timestamp()
        WHERE b.id IN (SELECT o.id FROM bookings o JOIN slot_equipment x ON x.slot_id = o.slot_id
                       WHERE x.equipment_id = $1 AND o.status = 'PENDING' AND o.expire_time <= clock_timestamp()
                       ORDER BY o.id
                       FOR UPDATE OF o)
        """,
        equipment_id,
    )
    return int(status.split()[-1])


async def equipment_usages(conn: Conn, equipment_id: int) -> list[Usage]:
    """What active bookings still to end (live holds included, overdue ones not) use of one equipment type."""
    rows = await conn.fetch(
        f"""
        SELECT b.id, b.start_time, b.end_time, x.quantity
        FROM bookings b JOIN slot_equipment x ON x.slot_id = b.slot_id
        WHERE x.equipment_id = $1 AND {is_active("b")} AND b.end_time > now()
          AND (b.status <> 'PENDING' OR b.expire_time > now())  -- as orflow_equipment_future_peak (0010)
        ORDER BY b.id
        """,
        equipment_id,
    )
    return [Usage(start=r["start_time"], end=r["end_time"], quantity=r["quantity"], booking_id=r["id"]) for r in rows]


@dataclass(frozen=True)
class Occupant:
    """The active booking a slot has: the one a move must keep whole."""

    booking_id: int
    patient_id: str


async def occupant(conn: Conn, slot_id: int) -> Occupant | None:
    row = await conn.fetchrow(
        f"SELECT id, patient_id FROM bookings b WHERE b.slot_id = $1 AND {is_active('b')}", slot_id
    )
    return None if row is None else Occupant(row["id"], row["patient_id"])


async def lock_for_move(
    conn: Conn, *, slot_id: int, room_ids: Sequence[int], doctor_ids: Sequence[int], patient_id: str
) -> None:
    """After the slot row: the old and new rooms, surgeons, the slot's equipment types, then the patient."""
    await conn.execute("SELECT 1 FROM rooms WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE", list(room_ids))
    await conn.execute("SELECT 1 FROM doctors WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE", list(doctor_ids))
    await conn.execute(
        "SELECT 1 FROM equipment WHERE id IN (SELECT equipment_id FROM slot_equipment WHERE slot_id = $1)"
        " ORDER BY id FOR UPDATE",
        slot_id,
    )
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", PATIENT_LOCK_SPACE, patient_id)


async def defer_slot_facts(conn: Conn) -> None:
    """Lets the slot and its bookings' copies of its facts change in two statements (0010 made the key deferrable)."""
    await conn.execute("SET CONSTRAINTS bookings_slot_facts_fkey DEFERRED")


async def check_booking_fits(
    conn: Conn, *, slot_id: int, occupant: Occupant, turnover: timedelta
) -> Refusal | datetime:
    """Every booking rule for the slot's booking at the slot's (new) facts: orflow_check_slot_free (0007/0009)."""
    try:
        clock: datetime = await conn.fetchval(
            "SELECT orflow_check_slot_free($1, $2, $3, $4)", slot_id, occupant.patient_id, turnover, occupant.booking_id
        )
    except asyncpg.PostgresError as exc:
        return refusal_or_raise(exc)
    return clock


async def carry_bookings(conn: Conn, slot_id: int, *, turnover: timedelta) -> None:
    """Copies the slot's facts onto its bookings: the active one with the (new) room's turnover today (its own, else
    the default `turnover`, as the booking rule reads it), past ones keeping theirs."""
    await conn.execute(
        f"""
        UPDATE bookings b
        SET room_id = s.room_id, doctor_id = s.doctor_id, start_time = s.start_time, end_time = s.end_time,
            room_free_time = s.end_time + CASE WHEN {is_active("b")} THEN coalesce(r.turnover, $2::interval)
                                               ELSE b.room_free_time - b.end_time END
        FROM slots s JOIN rooms r ON r.id = s.room_id
        WHERE s.id = $1 AND b.slot_id = s.id
        """,
        slot_id,
        turnover,
    )
