"""Slots: publishing them, reading them with their room, surgeon, equipment and availability."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import asyncpg

from ..domain.access import Actor
from ..domain.filters import SlotFilters
from ..domain.models import Doctor, EquipmentNeed, NewSlot, Room, Site, Slot
from .active import is_active
from .bookings import REFUSED, Refusal
from .connection import Conn

# When the slot stopped being bookable by a retirement: its own, its room's, its surgeon's or an
# equipment type's it needs, the earliest (LEAST ignores NULLs); NULL while all are in service.
_RETIRED_AT = """LEAST(s.retire_time, r.retire_time, d.retire_time,
  (SELECT min(e.retire_time) FROM slot_equipment se JOIN equipment e ON e.id = se.equipment_id
   WHERE se.slot_id = s.id))"""

# The same "still in service" test as `_RETIRED_AT IS NULL`, spelt so the planner can estimate it: each
# column's null fraction from its statistics, the equipment as an anti-join. Opaque to the planner (a
# sub-select inside LEAST), the LEAST form was guessed to keep 0.5 % of rows, so a filtered listing read
# every match and sorted them instead of walking an index in order and stopping after one page.
_IN_SERVICE = """(s.retire_time IS NULL AND r.retire_time IS NULL AND d.retire_time IS NULL
  AND NOT EXISTS (SELECT 1 FROM slot_equipment se JOIN equipment e ON e.id = se.equipment_id
                  WHERE se.slot_id = s.id AND e.retire_time IS NOT NULL))"""

_SELECT_SLOT = f"""
SELECT s.id, s.procedure_type, s.start_time, s.end_time, s.create_time, s.cancel_time, s.revision,
       {_RETIRED_AT} AS retire_time,
       d.id AS doctor_id, d.name AS doctor_name, d.specialty AS doctor_specialty, d.retire_time AS doctor_retire_time,
       r.id AS room_id, r.name AS room_name, r.site_id, r.turnover AS room_turnover, r.retire_time AS room_retire_time,
       st.name AS site_name, st.display_name AS site_display_name, st.time_zone AS site_time_zone,
       COALESCE((SELECT json_agg(json_build_array(e.id, e.name, se.quantity) ORDER BY e.id)
                 FROM slot_equipment se JOIN equipment e ON e.id = se.equipment_id
                 WHERE se.slot_id = s.id), '[]') AS equipment,
       {{available}} AS available
