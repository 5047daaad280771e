"""WatchSlots for running the day: a case's progress, a slot cancelled, a reschedule, on a real stream."""

from __future__ import annotations

import asyncpg
import grpc
from orflow.v1 import admin_service_pb2, admin_service_pb2_grpc, booking_service_pb2, booking_service_pb2_grpc
from orflow.v1 import slot_service_pb2 as S

from tests.factories import insert_slot
from tests.rpc.test_watch_slots import (  # noqa: F401  (live_server and live_channel are fixtures)
    BOOKED,
    CONFIRMED,
    RELEASED,
    Watcher,
    barrier,
    live_channel,
    live_server,
)

B = booking_service_pb2


async def test_a_case_progresses_then_its_slot_is_cancelled(
    db: asyncpg.Connection,
    live_channel: grpc.aio.Channel,  # noqa: F811  (the fixture imported above)
) -> None:
    slot_id, spare = await insert_slot(db), await insert_slot(db)
    watcher = Watcher(live_channel, S.WatchSlotsRequest())
    assert sorted(await watcher.snapshot()) == sorted([slot_id, spare])
    await barrier(db, watcher)
    bookings = booking_service_pb2_grpc.BookingServiceStub(live_channel)
    admin = admin_service_pb2_grpc.AdminServiceStub(live_channel)

    booking = (await bookings.CreateBooking(B.CreateBookingRequest(slot_id=slot_id, patient_id="p-watch"))).booking
    await bookings.ConfirmBooking(B.ConfirmBookingRequest(booking_id=booking.id))
    await bookings.CheckInBooking(B.CheckInBookingRequest(booking_id=booking.id))
    await bookings.StartBooking(B.StartBookingRequest(booking_id=booking.id))
    await bookings.CompleteBooking(B.CompleteBookingRequest(booking_id=booking.id))
    moved = (await bookings.CreateBooking(B.CreateBookingRequest(slot_id=spare, patient_id="p-moved"))).booking
    free = await insert_slot(db)
    await bookings.RescheduleBooking(B.RescheduleBookingRequest(booking_id=moved.id, slot_id=free))
    await admin.CancelSlot(admin_service_pb2.CancelSlotRequest(slot_id=free, note="theatre closed"))

    progressed = S.SLOT_CHANGE_KIND_CASE_PROGRESSED
    expected = [
        (BOOKED, slot_id),
        (CONFIRMED, slot_id),
        (progressed, slot_id),
        (progressed, slot_id),
        (progressed, slot_id),
        (BOOKED, spare),
        (S.SLOT_CHANGE_KIND_CREATED, free),
        (RELEASED, spare),  # the reschedule: the old slot released and the new one booked, in one commit
        (BOOKED, free),
        (S.SLOT_CHANGE_KIND_CANCELLED, free),
        (RELEASED, free),
    ]
    assert [(await watcher.change())[:2] for _ in expected] == expected
    watcher.call.cancel()
