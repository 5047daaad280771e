"""BookingService over the wire: idempotency, every conflict, the equipment peak rule, turnover,
expiry, and the life-cycle preconditions. Codes and ErrorInfo reasons only, never message text."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import grpc
import pytest
import pytest_asyncio
from orflow.v1 import admin_service_pb2, booking_pb2, booking_service_pb2, booking_service_pb2_grpc

from tests.auth import authorized_channel
from tests.factories import error_details, future, insert_doctor, insert_equipment, insert_room, insert_slot, snapshot

Create = booking_service_pb2.CreateBookingRequest
Get = booking_service_pb2.GetBookingRequest
Confirm = booking_service_pb2.ConfirmBookingRequest
Cancel = booking_service_pb2.CancelBookingRequest


def day(days: int = 3) -> datetime:
    """Midnight UTC at least `days` days ahead, so hour offsets are always in the future."""
    return future(24 * days).replace(hour=0, minute=0)


async def refused(call: Awaitable[Any], code: grpc.StatusCode, reason: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    err = caught.value
    info, _ = error_details(err)
    assert (err.code(), info.reason if info else None) == (code, reason)
    assert info is not None and info.domain == "orflow"
    return err


async def book(stub: Any, slot_id: int, patient_id: str = "p-1", request_id: str = "") -> booking_pb2.Booking:
    response = await stub.CreateBooking(Create(slot_id=slot_id, patient_id=patient_id, request_id=request_id))
    return response.booking


async def expire(db: asyncpg.Connection, booking_id: int) -> None:
    """Makes a hold overdue by the database clock, as if its TTL had passed (no job marks it)."""
    await db.execute("UPDATE bookings SET expire_time = now() - interval '1 second' WHERE id = $1", booking_id)


async def until_the_database_clock_passes(db: asyncpg.Connection, booking_id: int) -> None:
    """Waits until expire_time is past by the clock the server reads (within a few seconds: TTLs here are short)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if await db.fetchval("SELECT clock_timestamp() > expire_time FROM bookings WHERE id = $1", booking_id):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"booking {booking_id}'s expire_time did not pass within 5 s")


@pytest_asyncio.fixture(loop_scope="session")
async def stub_for(start_server: Any) -> AsyncIterator[Any]:
    """Starts a server with settings overrides and returns a BookingService stub on it."""
    channels: list[grpc.aio.Channel] = []

    async def make(**overrides: Any) -> booking_service_pb2_grpc.BookingServiceStub:
        channel = authorized_channel(await start_server(**overrides))
        channels.append(channel)
        return booking_service_pb2_grpc.BookingServiceStub(channel)

    yield make
    for channel in channels:
        await channel.close()


# --- idempotency ------------------------------------------------------------------------------------


async def test_same_request_id_returns_the_same_booking(db: asyncpg.Connection, bookings: Any) -> None:
    slot_id = await insert_slot(db)
    first = await book(bookings, slot_id, "p-1", "req-1")
    again = await book(bookings, slot_id, "p-1", "req-1")

    assert again == first
    assert first.request_id == "req-1"
    assert await db.fetchval("SELECT count(*) FROM bookings") == 1


async def test_a_replayed_request_says_so(db: asyncpg.Connection, bookings: Any) -> None:
    """CreateBookingResponse.replayed: False for the call that held the slot, True for its retries."""
    slot_id = await insert_slot(db)
    first = await bookings.CreateBooking(Create(slot_id=slot_id, patient_id="p-1", request_id="req-r"))
    again = await bookings.CreateBooking(Create(slot_id=slot_id, patient_id="p-1", request_id="req-r"))
    assert (first.replayed, again.replayed) == (False, True)
    assert again.booking == first.booking


