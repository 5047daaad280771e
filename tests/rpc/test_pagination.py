"""Listing over the wire: keyset pages with no duplicates or gaps, ordering, and every filter of
ListSlots, ListDoctors and ListBookings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from google.protobuf import timestamp_pb2
from orflow.v1 import admin_service_pb2, booking_pb2, booking_service_pb2, slot_service_pb2

from tests.factories import future, insert_doctor, insert_room, insert_slot

ListSlots = slot_service_pb2.ListSlotsRequest
ListDoctors = slot_service_pb2.ListDoctorsRequest
ListBookings = admin_service_pb2.ListBookingsRequest


def ts(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def day(days: int = 3) -> datetime:
    return future(24 * days).replace(hour=0, minute=0)


async def pages(
    list_call: Callable[[Any], Awaitable[Any]], make: Callable[..., Any], items: str, **filters: Any
) -> list[list[Any]]:
    """Every page of a listing, following next_page_token with the same filters."""
    result: list[list[Any]] = []
    token = ""
    for _ in range(100):
        page = await list_call(make(page_token=token, **filters))
        result.append(list(getattr(page, items)))
        token = page.next_page_token
        if not token:
            return result
    raise AssertionError("more than 100 pages")


async def all_slot_ids(slots: Any, **filters: Any) -> list[int]:
    return [s.id for page in await pages(slots.ListSlots, ListSlots, "slots", **filters) for s in page]


async def book(bookings: Any, slot_id: int, patient_id: str = "p-1") -> booking_pb2.Booking:
    response = await bookings.CreateBooking(
        booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id=patient_id)
    )
    return response.booking


# --- ListSlots paging ---------------------------------------------------------------------------------


async def test_list_slots_pages_of_10_10_5_in_order_without_gaps(db: asyncpg.Connection, slots: Any) -> None:
    base = day()
    shared = base + timedelta(hours=9)
    created: list[int] = []
    for i in range(25):
        # 13 slots share one start_time; the rest are spread before and after it, inserted out of order.
        start = shared if i % 2 == 0 else base + timedelta(hours=(7 * i) % 20, minutes=5)
        created.append(await insert_slot(db, start=start))
    expected = [r["id"] for r in await db.fetch("SELECT id FROM slots ORDER BY start_time, id")]

    result = await pages(slots.ListSlots, ListSlots, "slots", page_size=10)

    assert [len(p) for p in result] == [10, 10, 5]
    listed = [s.id for p in result for s in p]
    assert listed == expected
    assert sorted(listed) == sorted(created)
    keys = [(s.start_time.ToDatetime(), s.id) for p in result for s in p]
    assert keys == sorted(keys)


async def test_list_slots_all_sharing_one_start_time(db: asyncpg.Connection, slots: Any) -> None:
    start = day() + timedelta(hours=8)
    created = [await insert_slot(db, start=start) for _ in range(7)]

    result = await pages(slots.ListSlots, ListSlots, "slots", page_size=3)

    assert [len(p) for p in result] == [3, 3, 1]
    assert [s.id for p in result for s in p] == sorted(created)


async def test_exact_multiple_of_page_size_ends_with_empty_token(db: asyncpg.Connection, slots: Any) -> None:
    for i in range(4):
        await insert_slot(db, start=day() + timedelta(hours=i))
    result = await pages(slots.ListSlots, ListSlots, "slots", page_size=2)
    assert [len(p) for p in result] == [2, 2]


async def test_new_slot_after_the_cursor_appears_on_a_later_page(db: asyncpg.Connection, slots: Any) -> None:
    base = day()
    for i in range(4):
        await insert_slot(db, start=base + timedelta(hours=i))
    first = await slots.ListSlots(ListSlots(page_size=2))
    early = await insert_slot(db, start=base - timedelta(hours=1))  # before the cursor: not seen again
    late = await insert_slot(db, start=base + timedelta(hours=10))

    continued = await slots.ListSlots(ListSlots(page_size=10, page_token=first.next_page_token))

    ids = [s.id for s in continued.slots]
    assert early not in ids
    assert ids[-1] == late
    assert len(ids) == 3


# --- ListSlots filters --------------------------------------------------------------------------------


async def test_filter_procedure_type_is_exact_and_case_insensitive(db: asyncpg.Connection, slots: Any) -> None:
    base = day()
    bypass = await insert_slot(db, start=base + timedelta(hours=8), procedure_type="Cardiac Bypass")
    other_case = await insert_slot(db, start=base + timedelta(hours=9), procedure_type="CARDIAC BYPASS")
    await insert_slot(db, start=base + timedelta(hours=10), procedure_type="Cardiac Bypass Redo")
    await insert_slot(db, start=base + timedelta(hours=11), procedure_type="Appendectomy")

    assert await all_slot_ids(slots, procedure_type="cardiac bypass") == [bypass, other_case]
    assert await all_slot_ids(slots, procedure_type="Cardiac") == []


async def test_filter_doctor_and_room(db: asyncpg.Connection, slots: Any) -> None:
    base = day()
    room, doctor = await insert_room(db), await insert_doctor(db)
    in_room = [await insert_slot(db, room_id=room, start=base + timedelta(hours=h)) for h in (8, 12)]
    by_doctor = [await insert_slot(db, doctor_id=doctor, start=base + timedelta(hours=h)) for h in (9, 13)]
    both = await insert_slot(db, room_id=room, doctor_id=doctor, start=base + timedelta(hours=16))
    await insert_slot(db, start=base + timedelta(hours=10))

    assert await all_slot_ids(slots, room_id=room, page_size=1) == [*in_room, both]
    assert await all_slot_ids(slots, doctor_id=doctor, page_size=1) == [*by_doctor, both]
    assert await all_slot_ids(slots, room_id=room, doctor_id=doctor) == [both]


async def test_filter_window_start_inclusive_end_exclusive(db: asyncpg.Connection, slots: Any) -> None:
    base = day()
    ids = {h: await insert_slot(db, start=base + timedelta(hours=h), hours=1) for h in (6, 8, 10, 12)}

    window = {"window_start": ts(base + timedelta(hours=8)), "window_end": ts(base + timedelta(hours=12))}
    assert await all_slot_ids(slots, **window) == [ids[8], ids[10]]
    assert await all_slot_ids(slots, window_start=ts(base + timedelta(hours=10))) == [ids[10], ids[12]]
    assert await all_slot_ids(slots, window_end=ts(base + timedelta(hours=8))) == [ids[6]]
    # a slot that starts before the window but runs into it is not listed (the filter is on start_time)
    assert await all_slot_ids(slots, window_start=ts(base + timedelta(hours=6, minutes=30))) == [
        ids[8],
        ids[10],
        ids[12],
    ]


async def test_available_only(db: asyncpg.Connection, slots: Any, bookings: Any) -> None:
    base = day()
    room, doctor = await insert_room(db), await insert_doctor(db)
    held = await insert_slot(db, room_id=room, start=base + timedelta(hours=8), hours=2)
    room_clash = await insert_slot(db, room_id=room, start=base + timedelta(hours=9), hours=2)
    surgeon_slot = await insert_slot(db, doctor_id=doctor, start=base + timedelta(hours=13), hours=2)
    surgeon_clash = await insert_slot(db, doctor_id=doctor, start=base + timedelta(hours=14), hours=2)
    free = await insert_slot(db, start=base + timedelta(hours=20))
    past = await insert_slot(db, start=future(-3), hours=1)
    first = await book(bookings, held, "p-1")
    second = await book(bookings, surgeon_slot, "p-2")

    assert await all_slot_ids(slots, available_only=True, page_size=1) == [free]
    assert set(await all_slot_ids(slots)) == {held, room_clash, surgeon_slot, surgeon_clash, free, past}
    flags = {s.id: s.available for p in await pages(slots.ListSlots, ListSlots, "slots") for s in p}
    assert flags == {held: False, room_clash: False, surgeon_slot: False, surgeon_clash: False, free: True, past: False}

    await bookings.CancelBooking(booking_service_pb2.CancelBookingRequest(booking_id=first.id))
    await bookings.ConfirmBooking(booking_service_pb2.ConfirmBookingRequest(booking_id=second.id))
    assert await all_slot_ids(slots, available_only=True) == [held, room_clash, free]

    got = await slots.GetSlot(slot_service_pb2.GetSlotRequest(slot_id=surgeon_slot))
    assert got.slot.available is False


async def test_available_only_shows_an_overdue_hold_as_free(db: asyncpg.Connection, slots: Any, bookings: Any) -> None:
    slot_id = await insert_slot(db)
    held = await book(bookings, slot_id)
    assert await all_slot_ids(slots, available_only=True) == []

    await db.execute("UPDATE bookings SET expire_time = now() - interval '1 second' WHERE id = $1", held.id)
    assert await all_slot_ids(slots, available_only=True) == [slot_id]


async def test_filters_combine_with_paging(db: asyncpg.Connection, slots: Any, bookings: Any) -> None:
    base = day()
    room = await insert_room(db)
    wanted = []
    for h in range(8):
        slot_id = await insert_slot(
            db, room_id=room, start=base + timedelta(hours=3 * h), hours=2, procedure_type="Knee"
        )
        if h % 3 == 0:
            await book(bookings, slot_id, f"p-{h}")
        else:
            wanted.append(slot_id)
        await insert_slot(db, start=base + timedelta(hours=3 * h), procedure_type="Knee")  # other rooms

    found = await all_slot_ids(slots, room_id=room, procedure_type="knee", available_only=True, page_size=2)
    assert found == wanted


# --- ListDoctors --------------------------------------------------------------------------------------


async def test_list_doctors_by_name_and_specialty(db: asyncpg.Connection, slots: Any) -> None:
    iyer = await insert_doctor(db, name="Dr. Meera Iyer", specialty="Cardiothoracic Surgery")
    mehta = await insert_doctor(db, name="Dr. Arjun Mehta", specialty="Neurosurgery")
    collins = await insert_doctor(db, name="Dr. Sarah Collins", specialty="Orthopedic Surgery")

    async def query(text: str) -> list[int]:
        return [d.id for p in await pages(slots.ListDoctors, ListDoctors, "doctors", query=text) for d in p]

    assert await query("meera") == [iyer]
    assert await query("CARDIO") == [iyer]
    assert await query("surgery") == [mehta, iyer, collins]  # "Neurosurgery" contains it too
    assert await query("neuro") == [mehta]
    assert await query("") == [mehta, iyer, collins]  # by name: Arjun, Meera, Sarah
    assert await query("%") == []  # LIKE wildcards are literal
    assert await query("_") == []
    assert await query("nobody") == []


async def test_list_doctors_pages_by_name_then_id(db: asyncpg.Connection, slots: Any) -> None:
    created = [await insert_doctor(db, name=f"Dr. {chr(ord('A') + (i * 7) % 11)}") for i in range(11)]
    created += [await insert_doctor(db, name="Dr. A") for _ in range(3)]  # duplicate names, told apart by id
    expected = [r["id"] for r in await db.fetch("SELECT id FROM doctors ORDER BY name, id")]

    result = await pages(slots.ListDoctors, ListDoctors, "doctors", page_size=4)

    assert [len(p) for p in result] == [4, 4, 4, 2]
    assert [d.id for p in result for d in p] == expected
    assert sorted(expected) == sorted(created)


# --- ListBookings -------------------------------------------------------------------------------------


async def test_list_bookings_newest_first_with_paging(db: asyncpg.Connection, bookings: Any, admin: Any) -> None:
    base = day()
    made = [
        await book(bookings, await insert_slot(db, start=base + timedelta(hours=2 * i)), f"p-{i}") for i in range(7)
    ]

    result = await pages(admin.ListBookings, ListBookings, "bookings", page_size=3)

    assert [len(p) for p in result] == [3, 3, 1]
    assert [b.id for p in result for b in p] == sorted((b.id for b in made), reverse=True)


async def test_list_bookings_filters(db: asyncpg.Connection, bookings: Any, admin: Any) -> None:
    base = day()
    slot_a = await insert_slot(db, start=base + timedelta(hours=8))
    slot_b = await insert_slot(db, start=base + timedelta(hours=12))
    slot_c = await insert_slot(db, start=base + timedelta(hours=16))
    cancelled = await book(bookings, slot_a, "alice")
    await bookings.CancelBooking(booking_service_pb2.CancelBookingRequest(booking_id=cancelled.id))
    confirmed = await book(bookings, slot_a, "bob")
    await bookings.ConfirmBooking(booking_service_pb2.ConfirmBookingRequest(booking_id=confirmed.id))
    overdue = await book(bookings, slot_b, "alice")
    await db.execute("UPDATE bookings SET expire_time = now() - interval '1 second' WHERE id = $1", overdue.id)
    pending = await book(bookings, slot_c, "alice")

    async def ids(**filters: Any) -> list[int]:
        return [
            b.id for p in await pages(admin.ListBookings, ListBookings, "bookings", page_size=1, **filters) for b in p
        ]

    assert await ids() == [pending.id, overdue.id, confirmed.id, cancelled.id]
    assert await ids(status=booking_pb2.BOOKING_STATUS_PENDING) == [pending.id]
    assert await ids(status=booking_pb2.BOOKING_STATUS_FAILED) == [overdue.id]  # still PENDING in the table
    assert await db.fetchval("SELECT status FROM bookings WHERE id = $1", overdue.id) == "PENDING"
    assert await ids(status=booking_pb2.BOOKING_STATUS_CONFIRMED) == [confirmed.id]
    assert await ids(status=booking_pb2.BOOKING_STATUS_CANCELLED) == [cancelled.id]
    assert await ids(patient_id="alice") == [pending.id, overdue.id, cancelled.id]
    assert await ids(patient_id="ALICE") == []
    assert await ids(slot_id=slot_a) == [confirmed.id, cancelled.id]
    assert await ids(patient_id="alice", slot_id=slot_a) == [cancelled.id]
    assert await ids(patient_id="alice", status=booking_pb2.BOOKING_STATUS_FAILED) == [overdue.id]

    listed = {b.id: b for b in (await admin.ListBookings(ListBookings())).bookings}
    assert listed[overdue.id].status == booking_pb2.BOOKING_STATUS_FAILED
    assert listed[overdue.id].failure_reason == booking_pb2.FAILURE_REASON_HOLD_EXPIRED
    assert listed[cancelled.id].status == booking_pb2.BOOKING_STATUS_CANCELLED