FROM slots s
JOIN doctors d ON d.id = s.doctor_id
JOIN rooms r ON r.id = s.room_id
JOIN sites st ON st.id = r.site_id
"""

# A slot is available when it has not started, is not cancelled or retired, and no active booking holds its
# room (with the room's own turnover, or else the default) or its surgeon at an overlapping time. $1 is the
# default turnover buffer. Equipment is checked only when booking (see bookings.py).
_AVAILABLE = f"""(s.start_time > now() AND s.cancel_time IS NULL AND {_IN_SERVICE}
  AND NOT EXISTS (
    SELECT 1 FROM bookings b
    WHERE b.room_id = s.room_id AND {is_active("b")}
      AND b.room_during && tstzrange(s.start_time, s.end_time + coalesce(r.turnover, $1::interval), '[)')
      AND (b.status <> 'PENDING' OR b.expire_time > now()))
  AND NOT EXISTS (
    SELECT 1 FROM bookings b
    WHERE b.doctor_id = s.doctor_id AND {is_active("b")}
      AND b.during && tstzrange(s.start_time, s.end_time, '[)')
      AND (b.status <> 'PENDING' OR b.expire_time > now())))"""

_SLOT_QUERY = _SELECT_SLOT.format(available=_AVAILABLE)
# For a listing of available slots only: its WHERE already tested each row (at the same now(), one statement),
# so the column is not worked out a second time (each test is two index probes of the bookings per row).
_AVAILABLE_SLOT_QUERY = _SELECT_SLOT.format(available="true")


def _slot_from_row(row: asyncpg.Record) -> Slot:
    equipment = json.loads(row["equipment"]) if isinstance(row["equipment"], str) else row["equipment"]
    return Slot(
        id=row["id"],
        doctor=Doctor(
            id=row["doctor_id"],
            name=row["doctor_name"],
            specialty=row["doctor_specialty"],
            retire_time=row["doctor_retire_time"],
        ),
        procedure_type=row["procedure_type"],
        room=Room(
            id=row["room_id"],
            name=row["room_name"],
            site_id=row["site_id"],
            turnover=row["room_turnover"],
            retire_time=row["room_retire_time"],
        ),
        start_time=row["start_time"],
        end_time=row["end_time"],
        required_equipment=tuple(
            EquipmentNeed(equipment_id=e_id, equipment_name=name, quantity=qty) for e_id, name, qty in equipment
        ),
        is_available=row["available"],
        create_time=row["create_time"],
        cancel_time=row["cancel_time"],
        site=Site(
            id=row["site_id"],
            name=row["site_name"],
            display_name=row["site_display_name"],
            time_zone=row["site_time_zone"],
        ),
        revision=row["revision"],
        retire_time=row["retire_time"],
    )


async def fetch_slot(conn: Conn, slot_id: int, *, turnover: timedelta) -> Slot | None:
    row = await conn.fetchrow(_SLOT_QUERY + "WHERE s.id = $2", turnover, slot_id)
    return None if row is None else _slot_from_row(row)


async def list_slots(
    conn: Conn,
    filters: SlotFilters,
    *,
    after: tuple[datetime, int] | None,
    limit: int,
    turnover: timedelta,
    day_window: tuple[datetime, datetime] | None = None,
) -> list[Slot]:
    """One keyset page of slots ordered by (start_time, id); `day_window` is filters.day in UTC (domain/sites.py)."""
    clauses: list[str] = []
    params: list[object] = [turnover]

    def bind(value: object) -> str:
        params.append(value)
        return f"${len(params)}"

    if filters.procedure_type:
        clauses.append(f"lower(s.procedure_type) = lower({bind(filters.procedure_type)})")
    if filters.doctor_id:
        clauses.append(f"s.doctor_id = {bind(filters.doctor_id)}")
    if filters.room_id:
        clauses.append(f"s.room_id = {bind(filters.room_id)}")
    if filters.site_id:
        clauses.append(f"r.site_id = {bind(filters.site_id)}")
    if day_window is not None:
        clauses.append(f"s.start_time >= {bind(day_window[0])} AND s.start_time < {bind(day_window[1])}")
    if filters.window_start is not None:
        clauses.append(f"s.start_time >= {bind(filters.window_start)}")
    if filters.window_end is not None:
        clauses.append(f"s.start_time < {bind(filters.window_end)}")
    if filters.is_available_only:
        clauses.append(_AVAILABLE)  # which holds only for a slot in service
    elif not filters.is_retired_shown:
        clauses.append(_IN_SERVICE)
    if after is not None:
        clauses.append(f"(s.start_time, s.id) > ({bind(after[0])}::timestamptz, {bind(after[1])}::bigint)")
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    select = _AVAILABLE_SLOT_QUERY if filters.is_available_only else _SLOT_QUERY
    # The page size is written into the statement, not bound as $n: with a $n LIMIT, PostgreSQL prices a
    # generic plan as if 10 % of the table were wanted, so it never reuses one and plans every call anew
    # (4-5 ms of planning for the availability joins, more than running them). An int cannot inject.
    sql = f"{select}{where}\nORDER BY s.start_time, s.id LIMIT {int(limit)}"
    return [_slot_from_row(row) for row in await conn.fetch(sql, *params)]


async def insert_slot(conn: Conn, slot: NewSlot) -> int:
    slot_id: int = await conn.fetchval(
        """
        INSERT INTO slots (doctor_id, room_id, procedure_type, start_time, end_time)
        VALUES ($1, $2, $3, $4, $5) RETURNING id
        """,
        slot.doctor_id,
        slot.room_id,
        slot.procedure_type,
        slot.start_time,
        slot.end_time,
    )
    if slot.required_equipment:
        await conn.execute(
            """
            INSERT INTO slot_equipment (slot_id, equipment_id, quantity)
            SELECT $1, e, q FROM unnest($2::bigint[], $3::int[]) AS t (e, q)
            """,
            slot_id,
            [need.equipment_id for need in slot.required_equipment],
            [need.quantity for need in slot.required_equipment],
        )
    return slot_id


async def cancel_slot(conn: Conn, slot_id: int, *, note: str, actor: Actor) -> Refusal | tuple[bool, int | None]:
    """CancelSlot in ONE statement: orflow_cancel_slot(), migration 0007; (is it new, the booking it cancelled)."""
    try:
        row = await conn.fetchrow(
            "SELECT * FROM orflow_cancel_slot($1, $2, $3, $4)", slot_id, note, actor.subject, actor.role.value
        )
    except asyncpg.PostgresError as exc:
        if exc.sqlstate == REFUSED:
            return Refusal(str(exc.message), dict(json.loads(getattr(exc, "detail", None) or "{}")))
        raise
    assert row is not None
    return row["outcome"] == "CANCELLED", row["booking_id"]
