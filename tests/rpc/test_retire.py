"""Retiring rooms, surgeons, equipment types and slots over the wire: hidden from patients, never bookable,
refused while future bookings depend on them unless the caller cancels those (with a reason, announced)."""

from __future__ import annotations

from typing import Any

import asyncpg
import grpc
import pytest
from orflow.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    booking_pb2,
    booking_service_pb2,
    booking_service_pb2_grpc,
    resources_pb2,
    slot_service_pb2,
)

from tests.factories import error_details, future, insert_doctor, insert_equipment, insert_room, insert_slot
from tests.rpc.test_bookings import book, refused
from tests.rpc.test_edits import confirmed, ts
from tests.rpc.test_watch_slots import (  # noqa: F401  (live_server and live_channel are fixtures)
    AVAILABILITY,
    RELEASED,
    Watcher,
    barrier,
    live_channel,
    live_server,
)

A = admin_service_pb2
S = slot_service_pb2
FP = grpc.StatusCode.FAILED_PRECONDITION
KINDS = ["room", "doctor", "equipment", "slot"]
REASONS = {
    "room": booking_pb2.CANCELLATION_REASON_OTHER,
    "doctor": booking_pb2.CANCELLATION_REASON_SURGEON_UNAVAILABLE,
    "equipment": booking_pb2.CANCELLATION_REASON_EQUIPMENT_UNAVAILABLE,
    "slot": booking_pb2.CANCELLATION_REASON_SLOT_CANCELLED,
}


async def slot_with_all(db: asyncpg.Connection, **overrides: Any) -> tuple[int, dict[str, int]]:
    """A slot with its own room, surgeon and one equipment type; (slot id, kind -> id)."""
    room, doctor, item = await insert_room(db), await insert_doctor(db), await insert_equipment(db, quantity=3)
    slot_id = await insert_slot(db, room_id=room, doctor_id=doctor, equipment=[(item, 1)], **overrides)
    return slot_id, {"room": room, "doctor": doctor, "equipment": item, "slot": slot_id}


def retire(admin: Any, kind: str, resource_id: int, **how: Any) -> Any:
    """RetireRoom/RetireDoctor/RetireEquipment/RetireSlot: one shape."""
    name = kind.capitalize()
    request = getattr(A, f"Retire{name}Request")(**{f"{kind}_id": resource_id}, **how)
    return getattr(admin, f"Retire{name}")(request)


@pytest.mark.parametrize("kind", KINDS)
async def test_retiring_what_a_booking_needs_is_refused_naming_it_and_changes_nothing(
    db: asyncpg.Connection, admin: Any, bookings: Any, kind: str
) -> None:
    slot_id, ids = await slot_with_all(db)
    booking_id = await confirmed(bookings, slot_id, f"p-retire-{kind}")
    before = await db.fetchval("SELECT count(*) FROM audit_events")

    err = await refused(retire(admin, kind, ids[kind]), FP, "RESOURCE_IN_USE")
    info, _ = error_details(err)
    assert info is not None
    assert dict(info.metadata) == {"resource": kind, "id": str(ids[kind]), "booking_ids": str(booking_id)}
    assert str(booking_id) in (err.details() or "")
    assert await db.fetchval("SELECT count(*) FROM audit_events") == before
    assert await db.fetchval("SELECT status FROM bookings WHERE id = $1", booking_id) == "CONFIRMED"


@pytest.mark.parametrize("kind", KINDS)
async def test_retiring_with_cancel_bookings_cancels_them_with_a_reason(
    db: asyncpg.Connection, admin: Any, bookings: Any, kind: str
) -> None:
    slot_id, ids = await slot_with_all(db)
    booking_id = await confirmed(bookings, slot_id, f"p-cancel-{kind}")

    response = await retire(admin, kind, ids[kind], cancel_bookings=True, note="sent for repair")
    resource = getattr(response, kind)
    assert resource.HasField("retire_time") and resource.etag
    [cancelled] = response.cancelled_bookings
    assert (cancelled.id, cancelled.status) == (booking_id, booking_pb2.BOOKING_STATUS_CANCELLED)
    assert (cancelled.cancellation_reason, cancelled.cancellation_note) == (REASONS[kind], "sent for repair")
    assert cancelled.cancelled_by
    # The slot is no longer bookable, whoever asks.
    await refused(book(bookings, slot_id, patient_id="p-after"), FP, "RESOURCE_RETIRED")
    # A repeat changes nothing and cancels nothing.
    again = await retire(admin, kind, ids[kind], cancel_bookings=True)
    assert list(again.cancelled_bookings) == [] and getattr(again, kind).retire_time == resource.retire_time
    actions = {
        r["action"]: r["actor_role"]
        for r in await db.fetch(
            "SELECT action, actor_role FROM audit_events"
            " WHERE (resource_type, resource_id) IN (($1, $2), ('booking', $3))",
            kind,
            str(ids[kind]),
            str(booking_id),
        )
    }
    assert actions.get("booking.cancelled") == "admin" and actions.get(f"{kind}.updated") == "admin"


