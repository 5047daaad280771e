"""Wipes the bookable data (every table but the audit trail) and loads the demo data set.

The audit trail survives a reset on purpose (migration 0003 makes it
append-only and refuses to truncate it): the events before the reset stay
readable, the reset itself is recorded as a `database.reset` event, and each
reloaded row as an insert.
"""

from __future__ import annotations

from datetime import datetime

from ..domain import demo
from .connection import Conn


async def reset_to_demo(conn: Conn, now: datetime) -> tuple[int, int, int, int]:
    """Empties bookings, slots, equipment, doctors, rooms and sites (never audit_events); returns what it loaded.

    The counts are (rooms, doctors, equipment types, slots).
    """
    await conn.execute("TRUNCATE bookings, slot_equipment, slots, equipment, doctors, rooms, sites RESTART IDENTITY")
    site_ids = {
        r["name"]: r["id"]
        for r in await conn.fetch(
            "INSERT INTO sites (name, display_name, time_zone)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) RETURNING id, name",
            [s.name for s in demo.SITES],
            [s.display_name for s in demo.SITES],
            [s.time_zone for s in demo.SITES],
        )
    }
    room_ids = {
        r["name"]: r["id"]
        for r in await conn.fetch(
            "INSERT INTO rooms (name, site_id, turnover)"
            " SELECT * FROM unnest($1::text[], $2::bigint[], $3::interval[]) RETURNING id, name",
            [room.name for room in demo.DEMO_ROOMS],
            [site_ids[room.site] for room in demo.DEMO_ROOMS],
            [room.turnover for room in demo.DEMO_ROOMS],
        )
    }
    doctor_ids = {
        r["name"]: r["id"]
        for r in await conn.fetch(
            "INSERT INTO doctors (name, specialty) SELECT * FROM unnest($1::text[], $2::text[]) RETURNING id, name",
            [d[0] for d in demo.DOCTORS],
            [d[1] for d in demo.DOCTORS],
        )
    }
    equipment_ids = {
        r["name"]: r["id"]
        for r in await conn.fetch(
            "INSERT INTO equipment (name, quantity) SELECT * FROM unnest($1::text[], $2::int[]) RETURNING id, name",
            [e[0] for e in demo.EQUIPMENT],
            [e[1] for e in demo.EQUIPMENT],
        )
    }
    slots = demo.demo_slots(now)
    for slot in slots:
        slot_id = await conn.fetchval(
            "INSERT INTO slots (doctor_id, room_id, procedure_type, start_time, end_time)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING id",
            doctor_ids[slot.doctor],
            room_ids[slot.room],
            slot.procedure_type,
            slot.start_time,
            slot.end_time,
        )
        await conn.executemany(
            "INSERT INTO slot_equipment (slot_id, equipment_id, quantity) VALUES ($1, $2, $3)",
            [(slot_id, equipment_ids[name], qty) for name, qty in slot.equipment],
        )
    return len(room_ids), len(doctor_ids), len(equipment_ids), len(slots)
