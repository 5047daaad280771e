"""The one set of SQL invariant checks (orflow_tools.testkit.invariants) can fail: every violation planted, each found.

tests/rpc/test_concurrency.py and every bench scenario rely on these checks
finding nothing; this is why "nothing" means something.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg
from orflow_tools.bench import sql
from orflow_tools.testkit import invariants

from tests.factories import future, insert_doctor, insert_equipment, insert_room, insert_slot

# What stops each violation in the database itself; dropped (inside a rolled-back transaction) to plant them.
GUARDS = (
    "DROP INDEX bookings_one_active_per_slot",
    "ALTER TABLE bookings DROP CONSTRAINT bookings_room_no_overlap",
    "ALTER TABLE bookings DROP CONSTRAINT bookings_surgeon_no_overlap",
    "ALTER TABLE bookings DROP CONSTRAINT bookings_patient_no_overlap",
    "DROP TRIGGER bookings_equipment_within_inventory ON bookings",
)


async def _insert_booking_sql(conn: asyncpg.Connection, slot_id: int, patient_id: str) -> int:
    """An active booking inserted directly, bypassing the application's checks."""
    return int(
        await conn.fetchval(
            """
            INSERT INTO bookings (slot_id, room_id, doctor_id, start_time, end_time, room_free_time,
                                  patient_id, status, create_time, expire_time, update_time)
            SELECT id, room_id, doctor_id, start_time, end_time, end_time,
                   $2, 'CONFIRMED', now(), now() + interval '2 minutes', now()
            FROM slots WHERE id = $1
            RETURNING id
            """,
            slot_id,
            patient_id,
        )
    )


async def test_checks_find_every_planted_violation_and_no_false_one(db: asyncpg.Connection) -> None:
    """Plant each kind of violation with the database's own guards dropped, count them, then roll it all back."""
    item = await insert_equipment(db, quantity=2)
    room, doctor = await insert_room(db), await insert_doctor(db)
    start: datetime = future(200)
    # Three overlapping uses of the two-unit item, each slot in its own room: peak 3 at c's start.
    a = await insert_slot(db, start=start, hours=2, equipment=[(item, 1)])
    b = await insert_slot(db, start=start + timedelta(hours=1), hours=2, equipment=[(item, 1)])
    c = await insert_slot(db, start=start + timedelta(hours=1, minutes=30), hours=2, equipment=[(item, 1)])
    # Two uses of both units that only touch ([L, L+2h) and [L+2h, L+4h)) never add up.
    later = start + timedelta(days=1)
    d = await insert_slot(db, start=later, hours=2, equipment=[(item, 2)])
    e = await insert_slot(db, start=later + timedelta(hours=2), hours=2, equipment=[(item, 2)])
    in_room = await insert_slot(db, room_id=room, start=start + timedelta(days=2), hours=2)
    in_room_2 = await insert_slot(db, room_id=room, start=start + timedelta(days=2, hours=1), hours=2)
    by_doc = await insert_slot(db, doctor_id=doctor, start=start + timedelta(days=3), hours=2)
    by_doc_2 = await insert_slot(db, doctor_id=doctor, start=start + timedelta(days=3, hours=1), hours=2)
    own = await insert_slot(db, start=start + timedelta(days=4), hours=2)
    own_2 = await insert_slot(db, start=start + timedelta(days=4, hours=1), hours=2)
    assert await invariants.violations(db) == invariants.NO_VIOLATIONS

    tx = db.transaction()
    await tx.start()
    try:
        for guard in GUARDS:
            await db.execute(guard)
        for slot_id in (a, b, c, d, e, by_doc, by_doc_2):
            await _insert_booking_sql(db, slot_id, f"p-{slot_id}")
        await _insert_booking_sql(db, in_room, "p-twin-1")
        await _insert_booking_sql(db, in_room, "p-twin-2")  # the same slot twice
        await _insert_booking_sql(db, in_room_2, "p-room")
        await _insert_booking_sql(db, own, "p-twice")
        await _insert_booking_sql(db, own_2, "p-twice")

        planted = await invariants.violations(db)
        peak_planted = (await invariants.peak_use(db))[item]
        # Without b, a and c overlap (2) and d, e only touch (2): back within stock.
        await db.execute("UPDATE bookings SET status = 'CANCELLED' WHERE slot_id = $1", b)
        after_cancel = await invariants.violations(db)
        peak_after_cancel = (await invariants.peak_use(db))[item]
    finally:
        await tx.rollback()

    # The twins break the slot rule once, and the room and surgeon rules; in_room_2 starts while the
    # room is still taken; by_doc_2 while the surgeon is; own_2 while the patient is; c pushes the item to 3.
    assert planted == {
        "slot_double_booked": 1,
        "room_overlap": 2,
        "surgeon_overlap": 2,
        "patient_overlap": 1,
        "equipment_over_use": 1,
    }
    assert peak_planted == (3, 2)
    assert after_cancel == {**planted, "equipment_over_use": 0}
    assert peak_after_cancel == (2, 2)
    assert await invariants.violations(db) == invariants.NO_VIOLATIONS
    assert await db.fetchval("SELECT count(*) FROM bookings") == 0
    assert await db.fetchval("SELECT count(*) FROM pg_constraint WHERE conname LIKE 'bookings_%_no_overlap'") == 3


async def test_uses_starting_at_one_instant_are_counted_once(db: asyncpg.Connection) -> None:
    """Two one-unit uses of a two-unit item starting together are within stock; a third is not.

    The check once summed the uses at an instant once per booking starting there, so two such
    bookings counted as four units: a false over-use that test_mixed_contention_keeps_every_invariant
    hit now and then (its slots start on a 30-minute grid).
    """
    item = await insert_equipment(db, quantity=2)
    start = future(300)
    together = [await insert_slot(db, start=start, hours=1, equipment=[(item, 1)]) for _ in range(3)]
    for slot_id in together[:2]:
        await _insert_booking_sql(db, slot_id, f"p-{slot_id}")

    assert await invariants.violations(db) == invariants.NO_VIOLATIONS
    assert (await invariants.peak_use(db))[item] == (2, 2)

    tx = db.transaction()
    await tx.start()
    try:
        await db.execute("DROP TRIGGER bookings_equipment_within_inventory ON bookings")
        await _insert_booking_sql(db, together[2], "p-third")
        planted = await invariants.violations(db)
    finally:
        await tx.rollback()
    assert planted == {**invariants.NO_VIOLATIONS, "equipment_over_use": 1}


async def test_checks_find_nothing_on_sound_bench_data(db: asyncpg.Connection) -> None:
    """The bench's bulk loads (round-robin rooms, holds on every slot, overlapping ventilator slots) are sound."""
    await sql.reset(db, rooms=3)
    block = await sql.load_slots(db, count=30, rooms=3, start=future())
    await sql.insert_holds(db, block, expire_time=future() + timedelta(hours=1))
    ventilator_slots = await sql.load_ventilator_slots(db, count=3, start=future(48))
    await _insert_booking_sql(db, ventilator_slots[0], "the-one-ventilator-user")

    assert await invariants.violations(db) == invariants.NO_VIOLATIONS
    assert set((await invariants.peak_use(db)).values()) == {(1, 1)}
