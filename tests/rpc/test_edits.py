"""Edits over the wire (AIP-134 masks, AIP-154 etags): rooms, surgeons, equipment counts, and moving slots.

Every refusal is checked to change nothing: the row and its etag read the same after it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2
from orflow.v1 import admin_service_pb2, booking_service_pb2, resources_pb2, slot_service_pb2
from orflow_tools.testkit import invariants

from tests.factories import error_details, future, insert_doctor, insert_equipment, insert_room, insert_slot
from tests.rpc.test_bookings import book, expire, refused

A = admin_service_pb2
R = resources_pb2
ABORTED = grpc.StatusCode.ABORTED
FP = grpc.StatusCode.FAILED_PRECONDITION
BAD = grpc.StatusCode.INVALID_ARGUMENT


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


async def room_of(admin: Any, room_id: int) -> resources_pb2.Room:
    rooms = (await admin.ListRooms(A.ListRoomsRequest())).rooms
    return next(r for r in rooms if r.id == room_id)


async def equipment_of(admin: Any, equipment_id: int) -> resources_pb2.Equipment:
    items = (await admin.ListEquipment(A.ListEquipmentRequest())).equipment
    return next(e for e in items if e.id == equipment_id)


async def slot_of(slots: Any, slot_id: int) -> resources_pb2.Slot:
    return (await slots.GetSlot(slot_service_pb2.GetSlotRequest(slot_id=slot_id))).slot


async def confirmed(bookings: Any, slot_id: int, patient_id: str) -> int:
    booking = await book(bookings, slot_id, patient_id=patient_id)
    await bookings.ConfirmBooking(booking_service_pb2.ConfirmBookingRequest(booking_id=booking.id))
    return booking.id


# --- etags and masks -----------------------------------------------------------------------------------


async def test_every_read_and_create_carries_an_etag_that_each_change_moves(db: asyncpg.Connection, admin: Any) -> None:
    created = (await admin.CreateRoom(A.CreateRoomRequest(name="Theatre Etag"))).room
    assert created.etag and (await room_of(admin, created.id)).etag == created.etag

    renamed = (
        await admin.UpdateRoom(
            A.UpdateRoomRequest(
                room=R.Room(id=created.id, name="Theatre Etag 2", etag=created.etag), update_mask=mask("name")
            )
        )
    ).room
    assert renamed.name == "Theatre Etag 2" and renamed.etag != created.etag
    assert (await room_of(admin, created.id)).etag == renamed.etag
    # A change made behind the API's back (psql) moves the etag too: the database bumps it.
    await db.execute("UPDATE rooms SET name = 'Theatre Etag 3' WHERE id = $1", created.id)
    assert (await room_of(admin, created.id)).etag not in (created.etag, renamed.etag)


async def test_a_stale_etag_is_refused_and_changes_nothing(db: asyncpg.Connection, admin: Any) -> None:
    doctor_id = await insert_doctor(db, name="Dr. Stale", specialty="Orthopaedics")
    first = (
        await admin.UpdateDoctor(A.UpdateDoctorRequest(doctor=R.Doctor(id=doctor_id, specialty="Hand Surgery")))
    ).doctor
    before = await db.fetchrow("SELECT * FROM doctors WHERE id = $1", doctor_id)

    err = await refused(
        admin.UpdateDoctor(
            A.UpdateDoctorRequest(
                doctor=R.Doctor(id=doctor_id, name="Dr. Overwrite", etag="r1"), update_mask=mask("name")
            )
        ),
        ABORTED,
        "ETAG_MISMATCH",
    )
    info, _ = error_details(err)
    assert info is not None and dict(info.metadata) == {"resource": "doctor", "id": str(doctor_id), "etag": first.etag}
    assert "changed since you read it" in (err.details() or "")
    assert await db.fetchrow("SELECT * FROM doctors WHERE id = $1", doctor_id) == before


async def test_an_empty_etag_skips_the_check(db: asyncpg.Connection, admin: Any) -> None:
    item = await insert_equipment(db, name="Etagless", quantity=2)
    await db.execute("UPDATE equipment SET name = 'Etagless 2' WHERE id = $1", item)  # now at revision 2
    updated = (
        await admin.UpdateEquipment(
            A.UpdateEquipmentRequest(equipment=R.Equipment(id=item, quantity=5), update_mask=mask("quantity"))
        )
    ).equipment
    assert (updated.quantity, updated.name) == (5, "Etagless 2")


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("id", "output only"),
        ("etag", "output only"),
        ("retire_time", "output only"),
        ("colour", "not a field that can be changed"),
    ],
)
async def test_unknown_and_output_only_paths_are_bad_requests(
    db: asyncpg.Connection, admin: Any, path: str, why: str
) -> None:
    room_id = await insert_room(db, name="Masked")
    err = await refused(
        admin.UpdateRoom(A.UpdateRoomRequest(room=R.Room(id=room_id, name="Unmasked"), update_mask=mask("name", path))),
        BAD,
        "INVALID_ARGUMENT",
    )
    _, violations = error_details(err)
    assert [(field, why in text) for field, text in violations] == [("update_mask.paths[1]", True)]
    assert await db.fetchval("SELECT name FROM rooms WHERE id = $1", room_id) == "Masked"


@pytest.mark.parametrize("path", ["required_equipment", "available", "room.name", "create_time"])
async def test_slot_paths_that_cannot_change_are_refused(db: asyncpg.Connection, admin: Any, path: str) -> None:
    slot_id = await insert_slot(db)
    await refused(
        admin.UpdateSlot(A.UpdateSlotRequest(slot=R.Slot(id=slot_id), update_mask=mask(path))), BAD, "INVALID_ARGUMENT"
    )


async def test_an_empty_mask_sets_the_fields_the_resource_sets(db: asyncpg.Connection, admin: Any) -> None:
    doctor_id = await insert_doctor(db, name="Dr. Keep", specialty="Old")
    doctor = (await admin.UpdateDoctor(A.UpdateDoctorRequest(doctor=R.Doctor(id=doctor_id, specialty="New")))).doctor
    assert (doctor.name, doctor.specialty) == ("Dr. Keep", "New")
    await refused(admin.UpdateDoctor(A.UpdateDoctorRequest(doctor=R.Doctor(id=doctor_id))), BAD, "INVALID_ARGUMENT")


async def test_a_taken_name_and_a_missing_resource(db: asyncpg.Connection, admin: Any) -> None:
    await insert_room(db, name="Taken")
    other = await insert_room(db, name="Free")
    update = A.UpdateRoomRequest(room=R.Room(id=other, name="Taken"), update_mask=mask("name"))
    await refused(admin.UpdateRoom(update), grpc.StatusCode.ALREADY_EXISTS, "ALREADY_EXISTS")
    missing = A.UpdateRoomRequest(room=R.Room(id=other + 1000, name="Nowhere"), update_mask=mask("name"))
    await refused(admin.UpdateRoom(missing), grpc.StatusCode.NOT_FOUND, "ROOM_NOT_FOUND")


async def test_edits_are_audited_with_their_actor(db: asyncpg.Connection, admin: Any) -> None:
    room_id = await insert_room(db, name="Audited")
    await admin.UpdateRoom(A.UpdateRoomRequest(room=R.Room(id=room_id, name="Audited 2"), update_mask=mask("name")))
    event = await db.fetchrow(
        "SELECT actor, actor_role, before ->> 'name' AS before, after ->> 'name' AS after FROM audit_events"
        " WHERE resource_type = 'room' AND resource_id = $1 AND action = 'room.updated' ORDER BY id DESC LIMIT 1",
        str(room_id),
    )
    assert event is not None and event["actor_role"] == "admin" and event["actor"] != ""
    assert (event["before"], event["after"]) == ("Audited", "Audited 2")


# --- equipment counts ----------------------------------------------------------------------------------


async def test_lowering_a_count_below_the_booked_peak_names_the_bookings_in_the_way(
    db: asyncpg.Connection, admin: Any, bookings: Any
) -> None:
    item = await insert_equipment(db, name="Ventilator", quantity=3)
    base = future(30)
    overlapping = [
        await insert_slot(db, start=base + timedelta(minutes=30 * i), hours=2, equipment=[(item, 1)]) for i in range(2)
    ]
    later = await insert_slot(db, start=base + timedelta(hours=6), hours=1, equipment=[(item, 1)])
    ids = [await confirmed(bookings, s, f"p-vent-{i}") for i, s in enumerate([*overlapping, later])]
    read = await equipment_of(admin, item)

    err = await refused(
        admin.UpdateEquipment(
            A.UpdateEquipmentRequest(
                equipment=R.Equipment(id=item, quantity=1, etag=read.etag), update_mask=mask("quantity")
            )
        ),
        FP,
        "EQUIPMENT_IN_USE",
    )
    info, _ = error_details(err)
    assert info is not None
    assert dict(info.metadata) == {"equipment_id": str(item), "needed": "2", "booking_ids": f"{ids[0]}, {ids[1]}"}
    assert f"{ids[0]}, {ids[1]}" in (err.details() or "")
    assert (await equipment_of(admin, item)) == read  # nothing changed, not even the etag

    lowered = (
        await admin.UpdateEquipment(
            A.UpdateEquipmentRequest(
                equipment=R.Equipment(id=item, quantity=2, etag=read.etag), update_mask=mask("quantity")
            )
        )
    ).equipment
    assert lowered.quantity == 2
    assert (await invariants.peak_use(db))[item] == (2, 2)


async def test_the_database_refuses_a_lower_count_that_skips_the_check(db: asyncpg.Connection, bookings: Any) -> None:
    """The backstop: raw SQL that lowers the count below the booked peak fails (migration 0010)."""
    item = await insert_equipment(db, quantity=1)
    await confirmed(bookings, await insert_slot(db, equipment=[(item, 1)]), "p-backstop")
    with pytest.raises(asyncpg.CheckViolationError) as caught:
        await db.execute("UPDATE equipment SET quantity = 0 WHERE id = $1", item)
    assert caught.value.constraint_name == "equipment_quantity_covers_bookings"


async def test_past_cases_do_not_hold_a_count_up(db: asyncpg.Connection, admin: Any, bookings: Any) -> None:
    item = await insert_equipment(db, quantity=1)
    booking_id = await confirmed(bookings, await insert_slot(db, equipment=[(item, 1)]), "p-past")
    await db.execute("SET session_replication_role = replica")  # move the case into the past, triggers off
    try:
        await db.execute(
            "UPDATE slots SET start_time = now() - interval '3 hours', end_time = now() - interval '1 hour'"
            " WHERE id = (SELECT slot_id FROM bookings WHERE id = $1)",
            booking_id,
        )
        await db.execute(
            "UPDATE bookings SET start_time = now() - interval '3 hours', end_time = now() - interval '1 hour',"
            " room_free_time = now() - interval '1 hour', status = 'COMPLETED' WHERE id = $1",
            booking_id,
        )
    finally:
        await db.execute("SET session_replication_role = origin")
    update = A.UpdateEquipmentRequest(equipment=R.Equipment(id=item, quantity=0), update_mask=mask("quantity"))
    assert (await admin.UpdateEquipment(update)).equipment.quantity == 0


async def test_a_hold_past_its_expiry_does_not_hold_a_count_up(
    db: asyncpg.Connection, admin: Any, bookings: Any
) -> None:
    item = await insert_equipment(db, quantity=1)
    held = await book(bookings, await insert_slot(db, equipment=[(item, 1)]), patient_id="p-lapsed")
    update = A.UpdateEquipmentRequest(equipment=R.Equipment(id=item, quantity=0), update_mask=mask("quantity"))
    await refused(admin.UpdateEquipment(update), FP, "EQUIPMENT_IN_USE")  # a live hold counts
    await expire(db, held.id)
    assert (await admin.UpdateEquipment(update)).equipment.quantity == 0  # an overdue one never comes back
    # ... and it is failed on the way, as the booking rule fails one before it counts: no lapsed hold is left
    # PENDING over the new count.
    row = await db.fetchrow("SELECT status, failure_reason FROM bookings WHERE id = $1", held.id)
    assert (row["status"], row["failure_reason"]) == ("FAILED", "HOLD_EXPIRED")
    assert await invariants.violations(db) == invariants.NO_VIOLATIONS


# --- moving slots --------------------------------------------------------------------------------------


async def test_moving_a_booked_slot_carries_its_booking(
    db: asyncpg.Connection, admin: Any, slots: Any, bookings: Any
) -> None:
    slot_id = await insert_slot(db, start=future(40))
    booking_id = await confirmed(bookings, slot_id, "p-move")
    new_room = await insert_room(db)
    new_start = future(44)
    read = await slot_of(slots, slot_id)
    moved = (
        await admin.UpdateSlot(
            A.UpdateSlotRequest(
                slot=R.Slot(
                    id=slot_id,
                    etag=read.etag,
                    room=R.Room(id=new_room),
                    start_time=ts(new_start),
                    end_time=ts(new_start + timedelta(hours=2)),
                ),
                update_mask=mask("room.id", "start_time", "end_time"),
            )
        )
    ).slot
    assert moved.room.id == new_room and moved.start_time.ToDatetime().replace(tzinfo=new_start.tzinfo) == new_start
    row = await db.fetchrow("SELECT room_id, start_time, end_time, status FROM bookings WHERE id = $1", booking_id)
    assert (row["room_id"], row["start_time"], row["status"]) == (new_room, new_start, "CONFIRMED")
    assert await invariants.violations(db) == invariants.NO_VIOLATIONS


@pytest.mark.parametrize("clash", ["room", "surgeon", "patient", "equipment"])
async def test_a_move_that_would_double_book_is_refused_with_the_conflict_reason(
    db: asyncpg.Connection, admin: Any, bookings: Any, clash: str
) -> None:
    room, doctor, item = await insert_room(db), await insert_doctor(db), await insert_equipment(db, quantity=1)
    busy_start = future(50)
    busy = await insert_slot(
        db,
        room_id=room if clash == "room" else None,
        doctor_id=doctor if clash == "surgeon" else None,
        start=busy_start,
        equipment=[(item, 1)] if clash == "equipment" else [],
    )
    await confirmed(bookings, busy, "p-clash" if clash == "patient" else "p-other")
    moving = await insert_slot(
        db,
        room_id=room if clash == "room" else None,
        doctor_id=doctor if clash == "surgeon" else None,
        start=busy_start + timedelta(hours=5),
        equipment=[(item, 1)] if clash == "equipment" else [],
    )
    mover = await confirmed(bookings, moving, "p-clash")
    before = await db.fetchrow("SELECT * FROM bookings WHERE id = $1", mover)
    slot_before = await db.fetchrow("SELECT * FROM slots WHERE id = $1", moving)
    request = A.UpdateSlotRequest(
        slot=R.Slot(
            id=moving, start_time=ts(busy_start + timedelta(hours=1)), end_time=ts(busy_start + timedelta(hours=3))
        ),
        update_mask=mask("start_time", "end_time"),
    )
    reason = {
        "room": "ROOM_BUSY",
        "surgeon": "SURGEON_BUSY",
        "patient": "PATIENT_BUSY",
        "equipment": "EQUIPMENT_UNAVAILABLE",
    }
    await refused(admin.UpdateSlot(request), ABORTED, reason[clash])
    assert await db.fetchrow("SELECT * FROM bookings WHERE id = $1", mover) == before
    assert await db.fetchrow("SELECT * FROM slots WHERE id = $1", moving) == slot_before


async def test_moving_to_a_busy_new_room_or_surgeon_is_refused(
    db: asyncpg.Connection, admin: Any, bookings: Any
) -> None:
    start = future(60)
    other = await insert_slot(db, start=start)
    await confirmed(bookings, other, "p-there")
    other_room, other_doctor = await db.fetchrow("SELECT room_id, doctor_id FROM slots WHERE id = $1", other)
    moving = await insert_slot(db, start=start)
    await confirmed(bookings, moving, "p-here")
    for path, target, reason in (("room.id", other_room, "ROOM_BUSY"), ("doctor.id", other_doctor, "SURGEON_BUSY")):
        slot = (
            R.Slot(id=moving, room=R.Room(id=target))
            if path == "room.id"
            else R.Slot(id=moving, doctor=R.Doctor(id=target))
        )
        await refused(admin.UpdateSlot(A.UpdateSlotRequest(slot=slot, update_mask=mask(path))), ABORTED, reason)


async def test_an_empty_slot_moves_freely_but_not_into_the_past_or_once_started(
    db: asyncpg.Connection, admin: Any
) -> None:
    slot_id = await insert_slot(db, start=future(70))
    later = future(80)
    moved = (
        await admin.UpdateSlot(
            A.UpdateSlotRequest(
                slot=R.Slot(
                    id=slot_id,
                    start_time=ts(later),
                    end_time=ts(later + timedelta(hours=1)),
                    procedure_type="Hernia Repair",
                ),
                update_mask=mask("start_time", "end_time", "procedure_type"),
            )
        )
    ).slot
    assert moved.procedure_type == "Hernia Repair"
    past = future(-5)
    await refused(
        admin.UpdateSlot(
            A.UpdateSlotRequest(slot=R.Slot(id=slot_id, start_time=ts(past)), update_mask=mask("start_time"))
        ),
        BAD,
        "INVALID_ARGUMENT",
    )
    await db.execute(
        "UPDATE slots SET start_time = now() - interval '1 hour', end_time = now() + interval '1 hour' WHERE id = $1",
        slot_id,
    )
    await refused(
        admin.UpdateSlot(
            A.UpdateSlotRequest(slot=R.Slot(id=slot_id, start_time=ts(later)), update_mask=mask("start_time"))
        ),
        FP,
        "SLOT_STARTED",
    )


def ts(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp
