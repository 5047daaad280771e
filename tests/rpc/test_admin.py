"""AdminService over the wire: the demo seed as a true reset, publishing slots, rooms, doctors, equipment."""

from __future__ import annotations

from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import timestamp_pb2
from orflow.v1 import admin_service_pb2, booking_service_pb2, resources_pb2, slot_service_pb2

from tests.factories import error_details, future, insert_doctor, insert_equipment, insert_room, insert_slot

SEED = admin_service_pb2.SeedDatabaseRequest()
DEMO_ROOMS = [
    "Apollo Room 101",
    "City Hospital 404",
    "Fortis Room 202",
    "Max Care 303",
    "St Thomas' Hybrid Theatre",
    "St Thomas' Theatre 1",
]  # by name
DEMO_EQUIPMENT = {"Ventilator": 5, "MRI Machine": 2, "ECG Monitor": 10, "Dialysis Unit": 3}


def ts(hours: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(future(hours))
    return stamp


async def all_slots(slots: Any) -> list[Any]:
    return list((await slots.ListSlots(slot_service_pb2.ListSlotsRequest(page_size=1000))).slots)


# --- SeedDatabase -------------------------------------------------------------------------------------


async def test_seed_loads_the_demo_set(db: asyncpg.Connection, admin: Any, slots: Any) -> None:
    counts = await admin.SeedDatabase(SEED)

    rooms = (await admin.ListRooms(admin_service_pb2.ListRoomsRequest())).rooms
    assert [r.name for r in rooms] == DEMO_ROOMS
    equipment = {
        e.name: e.quantity for e in (await admin.ListEquipment(admin_service_pb2.ListEquipmentRequest())).equipment
    }
    assert DEMO_EQUIPMENT.items() <= equipment.items()
    assert [name for name, quantity in equipment.items() if quantity == 1]  # a scarce item
    listed = await all_slots(slots)
    assert len(listed) >= 8
    assert all(s.available for s in listed)  # every demo slot is in the future and free
    doctors = (await slots.ListDoctors(slot_service_pb2.ListDoctorsRequest())).doctors
    assert (counts.room_count, counts.equipment_count, counts.doctor_count, counts.slot_count) == (
        6,
        len(equipment),
        len(doctors),
        len(listed),
    )
    procedures = {s.procedure_type for s in listed}
    assert {"Cardiac Bypass", "Brain Tumor Resection", "Knee Replacement", "Kidney Transplant"} <= procedures
    assert all(s.required_equipment and all(n.equipment_name for n in s.required_equipment) for s in listed)


async def test_seed_is_a_true_reset(db: asyncpg.Connection, admin: Any, bookings: Any, slots: Any) -> None:
    await insert_room(db, name="Leftover Room")
    await insert_slot(db)
    first = await admin.SeedDatabase(SEED)
    slot = (await all_slots(slots))[0]
    made = await bookings.CreateBooking(booking_service_pb2.CreateBookingRequest(slot_id=slot.id, patient_id="p-1"))
    await admin.CreateRoom(admin_service_pb2.CreateRoomRequest(name="Added After Seed"))

    again = await admin.SeedDatabase(SEED)

    assert again == first
    assert await db.fetchval("SELECT count(*) FROM bookings") == 0
    listed = (await admin.ListBookings(admin_service_pb2.ListBookingsRequest())).bookings
    assert list(listed) == []
    rooms = (await admin.ListRooms(admin_service_pb2.ListRoomsRequest())).rooms
    assert [r.name for r in rooms] == DEMO_ROOMS
    assert sorted(r.id for r in rooms) == [1, 2, 3, 4, 5, 6]  # identities restart
    reseeded = await all_slots(slots)
    assert min(s.id for s in reseeded) == 1
    assert all(s.available for s in reseeded)
    rebooked = await bookings.CreateBooking(booking_service_pb2.CreateBookingRequest(slot_id=slot.id, patient_id="p-1"))
    assert rebooked.booking.id == 1
    assert made.booking.id == 1


# --- CreateSlot ---------------------------------------------------------------------------------------


async def test_create_slot_returns_names_and_is_listed(db: asyncpg.Connection, admin: Any, slots: Any) -> None:
    room = await insert_room(db, name="Theatre 7")
    doctor = await insert_doctor(db, name="Dr. Ada Lovelace", specialty="Vascular Surgery")
    laser = await insert_equipment(db, name="Laser", quantity=2)
    monitor = await insert_equipment(db, name="Monitor", quantity=5)
    request = admin_service_pb2.CreateSlotRequest(
        doctor_id=doctor,
        room_id=room,
        procedure_type="Aneurysm Repair",
        start_time=ts(48),
        end_time=ts(51),
        required_equipment=[
            resources_pb2.EquipmentRequirement(equipment_id=monitor, quantity=2),
            resources_pb2.EquipmentRequirement(equipment_id=laser, quantity=1),
        ],
    )

    slot = (await admin.CreateSlot(request)).slot

    assert slot.id > 0
    assert (slot.room.id, slot.room.name) == (room, "Theatre 7")
    assert (slot.doctor.id, slot.doctor.name, slot.doctor.specialty) == (doctor, "Dr. Ada Lovelace", "Vascular Surgery")
    assert slot.procedure_type == "Aneurysm Repair"
    assert (slot.start_time, slot.end_time) == (request.start_time, request.end_time)
    assert sorted((n.equipment_id, n.equipment_name, n.quantity) for n in slot.required_equipment) == sorted(
        [(laser, "Laser", 1), (monitor, "Monitor", 2)]
    )
    assert slot.available is True
    assert slot.create_time.seconds > 0
    assert (await slots.GetSlot(slot_service_pb2.GetSlotRequest(slot_id=slot.id))).slot == slot
    assert [s.id for s in await all_slots(slots)] == [slot.id]


async def test_create_slot_needing_all_units_and_no_equipment(db: asyncpg.Connection, admin: Any) -> None:
    room, doctor = await insert_room(db), await insert_doctor(db)
    item = await insert_equipment(db, quantity=2)
    full = admin_service_pb2.CreateSlotRequest(
        doctor_id=doctor,
        room_id=room,
        procedure_type="X",
        start_time=ts(30),
        end_time=ts(54),  # exactly 24 h
        required_equipment=[resources_pb2.EquipmentRequirement(equipment_id=item, quantity=2)],
    )
    assert len((await admin.CreateSlot(full)).slot.required_equipment) == 1
    bare = admin_service_pb2.CreateSlotRequest(
        doctor_id=doctor, room_id=room, procedure_type="Y", start_time=ts(60), end_time=ts(61)
    )
    assert list((await admin.CreateSlot(bare)).slot.required_equipment) == []


# --- rooms, doctors, equipment ------------------------------------------------------------------------


async def test_create_room_and_list_rooms_by_name(db: asyncpg.Connection, admin: Any) -> None:
    created = [
        (await admin.CreateRoom(admin_service_pb2.CreateRoomRequest(name=name))).room
        for name in ("Zeta Theatre", "Alpha Theatre", "Mu Theatre")
    ]
    assert all(r.id > 0 for r in created)
    assert len({r.id for r in created}) == 3

    rooms = (await admin.ListRooms(admin_service_pb2.ListRoomsRequest())).rooms

    assert [(r.id, r.name) for r in rooms] == sorted(((r.id, r.name) for r in created), key=lambda pair: pair[1])

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.CreateRoom(admin_service_pb2.CreateRoomRequest(name="Alpha Theatre"))
    info, _ = error_details(caught.value)
    assert (caught.value.code(), info.reason if info else None) == (grpc.StatusCode.ALREADY_EXISTS, "ALREADY_EXISTS")


async def test_create_doctor_is_found_by_list_doctors(db: asyncpg.Connection, admin: Any, slots: Any) -> None:
    doctor = (
        await admin.CreateDoctor(admin_service_pb2.CreateDoctorRequest(name="Dr. Grace Hopper", specialty="Pediatrics"))
    ).doctor
    twin = (
        await admin.CreateDoctor(admin_service_pb2.CreateDoctorRequest(name="Dr. Grace Hopper", specialty="Pediatrics"))
    ).doctor  # names need not be unique

    assert (doctor.name, doctor.specialty) == ("Dr. Grace Hopper", "Pediatrics")
    assert doctor.id != twin.id
    found = (await slots.ListDoctors(slot_service_pb2.ListDoctorsRequest(query="hopper"))).doctors
    assert list(found) == [doctor, twin]


async def test_create_equipment_and_list_by_name(db: asyncpg.Connection, admin: Any) -> None:
    made = [
        (await admin.CreateEquipment(admin_service_pb2.CreateEquipmentRequest(name=name, quantity=qty))).equipment
        for name, qty in (("Suction Pump", 4), ("Anesthesia Cart", 0), ("C-Arm", 100_000))
    ]
    assert [(e.name, e.quantity) for e in made] == [("Suction Pump", 4), ("Anesthesia Cart", 0), ("C-Arm", 100_000)]

    listed = (await admin.ListEquipment(admin_service_pb2.ListEquipmentRequest())).equipment

    assert [e.name for e in listed] == ["Anesthesia Cart", "C-Arm", "Suction Pump"]
    assert {e.id: e for e in listed} == {e.id: e for e in made}


async def test_equipment_with_zero_units_cannot_be_required(db: asyncpg.Connection, admin: Any) -> None:
    room, doctor = await insert_room(db), await insert_doctor(db)
    item = (await admin.CreateEquipment(admin_service_pb2.CreateEquipmentRequest(name="Broken", quantity=0))).equipment
    request = admin_service_pb2.CreateSlotRequest(
        doctor_id=doctor,
        room_id=room,
        procedure_type="X",
        start_time=ts(30),
        end_time=ts(31),
        required_equipment=[resources_pb2.EquipmentRequirement(equipment_id=item.id, quantity=1)],
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.CreateSlot(request)
    _, violations = error_details(caught.value)
    assert (caught.value.code(), [f for f, _ in violations]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ["required_equipment[0].quantity"],
    )


async def test_slot_published_by_admin_is_bookable(db: asyncpg.Connection, admin: Any, bookings: Any) -> None:
    room, doctor = await insert_room(db), await insert_doctor(db)
    slot = (
        await admin.CreateSlot(
            admin_service_pb2.CreateSlotRequest(
                doctor_id=doctor, room_id=room, procedure_type="X", start_time=ts(30), end_time=ts(31)
            )
        )
    ).slot
    booked = await bookings.CreateBooking(booking_service_pb2.CreateBookingRequest(slot_id=slot.id, patient_id="p"))
    assert booked.booking.slot_id == slot.id


async def test_bookings_listed_by_many_slots_in_one_call(db: asyncpg.Connection, admin: Any, bookings: Any) -> None:
    """ListBookings' slot_ids: a day board's slots in one call; bad ids are field violations, nothing read."""
    first, second, other = await insert_slot(db), await insert_slot(db), await insert_slot(db)
    made = {
        s: (
            await bookings.CreateBooking(booking_service_pb2.CreateBookingRequest(slot_id=s, patient_id=f"p-{s}"))
        ).booking
        for s in (first, second, other)
    }
    request = admin_service_pb2.ListBookingsRequest(slot_ids=[second, first, second], page_size=1)
    pages = [await admin.ListBookings(request)]
    while pages[-1].next_page_token:  # a token carries the same filter
        request = admin_service_pb2.ListBookingsRequest(
            slot_ids=[first, second], page_size=1, page_token=pages[-1].next_page_token
        )
        pages.append(await admin.ListBookings(request))
    assert [b.id for page in pages for b in page.bookings] == [made[second].id, made[first].id]

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.ListBookings(admin_service_pb2.ListBookingsRequest(slot_ids=[first, 0]))
    _, violations = error_details(caught.value)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in violations] == ["slot_ids[1]"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.ListBookings(admin_service_pb2.ListBookingsRequest(slot_ids=list(range(1, 1002))))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
