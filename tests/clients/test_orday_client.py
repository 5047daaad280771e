"""The client's running-the-day methods against the real server: typed results, typed refusals."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from orflow.v1 import booking_pb2
from orflow_client import BlockingOrFlowClient, BookingNotCheckedIn, BookingNotConfirmed, OrFlowClient

from ..auth import ADMIN_TOKEN
from ..factories import future, insert_slot


async def test_a_day_walks_through_the_async_client(client: OrFlowClient, db: asyncpg.Connection) -> None:
    first, second = await insert_slot(db), await insert_slot(db, start=future(30))
    held = await client.create_booking(slot_id=first, patient_id="p-client-day")
    moved = await client.reschedule_booking(held.id, slot_id=second)
    assert (moved.slot_id, moved.expire_time) == (second, held.expire_time)
    await client.confirm_booking(held.id)
    with pytest.raises(BookingNotCheckedIn) as refused:
        await client.start_booking(held.id)
    assert refused.value.metadata["status"] == "CONFIRMED"
    await client.check_in_booking(held.id)
    started = await client.start_booking(held.id)
    done = await client.complete_booking(held.id)
    assert (done.status, done.actual_start_time) == (booking_pb2.BOOKING_STATUS_COMPLETED, started.actual_start_time)
    with pytest.raises(BookingNotConfirmed):
        await client.mark_booking_no_show(held.id)


async def test_the_blocking_client_cancels_with_a_reason(target: str, db: asyncpg.Connection) -> None:
    slot_id = await insert_slot(db)

    def run() -> booking_pb2.Booking:
        with BlockingOrFlowClient(target, token=ADMIN_TOKEN) as blocking:
            held = blocking.create_booking(slot_id=slot_id, patient_id="p-client-cancel")
            return blocking.cancel_booking(
                held.id, reason=booking_pb2.CANCELLATION_REASON_PATIENT_REQUEST, note="moving abroad"
            )

    cancelled = await asyncio.to_thread(run)
    assert (cancelled.status, cancelled.cancellation_reason, cancelled.cancellation_note) == (
        booking_pb2.BOOKING_STATUS_CANCELLED,
        booking_pb2.CANCELLATION_REASON_PATIENT_REQUEST,
        "moving abroad",
    )
