"""The server answers a full booking round trip."""

from __future__ import annotations

import asyncpg
from orflow.v1 import booking_pb2, booking_service_pb2, slot_service_pb2

from tests.factories import insert_slot


async def test_book_confirm_cancel_round_trip(db: asyncpg.Connection, slots, bookings) -> None:  # type: ignore[no-untyped-def]
    slot_id = await insert_slot(db)
    listed = await slots.ListSlots(slot_service_pb2.ListSlotsRequest(available_only=True))
    assert [s.id for s in listed.slots] == [slot_id]

    created = await bookings.CreateBooking(booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id="p-1"))
    assert created.booking.status == booking_pb2.BOOKING_STATUS_PENDING
    assert created.booking.expire_time.seconds > created.booking.create_time.seconds

    listed = await slots.ListSlots(slot_service_pb2.ListSlotsRequest(available_only=True))
    assert list(listed.slots) == []

    confirmed = await bookings.ConfirmBooking(booking_service_pb2.ConfirmBookingRequest(booking_id=created.booking.id))
    assert confirmed.booking.status == booking_pb2.BOOKING_STATUS_CONFIRMED
    cancelled = await bookings.CancelBooking(booking_service_pb2.CancelBookingRequest(booking_id=created.booking.id))
    assert cancelled.booking.status == booking_pb2.BOOKING_STATUS_CANCELLED

    listed = await slots.ListSlots(slot_service_pb2.ListSlotsRequest(available_only=True))
    assert [s.id for s in listed.slots] == [slot_id]
