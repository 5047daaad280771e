"""Defence in depth: the database itself refuses a double booking, whatever the application does.

Every booking here is inserted with plain SQL, bypassing the application's
locks and checks. room_free_time = end_time unless a test wants turnover.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.factories import future, insert_doctor, insert_equipment, insert_room, insert_slot

ACTIVE_STATUSES = ("PENDING", "CONFIRMED")


async def insert_booking_sql(
    conn: asyncpg.Connection, slot_id: int, *, patient_id: str, status: str = "CONFIRMED", **facts: Any
) -> int:
    """A booking row copying the slot's facts unless `facts` overrides some of them.

    `facts` may set room_id, doctor_id, start_time, end_time and room_free_time.
    """
    slot = await conn.fetchrow("SELECT room_id, doctor_id, start_time, end_time FROM slots WHERE id = $1", slot_id)
    assert slot is not None
    values: dict[str, Any] = dict(slot)
    values["room_free_time"] = values["end_time"]
    values.update(facts)
    now = datetime.now(values["start_time"].tzinfo)
    return int(
        await conn.fetchval(
            """
            INSERT INTO bookings (slot_id, room_id, doctor_id, start_time, end_time, room_free_time,
                                  patient_id, status, failure_reason, create_time, expire_time, update_time)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $10)
            RETURNING id
            """,
            slot_id,
            values["room_id"],
            values["doctor_id"],
            values["start_time"],
            values["end_time"],
            values["room_free_time"],
            patient_id,
            status,
            "HOLD_EXPIRED" if status == "FAILED" else None,
            now,
            now + timedelta(minutes=2),
        )
    )


async def count_bookings(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM bookings"))


class _RollBack(Exception):
    pass


# --- one active booking per slot ------------------------------------------------------------------


@pytest.mark.parametrize("first", ACTIVE_STATUSES)
@pytest.mark.parametrize("second", ACTIVE_STATUSES)
async def test_second_active_booking_on_one_slot_is_refused(db: asyncpg.Connection, first: str, second: str) -> None:
    """Refused with every constraint in place. A second booking of one slot necessarily overlaps the
    first in its room too, and PostgreSQL checks indexes in creation order, so the room exclusion
    constraint (made with the table) reports it before the later unique index does."""
    slot_id = await insert_slot(db)
    await insert_booking_sql(db, slot_id, patient_id="p-1", status=first)

    with pytest.raises(asyncpg.IntegrityConstraintViolationError) as refused:
        await insert_booking_sql(db, slot_id, patient_id="p-2", status=second)

    assert refused.value.constraint_name in {"bookings_one_active_per_slot", "bookings_room_no_overlap"}
    assert await count_bookings(db) == 1


async def test_one_active_per_slot_index_refuses_on_its_own(db: asyncpg.Connection) -> None:
    """With the overlap constraints out of the way (in a rolled-back transaction), the unique index
    bookings_one_active_per_slot alone still refuses a second active booking of one slot."""
    slot_id = await insert_slot(db)
    await insert_booking_sql(db, slot_id, patient_id="p-1", status="PENDING")

    with pytest.raises(_RollBack):
        async with db.transaction():
            for name in ("bookings_room_no_overlap", "bookings_surgeon_no_overlap", "bookings_patient_no_overlap"):
                await db.execute(f"ALTER TABLE bookings DROP CONSTRAINT {name}")
            with pytest.raises(asyncpg.UniqueViolationError) as refused:
                async with db.transaction():  # a savepoint, so the outer transaction survives
                    await insert_booking_sql(db, slot_id, patient_id="p-2", status="CONFIRMED")
            assert refused.value.constraint_name == "bookings_one_active_per_slot"
            raise _RollBack

    assert await count_bookings(db) == 1
    names = await db.fetchval("SELECT count(*) FROM pg_constraint WHERE conname LIKE 'bookings_%_no_overlap'")
    assert names == 3


@pytest.mark.parametrize("inactive", ["CANCELLED", "FAILED"])
async def test_cancelled_or_failed_bookings_never_block(db: asyncpg.Connection, inactive: str) -> None:
    slot_id = await insert_slot(db)
    await insert_booking_sql(db, slot_id, patient_id="p-1", status=inactive)
    await insert_booking_sql(db, slot_id, patient_id="p-1", status=inactive)

    await insert_booking_sql(db, slot_id, patient_id="p-1", status="PENDING")

    statuses = [r["status"] for r in await db.fetch("SELECT status FROM bookings ORDER BY id")]
    assert statuses == [inactive, inactive, "PENDING"]


async def test_inactive_bookings_never_block_room_surgeon_or_patient(db: asyncpg.Connection) -> None:
    room, doctor = await insert_room(db), await insert_doctor(db)
    start = future()
    old = await insert_slot(db, room_id=room, doctor_id=doctor, start=start, hours=2)
    new = await insert_slot(db, room_id=room, doctor_id=doctor, start=start + timedelta(hours=1), hours=2)
    await insert_booking_sql(db, old, patient_id="p-1", status="CANCELLED")
    await insert_booking_sql(db, old, patient_id="p-1", status="FAILED")

    await insert_booking_sql(db, new, patient_id="p-1", status="CONFIRMED")

    assert await count_bookings(db) == 3


# --- no overlap in one room, for one surgeon, for one patient -----------------------------------


async def test_overlapping_bookings_in_one_room_are_refused(db: asyncpg.Connection) -> None:
    room = await insert_room(db)
    start = future()
    first = await insert_slot(db, room_id=room, start=start, hours=2)
    second = await insert_slot(db, room_id=room, start=start + timedelta(hours=1), hours=2)  # its own surgeon
    await insert_booking_sql(db, first, patient_id="p-1", status="CONFIRMED")

    with pytest.raises(asyncpg.ExclusionViolationError) as refused:
        await insert_booking_sql(db, second, patient_id="p-2", status="PENDING")

    assert refused.value.constraint_name == "bookings_room_no_overlap"
    assert await count_bookings(db) == 1


async def test_room_turnover_is_part_of_the_room_interval(db: asyncpg.Connection) -> None:
    """A booking holds its room until room_free_time, so the next one may not start inside turnover."""
    room = await insert_room(db)
    start = future()
    first = await insert_slot(db, room_id=room, start=start, hours=2)
    second = await insert_slot(db, room_id=room, start=start + timedelta(hours=2), hours=2)
    await insert_booking_sql(db, first, patient_id="p-1", room_free_time=start + timedelta(hours=2, minutes=30))

    with pytest.raises(asyncpg.ExclusionViolationError) as refused:
        await insert_booking_sql(db, second, patient_id="p-2")

    assert refused.value.constraint_name == "bookings_room_no_overlap"


async def test_overlapping_bookings_for_one_surgeon_are_refused(db: asyncpg.Connection) -> None:
    doctor = await insert_doctor(db)
    start = future()
    first = await insert_slot(db, doctor_id=doctor, start=start, hours=2)
    second = await insert_slot(db, doctor_id=doctor, start=start + timedelta(minutes=119), hours=2)  # own room
    await insert_booking_sql(db, first, patient_id="p-1", status="PENDING")

    with pytest.raises(asyncpg.ExclusionViolationError) as refused:
        await insert_booking_sql(db, second, patient_id="p-2", status="CONFIRMED")

    assert refused.value.constraint_name == "bookings_surgeon_no_overlap"
    assert await count_bookings(db) == 1


async def test_overlapping_bookings_for_one_patient_are_refused(db: asyncpg.Connection) -> None:
    start = future()
    first = await insert_slot(db, start=start, hours=2)  # each slot: its own room and surgeon
    second = await insert_slot(db, start=start - timedelta(hours=1), hours=3)
    await insert_booking_sql(db, first, patient_id="p-1")

    with pytest.raises(asyncpg.ExclusionViolationError) as refused:
        await insert_booking_sql(db, second, patient_id="p-1")

    assert refused.value.constraint_name == "bookings_patient_no_overlap"
    assert await count_bookings(db) == 1


async def test_touching_intervals_are_accepted(db: asyncpg.Connection) -> None:
    """[8, 10) and [10, 12) share no instant: one room, one surgeon and one patient may have both."""
    room, doctor = await insert_room(db), await insert_doctor(db)
    eight = future().replace(hour=8, minute=0)
    morning = await insert_slot(db, room_id=room, doctor_id=doctor, start=eight, hours=2)
    late_morning = await insert_slot(db, room_id=room, doctor_id=doctor, start=eight + timedelta(hours=2), hours=2)

    await insert_booking_sql(db, morning, patient_id="p-1")
    await insert_booking_sql(db, late_morning, patient_id="p-1")

    assert await count_bookings(db) == 2


# --- a booking's copied facts must be its slot's ------------------------------------------------


@pytest.mark.parametrize("fact", ["room_id", "doctor_id", "start_time", "end_time"])
async def test_booking_disagreeing_with_its_slot_is_refused(db: asyncpg.Connection, fact: str) -> None:
    """The exclusion constraints read the copied columns, so a copy that lies would let an overlap in."""
    start = future()
    slot_id = await insert_slot(db, start=start, hours=2)
    wrong: dict[str, Any] = {
        "room_id": await insert_room(db),
        "doctor_id": await insert_doctor(db),
        "start_time": start + timedelta(hours=4),  # elsewhere in time, with a matching end below
        "end_time": start + timedelta(hours=1),
    }[fact]
    facts: dict[str, Any] = {fact: wrong}
    if fact == "start_time":
        facts["end_time"] = facts["room_free_time"] = start + timedelta(hours=6)
    if fact == "end_time":
        facts["room_free_time"] = wrong

    with pytest.raises(asyncpg.ForeignKeyViolationError) as refused:
        await insert_booking_sql(db, slot_id, patient_id="p-1", **facts)

    assert refused.value.constraint_name == "bookings_slot_facts_fkey"
    assert await count_bookings(db) == 0


async def test_booking_of_a_missing_slot_is_refused(db: asyncpg.Connection) -> None:
    slot_id = await insert_slot(db)
    with pytest.raises(asyncpg.ForeignKeyViolationError) as refused:
        slot = await db.fetchrow("SELECT room_id, doctor_id, start_time, end_time FROM slots WHERE id = $1", slot_id)
        assert slot is not None
        await db.execute(
            """
            INSERT INTO bookings (slot_id, room_id, doctor_id, start_time, end_time, room_free_time,
                                  patient_id, status, create_time, expire_time, update_time)
            VALUES ($1, $2, $3, $4, $5, $5, 'p-1', 'CONFIRMED', now(), now(), now())
            """,
            slot_id + 1000,
            slot["room_id"],
            slot["doctor_id"],
            slot["start_time"],
            slot["end_time"],
        )
    assert refused.value.constraint_name == "bookings_slot_facts_fkey"


# --- equipment: the constraint trigger ------------------------------------------------------------


async def test_equipment_over_use_is_refused_by_the_database(db: asyncpg.Connection) -> None:
    item = await insert_equipment(db, quantity=2)
    start = future(48)
    slot_ids = [await insert_slot(db, start=start, equipment=[(item, 1)]) for _ in range(3)]
    await insert_booking_sql(db, slot_ids[0], patient_id="p-1")
    await insert_booking_sql(db, slot_ids[1], patient_id="p-2", status="PENDING")
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await insert_booking_sql(db, slot_ids[2], patient_id="p-3")
    assert refused.value.constraint_name == "bookings_equipment_within_inventory"
    assert await count_bookings(db) == 2


async def test_equipment_trigger_counts_the_peak_not_the_sum(db: asyncpg.Connection) -> None:
    """[8,9) and [10,11) each use 1 of 2; a slot [8,11) needing 1 peaks at 2: allowed."""
    item = await insert_equipment(db, quantity=2)
    base = future(72)
    early = await insert_slot(db, start=base, hours=1, equipment=[(item, 1)])
    late = await insert_slot(db, start=base + timedelta(hours=2), hours=1, equipment=[(item, 1)])
    long = await insert_slot(db, start=base, hours=3, equipment=[(item, 1)])
    for patient, slot_id in (("p-1", early), ("p-2", late), ("p-3", long)):
        await insert_booking_sql(db, slot_id, patient_id=patient)
    assert await count_bookings(db) == 3


async def test_inactive_bookings_do_not_use_equipment(db: asyncpg.Connection) -> None:
    item = await insert_equipment(db, quantity=1)
    start = future(48)
    first, second = [await insert_slot(db, start=start, equipment=[(item, 1)]) for _ in range(2)]
    await insert_booking_sql(db, first, patient_id="p-1", status="CANCELLED")
    await insert_booking_sql(db, second, patient_id="p-2")
    with pytest.raises(asyncpg.CheckViolationError):  # reviving the cancelled one would over-use
        await db.execute("UPDATE bookings SET status = 'CONFIRMED' WHERE slot_id = $1", first)


async def test_equipment_trigger_holds_under_a_raw_race(pool: asyncpg.Pool, db: asyncpg.Connection) -> None:
    """Two transactions with NO application locks insert bookings needing the only unit at once."""
    item = await insert_equipment(db, quantity=1)
    start = future(48)
    slot_ids = [await insert_slot(db, start=start, equipment=[(item, 1)]) for _ in range(2)]
    barrier = asyncio.Barrier(2)

    async def book(slot_id: int, patient: str) -> str:
        async with pool.acquire() as conn:
            try:
                async with conn.transaction():
                    await barrier.wait()
                    await insert_booking_sql(conn, slot_id, patient_id=patient)
            except asyncpg.CheckViolationError:
                return "refused"
        return "ok"

    outcomes = await asyncio.gather(book(slot_ids[0], "p-1"), book(slot_ids[1], "p-2"))
    assert sorted(outcomes) == ["ok", "refused"]
    assert await count_bookings(db) == 1