async def test_same_request_id_for_another_slot_is_refused(db: asyncpg.Connection, bookings: Any) -> None:
    first_slot = await insert_slot(db, start=day() + timedelta(hours=8))
    other_slot = await insert_slot(db, start=day() + timedelta(hours=14))
    await book(bookings, first_slot, "p-1", "req-1")
    before = await snapshot(db)

    err = await refused(
        bookings.CreateBooking(Create(slot_id=other_slot, patient_id="p-1", request_id="req-1")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "REQUEST_ID_REUSED",
    )
    _, violations = error_details(err)
    assert [field for field, _ in violations] == ["request_id"]
    assert await snapshot(db) == before


async def test_request_id_is_scoped_to_the_patient(db: asyncpg.Connection, bookings: Any) -> None:
    first_slot = await insert_slot(db, start=day() + timedelta(hours=8))
    other_slot = await insert_slot(db, start=day() + timedelta(hours=14))
    a = await book(bookings, first_slot, "p-1", "req-1")
    b = await book(bookings, other_slot, "p-2", "req-1")
    assert a.id != b.id


async def test_retry_after_cancel_returns_the_cancelled_booking(db: asyncpg.Connection, bookings: Any) -> None:
    slot_id = await insert_slot(db)
    first = await book(bookings, slot_id, "p-1", "req-1")
    await bookings.CancelBooking(Cancel(booking_id=first.id))

    again = await book(bookings, slot_id, "p-1", "req-1")

    assert again.id == first.id
    assert again.status == booking_pb2.BOOKING_STATUS_CANCELLED
    assert await db.fetchval("SELECT count(*) FROM bookings") == 1


async def test_retry_of_an_overdue_hold_reads_as_get_booking_does(db: asyncpg.Connection, bookings: Any) -> None:
    """Regression: the replay used to return the stored row, reading PENDING past its expire_time."""
    slot_id = await insert_slot(db)
    first = await book(bookings, slot_id, "p-1", "req-1")
    await expire(db, first.id)

    again = await book(bookings, slot_id, "p-1", "req-1")
    got = (await bookings.GetBooking(Get(booking_id=first.id))).booking

    assert got.status == booking_pb2.BOOKING_STATUS_FAILED
    assert (again.id, again.status, again.failure_reason) == (got.id, got.status, got.failure_reason)


async def test_concurrent_duplicates_make_one_booking(db: asyncpg.Connection, bookings: Any) -> None:
    slot_id = await insert_slot(db)

    results = await asyncio.gather(*(book(bookings, slot_id, "p-1", "req-1") for _ in range(20)))

    assert len({b.id for b in results}) == 1
    assert await db.fetchval("SELECT count(*) FROM bookings") == 1


# --- conflicts ----------------------------------------------------------------------------------------


async def test_slot_taken(db: asyncpg.Connection, bookings: Any) -> None:
    slot_id = await insert_slot(db)
    await book(bookings, slot_id, "p-1")
    before = await snapshot(db)

    await refused(
        bookings.CreateBooking(Create(slot_id=slot_id, patient_id="p-2")), grpc.StatusCode.ABORTED, "SLOT_TAKEN"
    )
    assert await snapshot(db) == before


async def test_room_busy(db: asyncpg.Connection, bookings: Any) -> None:
    room = await insert_room(db)
    first = await insert_slot(db, room_id=room, start=day() + timedelta(hours=8), hours=2)
    overlapping = await insert_slot(db, room_id=room, start=day() + timedelta(hours=9), hours=2)
    await book(bookings, first, "p-1")

    await refused(
        bookings.CreateBooking(Create(slot_id=overlapping, patient_id="p-2")), grpc.StatusCode.ABORTED, "ROOM_BUSY"
    )


async def test_surgeon_busy(db: asyncpg.Connection, bookings: Any) -> None:
    doctor = await insert_doctor(db)
    first = await insert_slot(db, doctor_id=doctor, start=day() + timedelta(hours=8), hours=2)
    overlapping = await insert_slot(db, doctor_id=doctor, start=day() + timedelta(hours=9), hours=2)
    await book(bookings, first, "p-1")

    await refused(
        bookings.CreateBooking(Create(slot_id=overlapping, patient_id="p-2")), grpc.StatusCode.ABORTED, "SURGEON_BUSY"
    )


async def test_patient_busy(db: asyncpg.Connection, bookings: Any) -> None:
    first = await insert_slot(db, start=day() + timedelta(hours=8), hours=2)
    overlapping = await insert_slot(db, start=day() + timedelta(hours=9), hours=2)
    await book(bookings, first, "p-1")

    await refused(
        bookings.CreateBooking(Create(slot_id=overlapping, patient_id="p-1")), grpc.StatusCode.ABORTED, "PATIENT_BUSY"
    )


async def test_back_to_back_slots_in_one_room_for_one_surgeon_and_patient(
    db: asyncpg.Connection, bookings: Any
) -> None:
    room, doctor = await insert_room(db), await insert_doctor(db)
    first = await insert_slot(db, room_id=room, doctor_id=doctor, start=day() + timedelta(hours=8), hours=2)
    second = await insert_slot(db, room_id=room, doctor_id=doctor, start=day() + timedelta(hours=10), hours=2)

    await book(bookings, first, "p-1")
    await book(bookings, second, "p-1")


async def test_equipment_unavailable_beyond_inventory(db: asyncpg.Connection, bookings: Any) -> None:
    item = await insert_equipment(db, quantity=2)
    start = day() + timedelta(hours=8)
    slot_ids = [await insert_slot(db, start=start, hours=2, equipment=[(item, 1)]) for _ in range(3)]
    await book(bookings, slot_ids[0], "p-1")
    await book(bookings, slot_ids[1], "p-2")
    before = await snapshot(db)

    err = await refused(
        bookings.CreateBooking(Create(slot_id=slot_ids[2], patient_id="p-3")),
        grpc.StatusCode.ABORTED,
        "EQUIPMENT_UNAVAILABLE",
    )
    info, _ = error_details(err)
    assert info is not None and info.metadata["equipment_id"] == str(item)
    assert await snapshot(db) == before


async def test_equipment_back_to_back_both_succeed_and_spanning_slot_fails(
    db: asyncpg.Connection, bookings: Any
) -> None:
    item = await insert_equipment(db, quantity=1)
    base = day()
    early = await insert_slot(db, start=base + timedelta(hours=8), hours=2, equipment=[(item, 1)])
    late = await insert_slot(db, start=base + timedelta(hours=10), hours=2, equipment=[(item, 1)])
    spanning = await insert_slot(db, start=base + timedelta(hours=8), hours=4, equipment=[(item, 1)])

    await book(bookings, early, "p-1")
    await book(bookings, late, "p-2")  # [8,10) and [10,12) never use the unit at the same instant
    await refused(
        bookings.CreateBooking(Create(slot_id=spanning, patient_id="p-3")),
        grpc.StatusCode.ABORTED,
        "EQUIPMENT_UNAVAILABLE",
    )


async def test_equipment_uses_the_peak_not_the_sum(db: asyncpg.Connection, bookings: Any) -> None:
    item = await insert_equipment(db, quantity=2)
    base = day()
    a = await insert_slot(db, start=base + timedelta(hours=8), hours=1, equipment=[(item, 1)])
    b = await insert_slot(db, start=base + timedelta(hours=10), hours=1, equipment=[(item, 1)])
    spanning = await insert_slot(db, start=base + timedelta(hours=8), hours=3, equipment=[(item, 1)])
    await book(bookings, a, "p-1")
    await book(bookings, b, "p-2")

    # At most 1 unit is in use at any instant of [8,11), so 1 more fits (a sum would say 2 + 1 > 2).
    booked = await book(bookings, spanning, "p-3")
    assert booked.status == booking_pb2.BOOKING_STATUS_PENDING


async def test_equipment_peak_refuses_when_overlaps_coincide(db: asyncpg.Connection, bookings: Any) -> None:
    item = await insert_equipment(db, quantity=2)
    base = day()
    a = await insert_slot(db, start=base + timedelta(hours=8), hours=2, equipment=[(item, 1)])
    b = await insert_slot(db, start=base + timedelta(hours=9), hours=2, equipment=[(item, 1)])
    spanning = await insert_slot(db, start=base + timedelta(hours=8), hours=4, equipment=[(item, 1)])
    await book(bookings, a, "p-1")
    await book(bookings, b, "p-2")  # both units in use during [9,10)

    await refused(
        bookings.CreateBooking(Create(slot_id=spanning, patient_id="p-3")),
        grpc.StatusCode.ABORTED,
        "EQUIPMENT_UNAVAILABLE",
    )


async def test_cancelled_booking_frees_its_equipment(db: asyncpg.Connection, bookings: Any) -> None:
    item = await insert_equipment(db, quantity=1)
    start = day() + timedelta(hours=8)
    first = await insert_slot(db, start=start, equipment=[(item, 1)])
    second = await insert_slot(db, start=start, equipment=[(item, 1)])
    held = await book(bookings, first, "p-1")
    await bookings.CancelBooking(Cancel(booking_id=held.id))

    await book(bookings, second, "p-2")


# --- turnover -----------------------------------------------------------------------------------------


async def test_turnover_buffer_keeps_the_room_busy(db: asyncpg.Connection, stub_for: Any) -> None:
    stub = await stub_for(turnover=timedelta(minutes=30))
    room = await insert_room(db)
    base = day()
    first = await insert_slot(db, room_id=room, start=base + timedelta(hours=8), hours=2)
    too_soon = await insert_slot(db, room_id=room, start=base + timedelta(hours=10, minutes=15), hours=1.75)
    after_turnover = await insert_slot(db, room_id=room, start=base + timedelta(hours=10, minutes=30), hours=1.5)
    await book(stub, first, "p-1")

    await refused(stub.CreateBooking(Create(slot_id=too_soon, patient_id="p-2")), grpc.StatusCode.ABORTED, "ROOM_BUSY")
    await book(stub, after_turnover, "p-2")


async def test_turnover_buffer_applies_before_a_later_booking(db: asyncpg.Connection, stub_for: Any) -> None:
    stub = await stub_for(turnover=timedelta(minutes=30))
    room = await insert_room(db)
    base = day()
    later = await insert_slot(db, room_id=room, start=base + timedelta(hours=10), hours=2)
    ends_too_late = await insert_slot(db, room_id=room, start=base + timedelta(hours=8), hours=1.75)
    await book(stub, later, "p-1")

    await refused(
        stub.CreateBooking(Create(slot_id=ends_too_late, patient_id="p-2")), grpc.StatusCode.ABORTED, "ROOM_BUSY"
    )


# --- rebooking after cancel and after expiry --------------------------------------------------------


async def test_rebook_after_cancel(db: asyncpg.Connection, bookings: Any) -> None:
    slot_id = await insert_slot(db)
    first = await book(bookings, slot_id, "p-1")
    cancelled = (await bookings.CancelBooking(Cancel(booking_id=first.id))).booking
    assert cancelled.status == booking_pb2.BOOKING_STATUS_CANCELLED

    second = await book(bookings, slot_id, "p-2")
    assert second.id != first.id
    assert second.status == booking_pb2.BOOKING_STATUS_PENDING


async def test_overdue_hold_is_free_before_any_job_marks_it(db: asyncpg.Connection, bookings: Any) -> None:
    slot_id = await insert_slot(db)
    first = await book(bookings, slot_id, "p-1")
    await expire(db, first.id)
    assert await db.fetchval("SELECT status FROM bookings WHERE id = $1", first.id) == "PENDING"

    second = await book(bookings, slot_id, "p-2")

    assert second.status == booking_pb2.BOOKING_STATUS_PENDING
    old = (await bookings.GetBooking(Get(booking_id=first.id))).booking
    assert old.status == booking_pb2.BOOKING_STATUS_FAILED
    assert old.failure_reason == booking_pb2.FAILURE_REASON_HOLD_EXPIRED
    row = await db.fetchrow("SELECT status, failure_reason FROM bookings WHERE id = $1", first.id)
    assert tuple(row) == ("FAILED", "HOLD_EXPIRED")


async def test_hold_ttl_expires_by_the_clock(db: asyncpg.Connection, stub_for: Any) -> None:
    stub = await stub_for(hold_ttl=timedelta(seconds=1))
    slot_id = await insert_slot(db)
    first = await book(stub, slot_id, "p-1")
    assert first.expire_time.ToDatetime() - first.create_time.ToDatetime() == timedelta(seconds=1)

    await until_the_database_clock_passes(db, first.id)
    unmarked = (await stub.GetBooking(Get(booking_id=first.id))).booking
    assert unmarked.status == booking_pb2.BOOKING_STATUS_FAILED
    assert unmarked.failure_reason == booking_pb2.FAILURE_REASON_HOLD_EXPIRED

    second = await book(stub, slot_id, "p-1")  # the same patient may hold it again
    assert second.id != first.id


async def test_overdue_hold_frees_room_and_surgeon_too(db: asyncpg.Connection, bookings: Any) -> None:
    room, doctor = await insert_room(db), await insert_doctor(db)
    base = day()
    first = await insert_slot(db, room_id=room, start=base + timedelta(hours=8), hours=2)
    same_room = await insert_slot(db, room_id=room, start=base + timedelta(hours=9), hours=2)
    other = await insert_slot(db, doctor_id=doctor, start=base + timedelta(hours=13), hours=2)
    same_surgeon = await insert_slot(db, doctor_id=doctor, start=base + timedelta(hours=14), hours=2)
    held = [await book(bookings, first, "p-1"), await book(bookings, other, "p-2")]
    for booking in held:
        await expire(db, booking.id)

    await book(bookings, same_room, "p-3")
    await book(bookings, same_surgeon, "p-4")


# --- confirm and cancel preconditions ---------------------------------------------------------------


async def test_confirm_after_expiry_is_refused_and_writes_nothing(db: asyncpg.Connection, bookings: Any) -> None:
    slot_id = await insert_slot(db)
    held = await book(bookings, slot_id)
    await expire(db, held.id)
    before = await snapshot(db)

    err = await refused(
        bookings.ConfirmBooking(Confirm(booking_id=held.id)), grpc.StatusCode.FAILED_PRECONDITION, "HOLD_EXPIRED"
    )
    info, _ = error_details(err)
    assert info is not None and info.metadata["booking_id"] == str(held.id)
    assert await snapshot(db) == before


async def test_confirm_twice(db: asyncpg.Connection, bookings: Any) -> None:
    held = await book(bookings, await insert_slot(db))
    confirmed = (await bookings.ConfirmBooking(Confirm(booking_id=held.id))).booking
    assert confirmed.status == booking_pb2.BOOKING_STATUS_CONFIRMED
    before = await snapshot(db)

    await refused(
        bookings.ConfirmBooking(Confirm(booking_id=held.id)), grpc.StatusCode.FAILED_PRECONDITION, "BOOKING_NOT_PENDING"
    )
    assert await snapshot(db) == before


async def test_confirm_cancelled(db: asyncpg.Connection, bookings: Any) -> None:
    held = await book(bookings, await insert_slot(db))
    await bookings.CancelBooking(Cancel(booking_id=held.id))

    await refused(
        bookings.ConfirmBooking(Confirm(booking_id=held.id)), grpc.StatusCode.FAILED_PRECONDITION, "BOOKING_NOT_PENDING"
    )


async def test_concurrent_confirms_exactly_one_wins(db: asyncpg.Connection, bookings: Any) -> None:
    held = await book(bookings, await insert_slot(db))

    results = await asyncio.gather(
        *(bookings.ConfirmBooking(Confirm(booking_id=held.id)) for _ in range(20)), return_exceptions=True
    )

    wins = [r for r in results if not isinstance(r, BaseException)]
    losses = Counter((r.code(), error_details(r)[0].reason) for r in results if isinstance(r, grpc.aio.AioRpcError))
    assert len(wins) == 1
    assert losses == {(grpc.StatusCode.FAILED_PRECONDITION, "BOOKING_NOT_PENDING"): 19}
    assert await db.fetchval("SELECT status FROM bookings WHERE id = $1", held.id) == "CONFIRMED"


async def test_cancel_confirmed_then_cancel_again(db: asyncpg.Connection, bookings: Any) -> None:
    held = await book(bookings, await insert_slot(db))
    await bookings.ConfirmBooking(Confirm(booking_id=held.id))
    cancelled = (await bookings.CancelBooking(Cancel(booking_id=held.id))).booking
    assert cancelled.status == booking_pb2.BOOKING_STATUS_CANCELLED
    before = await snapshot(db)

    await refused(
        bookings.CancelBooking(Cancel(booking_id=held.id)), grpc.StatusCode.FAILED_PRECONDITION, "BOOKING_NOT_ACTIVE"
    )
    assert await snapshot(db) == before


async def test_cancel_overdue_hold_is_refused(db: asyncpg.Connection, bookings: Any) -> None:
    held = await book(bookings, await insert_slot(db))
    await expire(db, held.id)
    before = await snapshot(db)

    await refused(
        bookings.CancelBooking(Cancel(booking_id=held.id)), grpc.StatusCode.FAILED_PRECONDITION, "BOOKING_NOT_ACTIVE"
    )
    assert await snapshot(db) == before


async def test_booking_a_slot_that_already_started(db: asyncpg.Connection, bookings: Any) -> None:
    started = await insert_slot(db, start=future(-1), hours=2)
    before = await snapshot(db)

    await refused(
        bookings.CreateBooking(Create(slot_id=started, patient_id="p-1")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "SLOT_STARTED",
    )
    assert await snapshot(db) == before


# --- not found ----------------------------------------------------------------------------------------


async def test_unknown_slot(db: asyncpg.Connection, bookings: Any) -> None:
    err = await refused(
        bookings.CreateBooking(Create(slot_id=987654, patient_id="p-1")), grpc.StatusCode.NOT_FOUND, "SLOT_NOT_FOUND"
    )
    info, _ = error_details(err)
    assert info is not None and info.metadata["id"] == "987654"
    assert await db.fetchval("SELECT count(*) FROM bookings") == 0


@pytest.mark.parametrize(
    "method, request_type",
    [("GetBooking", Get), ("ConfirmBooking", Confirm), ("CancelBooking", Cancel)],
)
async def test_unknown_booking(db: asyncpg.Connection, bookings: Any, method: str, request_type: Any) -> None:
    await refused(
        getattr(bookings, method)(request_type(booking_id=987654)), grpc.StatusCode.NOT_FOUND, "BOOKING_NOT_FOUND"
    )


async def test_get_booking_reads_what_create_returned(db: asyncpg.Connection, bookings: Any) -> None:
    slot_id = await insert_slot(db)
    held = await book(bookings, slot_id, "p-1", "req-9")

    got = (await bookings.GetBooking(Get(booking_id=held.id))).booking

    assert got == held
    assert (got.slot_id, got.patient_id, got.failure_reason) == (slot_id, "p-1", booking_pb2.FAILURE_REASON_UNSPECIFIED)


async def test_admin_seeded_demo_slot_is_bookable(db: asyncpg.Connection, admin: Any, bookings: Any) -> None:
    await admin.SeedDatabase(admin_service_pb2.SeedDatabaseRequest())
    held = await book(bookings, 1, "p-1")
    assert held.status == booking_pb2.BOOKING_STATUS_PENDING
