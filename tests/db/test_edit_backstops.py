"""Migration 0010's backstops, with plain SQL that skips the application: revisions, the slot-facts key
moving with a slot, and equipment never over-used by a moved booking."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from tests.db.test_constraints import insert_booking_sql
from tests.factories import future, insert_equipment, insert_room, insert_slot


async def test_every_change_to_a_row_bumps_its_revision(db: asyncpg.Connection) -> None:
    room = await insert_room(db, name="Rev")
    assert await db.fetchval("SELECT revision FROM rooms WHERE id = $1", room) == 1
    await db.execute("UPDATE rooms SET name = 'Rev 2' WHERE id = $1", room)
    await db.execute("UPDATE rooms SET name = name WHERE id = $1", room)  # no change: no new revision
    await db.execute("UPDATE rooms SET revision = 99, retire_time = now() WHERE id = $1", room)
    assert await db.fetchval("SELECT revision FROM rooms WHERE id = $1", room) == 3  # never set by hand


async def test_a_slot_and_its_booking_move_together_or_not_at_all(db: asyncpg.Connection) -> None:
    slot_id = await insert_slot(db)
    await insert_booking_sql(db, slot_id, patient_id="p-fk")
    move = "UPDATE slots SET start_time = start_time + interval '1 hour', end_time = end_time + interval '1 hour'"
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await db.execute(move + " WHERE id = $1", slot_id)  # the booking would keep the old facts
    async with db.transaction():
        await db.execute("SET CONSTRAINTS bookings_slot_facts_fkey DEFERRED")
        await db.execute(move + " WHERE id = $1", slot_id)
        await db.execute(
            "UPDATE bookings b SET start_time = s.start_time, end_time = s.end_time, room_free_time = s.end_time"
            " FROM slots s WHERE s.id = b.slot_id AND b.slot_id = $1",
            slot_id,
        )
    assert await db.fetchval(
        "SELECT b.start_time = s.start_time FROM bookings b JOIN slots s ON s.id = b.slot_id WHERE s.id = $1", slot_id
    )


async def test_a_booking_moved_onto_busy_equipment_is_refused(db: asyncpg.Connection) -> None:
    item = await insert_equipment(db, quantity=1)
    start = future(30)
    first = await insert_slot(db, start=start, equipment=[(item, 1)])
    second = await insert_slot(db, start=start + timedelta(hours=4), equipment=[(item, 1)])
    await insert_booking_sql(db, first, patient_id="p-eq-1")
    await insert_booking_sql(db, second, patient_id="p-eq-2")
    with pytest.raises(asyncpg.CheckViolationError) as caught:
        async with db.transaction():
            await db.execute("SET CONSTRAINTS bookings_slot_facts_fkey DEFERRED")
            await db.execute(
                "UPDATE slots SET start_time = $2, end_time = $3 WHERE id = $1",
                second,
                start,
                start + timedelta(hours=2),
            )
            await db.execute(
                "UPDATE bookings b SET start_time = s.start_time, end_time = s.end_time, room_free_time = s.end_time"
                " FROM slots s WHERE s.id = b.slot_id AND b.slot_id = $1",
                second,
            )
    assert caught.value.constraint_name == "bookings_equipment_within_inventory"