async def test_a_case_in_progress_blocks_a_retire_even_when_cancelling(
    db: asyncpg.Connection, admin: Any, bookings: Any
) -> None:
    slot_id, ids = await slot_with_all(db)
    booking_id = await confirmed(bookings, slot_id, "p-in-theatre")
    await db.execute("UPDATE bookings SET status = 'IN_PROGRESS' WHERE id = $1", booking_id)
    err = await refused(retire(admin, "room", ids["room"], cancel_bookings=True), FP, "RESOURCE_IN_USE")
    assert "in progress" in (err.details() or "")
    assert await db.fetchval("SELECT retire_time FROM rooms WHERE id = $1", ids["room"]) is None


async def test_a_stale_etag_refuses_a_retire(db: asyncpg.Connection, admin: Any) -> None:
    room = await insert_room(db)
    await refused(retire(admin, "room", room, etag="r0"), grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    assert (await retire(admin, "room", room, etag="r1")).room.HasField("retire_time")


async def test_retired_things_are_hidden_from_lists_but_admins_can_ask_for_them(
    db: asyncpg.Connection, admin: Any, slots: Any
) -> None:
    slot_id, ids = await slot_with_all(db, start=future(30))
    kept = await insert_slot(db, start=future(31))
    await retire(admin, "doctor", ids["doctor"])

    listed = [s.id for s in (await slots.ListSlots(S.ListSlotsRequest())).slots]
    assert listed == [kept]
    shown = {s.id: s for s in (await slots.ListSlots(S.ListSlotsRequest(show_retired=True))).slots}
    assert set(shown) == {slot_id, kept}
    assert shown[slot_id].HasField("retire_time") and not shown[slot_id].available
    assert shown[slot_id].doctor.HasField("retire_time")
    got = (await slots.GetSlot(S.GetSlotRequest(slot_id=slot_id))).slot
    assert got.HasField("retire_time") and not got.available

    doctors = [d.id for d in (await slots.ListDoctors(S.ListDoctorsRequest())).doctors]
    assert ids["doctor"] not in doctors
    assert ids["doctor"] in [d.id for d in (await slots.ListDoctors(S.ListDoctorsRequest(show_retired=True))).doctors]
    rooms = {r.id: r for r in (await admin.ListRooms(A.ListRoomsRequest())).rooms}
    assert not rooms[ids["room"]].HasField("retire_time")


async def test_nothing_new_is_published_or_rescheduled_onto_retired_things(
    db: asyncpg.Connection, admin: Any, bookings: Any
) -> None:
    slot_id, ids = await slot_with_all(db)
    await retire(admin, "equipment", ids["equipment"])
    start = future(90)
    request = A.CreateSlotRequest(
        doctor_id=ids["doctor"],
        room_id=ids["room"],
        procedure_type="Knee Arthroscopy",
        start_time=ts(start),
        end_time=ts(future(91)),
        required_equipment=[resources_pb2.EquipmentRequirement(equipment_id=ids["equipment"], quantity=1)],
    )
    err = await refused(admin.CreateSlot(request), FP, "RESOURCE_RETIRED")
    info, _ = error_details(err)
    assert info is not None and dict(info.metadata) == {"resource": "equipment", "id": str(ids["equipment"])}

    held = await book(bookings, await insert_slot(db), patient_id="p-moving")
    await refused(
        bookings.RescheduleBooking(booking_service_pb2.RescheduleBookingRequest(booking_id=held.id, slot_id=slot_id)),
        FP,
        "RESOURCE_RETIRED",
    )
    assert await db.fetchval("SELECT slot_id FROM bookings WHERE id = $1", held.id) == held.slot_id


async def test_the_database_refuses_a_booking_on_a_retired_slot_whatever_the_path(db: asyncpg.Connection) -> None:
    slot_id = await insert_slot(db)
    await db.execute("UPDATE slots SET retire_time = now() WHERE id = $1", slot_id)
    with pytest.raises(asyncpg.PostgresError) as caught:
        await db.execute(
            "INSERT INTO bookings (slot_id, room_id, doctor_id, start_time, end_time, room_free_time, patient_id,"
            " status, create_time, expire_time, update_time)"
            " SELECT id, room_id, doctor_id, start_time, end_time, end_time, 'p-raw', 'CONFIRMED', now(), now(), now()"
            " FROM slots WHERE id = $1",
            slot_id,
        )
    assert (caught.value.sqlstate, caught.value.args[0]) == ("ORF01", "RESOURCE_RETIRED")


async def test_retiring_with_cancel_is_announced_on_watch_slots(
    db: asyncpg.Connection,
    live_channel: grpc.aio.Channel,  # noqa: F811  (the fixture imported above)
) -> None:
    slot_id = await insert_slot(db)
    watcher = Watcher(live_channel, S.WatchSlotsRequest())
    assert await watcher.snapshot() == [slot_id]
    await barrier(db, watcher)
    bookings = booking_service_pb2_grpc.BookingServiceStub(live_channel)
    admin = admin_service_pb2_grpc.AdminServiceStub(live_channel)
    booking = (
        await bookings.CreateBooking(booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id="p-w"))
    ).booking
    assert (await watcher.change())[:2] == (slot_service_pb2.SLOT_CHANGE_KIND_BOOKED, slot_id)

    await admin.RetireSlot(A.RetireSlotRequest(slot_id=slot_id, cancel_bookings=True))

    changes = {(await watcher.change()) for _ in range(2)}
    assert changes == {(RELEASED, slot_id, False), (AVAILABILITY, slot_id, False)}
    assert await db.fetchval("SELECT status FROM bookings WHERE id = $1", booking.id) == "CANCELLED"
    watcher.call.cancel()
