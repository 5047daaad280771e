"""Running the day over the wire: cancellation reasons, and every day-of-surgery transition allowed and refused.

States a test does not walk to through the API are set in SQL (the rule
under test is the transition from them, not how they were reached).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import pytest
import pytest_asyncio
from orflow.v1 import admin_service_pb2, booking_pb2, booking_service_pb2, booking_service_pb2_grpc
from orflow_server.domain.access import Role

from tests.auth import authorized_channel, token_for
from tests.factories import error_details, insert_room, insert_slot
from tests.rpc.test_bookings import book, refused

Pb = booking_service_pb2
A = admin_service_pb2
FP = grpc.StatusCode.FAILED_PRECONDITION

# RPC name -> (request type, the one state it moves from, the state it moves to, its refusal reason)
STEPS: dict[str, tuple[Any, str, str, str]] = {
    "CheckInBooking": (Pb.CheckInBookingRequest, "CONFIRMED", "CHECKED_IN", "BOOKING_NOT_CONFIRMED"),
    "StartBooking": (Pb.StartBookingRequest, "CHECKED_IN", "IN_PROGRESS", "BOOKING_NOT_CHECKED_IN"),
    "CompleteBooking": (Pb.CompleteBookingRequest, "IN_PROGRESS", "COMPLETED", "BOOKING_NOT_IN_PROGRESS"),
    "MarkBookingNoShow": (Pb.MarkBookingNoShowRequest, "CONFIRMED", "NO_SHOW", "BOOKING_NOT_CONFIRMED"),
}
STATES = ["PENDING", "CONFIRMED", "FAILED", "CANCELLED", "CHECKED_IN", "IN_PROGRESS", "COMPLETED", "NO_SHOW"]
_patients = itertools.count(1)
REFUSED = [(rpc, state) for rpc, (_, source, _, _) in STEPS.items() for state in STATES if state != source]


def status_name(booking: booking_pb2.Booking) -> str:
    return booking_pb2.BookingStatus.Name(booking.status).removeprefix("BOOKING_STATUS_")


async def confirmed(stub: Any, db: asyncpg.Connection, **slot: Any) -> booking_pb2.Booking:
    booking = await book(stub, await insert_slot(db, **slot), patient_id=f"p-day-{next(_patients)}")
    response = await stub.ConfirmBooking(Pb.ConfirmBookingRequest(booking_id=booking.id))
    return response.booking


async def set_state(db: asyncpg.Connection, booking_id: int, state: str) -> None:
    await db.execute(
        "UPDATE bookings SET status = $2, failure_reason = CASE WHEN $2 = 'FAILED' THEN 'HOLD_EXPIRED' END"
        " WHERE id = $1",
        booking_id,
        state,
    )


async def step(stub: Any, rpc: str, booking_id: int) -> booking_pb2.Booking:
    request_type = STEPS[rpc][0]
    response = await getattr(stub, rpc)(request_type(booking_id=booking_id))
    return response.booking


# --- day-of-surgery transitions ----------------------------------------------------------------------


async def test_a_case_walks_checked_in_in_progress_completed(bookings: Any, db: asyncpg.Connection) -> None:
    booking = await confirmed(bookings, db)
    checked_in = await step(bookings, "CheckInBooking", booking.id)
    assert status_name(checked_in) == "CHECKED_IN" and not checked_in.HasField("actual_start_time")
    started = await step(bookings, "StartBooking", booking.id)
    assert status_name(started) == "IN_PROGRESS" and started.HasField("actual_start_time")
    assert not started.HasField("actual_end_time")
    done = await step(bookings, "CompleteBooking", booking.id)
    assert status_name(done) == "COMPLETED"
    assert done.actual_start_time == started.actual_start_time
    assert done.actual_end_time.ToDatetime() >= done.actual_start_time.ToDatetime()
    assert not done.HasField("overrun")  # it ended before its slot's scheduled end
    read = (await bookings.GetBooking(Pb.GetBookingRequest(booking_id=booking.id))).booking
    assert read == done
    actions = await db.fetch(
        "SELECT action, actor FROM audit_events WHERE resource_type = 'booking' AND resource_id = $1 ORDER BY id",
        str(booking.id),
    )
    assert [a["action"] for a in actions][-3:] == ["booking.checked_in", "booking.started", "booking.completed"]
    assert {a["actor"] for a in actions[-3:]} == {"test-admin"}


async def test_a_no_show_frees_the_slot(bookings: Any, db: asyncpg.Connection) -> None:
    booking = await confirmed(bookings, db)
    no_show = await step(bookings, "MarkBookingNoShow", booking.id)
    assert status_name(no_show) == "NO_SHOW"
    again = await book(bookings, booking.slot_id, patient_id="p-next-in-line")
    assert status_name(again) == "PENDING"


@pytest.mark.parametrize("state", ["CHECKED_IN", "IN_PROGRESS", "COMPLETED"])
async def test_a_case_on_the_day_still_holds_its_slot(bookings: Any, db: asyncpg.Connection, state: str) -> None:
    booking = await confirmed(bookings, db)
    await set_state(db, booking.id, state)
    await refused(book(bookings, booking.slot_id, patient_id="p-other"), grpc.StatusCode.ABORTED, "SLOT_TAKEN")


@pytest.mark.parametrize(("rpc", "state"), REFUSED)
async def test_a_wrong_transition_is_refused_naming_the_state(
    bookings: Any, db: asyncpg.Connection, rpc: str, state: str
) -> None:
    booking = await confirmed(bookings, db)
    await set_state(db, booking.id, state)
    before = await db.fetchrow("SELECT * FROM bookings WHERE id = $1", booking.id)
    err = await refused(step(bookings, rpc, booking.id), FP, STEPS[rpc][3])
    info, _ = error_details(err)
    assert info is not None and dict(info.metadata) == {"booking_id": str(booking.id), "status": state}
    assert await db.fetchrow("SELECT * FROM bookings WHERE id = $1", booking.id) == before


@pytest.mark.parametrize("rpc", list(STEPS))
async def test_day_transitions_are_for_staff_only(target: str, bookings: Any, db: asyncpg.Connection, rpc: str) -> None:
    booking = await confirmed(bookings, db)
    await set_state(db, booking.id, STEPS[rpc][1])
    async with authorized_channel(target, token_for(Role.PATIENT, booking.patient_id)) as channel:
        patient = booking_service_pb2_grpc.BookingServiceStub(channel)
        await refused(step(patient, rpc, booking.id), grpc.StatusCode.PERMISSION_DENIED, "ROLE_FORBIDDEN")
    assert await db.fetchval("SELECT status FROM bookings WHERE id = $1", booking.id) == STEPS[rpc][1]


@pytest.mark.parametrize("rpc", list(STEPS))
async def test_a_day_transition_of_an_unknown_booking_is_not_found(bookings: Any, rpc: str) -> None:
    await refused(step(bookings, rpc, 987_654_321), grpc.StatusCode.NOT_FOUND, "BOOKING_NOT_FOUND")


# --- overrun ------------------------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def slot_changes(database_url: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
    """The database's own slot-change announcements (what WatchSlots relays), on a private connection."""
    conn = await asyncpg.connect(database_url)
    heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await conn.add_listener("orflow_slot_changes", lambda *args: heard.put_nowait(json.loads(args[3])))
    yield heard
    await conn.close()


async def until_heard(heard: asyncio.Queue[dict[str, Any]], wanted: dict[str, Any]) -> None:
    while (await asyncio.wait_for(heard.get(), timeout=5)) != wanted:
        pass


async def test_an_overrun_is_reported_and_delays_the_rooms_next_slot(
    bookings: Any, db: asyncpg.Connection, slot_changes: asyncio.Queue[dict[str, Any]]
) -> None:
    """A case started for a slot that ended an hour ago: reads show the overrun, the next slot hears DELAYED."""
    room = await insert_room(db)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    slot_id = await insert_slot(db, room_id=room, start=start, hours=2)
    later_slot = await insert_slot(db, room_id=room, start=start + timedelta(hours=2, minutes=30), hours=2)
    booking_id = await db.fetchval(
        "INSERT INTO bookings (slot_id, room_id, doctor_id, start_time, end_time, room_free_time, patient_id,"
        " status, create_time, expire_time, update_time)"
        " SELECT id, room_id, doctor_id, start_time, end_time, end_time, 'p-overrun', 'CHECKED_IN', now(), now(), now()"
        " FROM slots WHERE id = $1 RETURNING id",
        slot_id,
    )
    started = await step(bookings, "StartBooking", booking_id)
    assert timedelta(minutes=59) < started.overrun.ToTimedelta() < timedelta(minutes=70)
    done = await step(bookings, "CompleteBooking", booking_id)
    assert done.overrun.ToTimedelta() == done.actual_end_time.ToDatetime() - (start + timedelta(hours=2)).replace(
        tzinfo=None
    )
    await until_heard(slot_changes, {"slot_id": later_slot, "kind": "DELAYED"})


# --- cancellation reasons -----------------------------------------------------------------------------


async def test_a_cancellation_records_its_reason_note_and_canceller(bookings: Any, db: asyncpg.Connection) -> None:
    booking = await confirmed(bookings, db)
    request = Pb.CancelBookingRequest(
        booking_id=booking.id, reason=booking_pb2.CANCELLATION_REASON_MEDICAL, note="fever on admission"
    )
    cancelled = (await bookings.CancelBooking(request)).booking
    assert status_name(cancelled) == "CANCELLED"
    assert cancelled.cancellation_reason == booking_pb2.CANCELLATION_REASON_MEDICAL
    assert (cancelled.cancellation_note, cancelled.cancelled_by) == ("fever on admission", "test-admin")
    assert (await bookings.GetBooking(Pb.GetBookingRequest(booking_id=booking.id))).booking == cancelled
    event = await db.fetchrow(
        # the newest: booking ids restart when a test resets the tables; the audit trail never does
        "SELECT actor, after FROM audit_events WHERE action = 'booking.cancelled' AND resource_id = $1"
        " ORDER BY id DESC LIMIT 1",
        str(booking.id),
    )
    after = json.loads(event["after"])
    assert event["actor"] == "test-admin"
    assert (after["cancellation_reason"], after["cancellation_note"], after["cancelled_by"]) == (
        "MEDICAL",
        "fever on admission",
        "test-admin",
    )


async def test_a_cancellation_without_a_reason_still_works_for_older_clients(
    bookings: Any, db: asyncpg.Connection
) -> None:
    booking = await confirmed(bookings, db)
    cancelled = (await bookings.CancelBooking(Pb.CancelBookingRequest(booking_id=booking.id))).booking
    assert status_name(cancelled) == "CANCELLED"
    assert cancelled.cancellation_reason == booking_pb2.CANCELLATION_REASON_UNSPECIFIED
    assert cancelled.cancelled_by == "test-admin"


async def test_staff_may_cancel_a_checked_in_case_a_patient_may_not(
    target: str, bookings: Any, db: asyncpg.Connection
) -> None:
    booking = await confirmed(bookings, db)
    await step(bookings, "CheckInBooking", booking.id)
    async with authorized_channel(target, token_for(Role.PATIENT, booking.patient_id)) as channel:
        patient = booking_service_pb2_grpc.BookingServiceStub(channel)
        await refused(patient.CancelBooking(Pb.CancelBookingRequest(booking_id=booking.id)), FP, "BOOKING_NOT_ACTIVE")
    request = Pb.CancelBookingRequest(booking_id=booking.id, reason=booking_pb2.CANCELLATION_REASON_MEDICAL)
    assert status_name((await bookings.CancelBooking(request)).booking) == "CANCELLED"


@pytest.mark.parametrize("state", ["IN_PROGRESS", "COMPLETED", "NO_SHOW"])
async def test_a_case_past_check_in_cannot_be_cancelled(bookings: Any, db: asyncpg.Connection, state: str) -> None:
    booking = await confirmed(bookings, db)
    await set_state(db, booking.id, state)
    await refused(bookings.CancelBooking(Pb.CancelBookingRequest(booking_id=booking.id)), FP, "BOOKING_NOT_ACTIVE")


@pytest.mark.parametrize(
    ("reason", "note", "field"),
    [
        (booking_pb2.CANCELLATION_REASON_SLOT_CANCELLED, "", "reason"),
        (99, "", "reason"),
        (booking_pb2.CANCELLATION_REASON_OTHER, "x" * 501, "note"),
    ],
)
async def test_a_bad_cancellation_is_refused_with_the_field(
    bookings: Any, db: asyncpg.Connection, reason: int, note: str, field: str
) -> None:
    booking = await confirmed(bookings, db)
    request = Pb.CancelBookingRequest(booking_id=booking.id, reason=reason, note=note)  # type: ignore[arg-type]
    err = await refused(bookings.CancelBooking(request), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    _, violations = error_details(err)
    assert [f for f, _ in violations] == [field]
    assert await db.fetchval("SELECT status FROM bookings WHERE id = $1", booking.id) == "CONFIRMED"


def test_the_stub_has_every_day_rpc() -> None:
    assert set(STEPS) <= set(booking_service_pb2.DESCRIPTOR.services_by_name["BookingService"].methods_by_name)


# --- cancel a slot ------------------------------------------------------------------------------------


async def test_cancelling_a_slot_cancels_its_booking_and_closes_it(
    bookings: Any, admin: Any, db: asyncpg.Connection, slot_changes: asyncio.Queue[dict[str, Any]]
) -> None:
    booking = await confirmed(bookings, db)
    reply = await admin.CancelSlot(A.CancelSlotRequest(slot_id=booking.slot_id, note="surgeon ill"))
    assert reply.slot.HasField("cancel_time") and not reply.slot.available
    cancelled = reply.cancelled_booking
    assert (cancelled.id, status_name(cancelled)) == (booking.id, "CANCELLED")
    assert cancelled.cancellation_reason == booking_pb2.CANCELLATION_REASON_SLOT_CANCELLED
    assert (cancelled.cancellation_note, cancelled.cancelled_by) == ("surgeon ill", "test-admin")
    await until_heard(slot_changes, {"slot_id": booking.slot_id, "kind": "CANCELLED"})
    # Never bookable again, by anyone, nor as a reschedule target.
    err = await refused(book(bookings, booking.slot_id, patient_id="p-after"), FP, "SLOT_CANCELLED")
    info, _ = error_details(err)
    assert info is not None and info.metadata["slot_id"] == str(booking.slot_id)
    elsewhere = await book(bookings, await insert_slot(db), patient_id="p-elsewhere")
    move = Pb.RescheduleBookingRequest(booking_id=elsewhere.id, slot_id=booking.slot_id)
    await refused(bookings.RescheduleBooking(move), FP, "SLOT_CANCELLED")
    # A repeat changes nothing.
    again = await admin.CancelSlot(A.CancelSlotRequest(slot_id=booking.slot_id, note="again"))
    assert again.slot.cancel_time == reply.slot.cancel_time and not again.HasField("cancelled_booking")
    event = await db.fetchrow(
        "SELECT actor FROM audit_events WHERE action = 'slot.updated' AND resource_id = $1 ORDER BY id DESC LIMIT 1",
        str(booking.slot_id),
    )
    assert event["actor"] == "test-admin"


async def test_a_free_slot_can_be_cancelled(admin: Any, db: asyncpg.Connection) -> None:
    reply = await admin.CancelSlot(A.CancelSlotRequest(slot_id=await insert_slot(db)))
    assert reply.slot.HasField("cancel_time") and not reply.HasField("cancelled_booking")


@pytest.mark.parametrize("state", ["IN_PROGRESS", "COMPLETED"])
async def test_a_slot_whose_case_started_cannot_be_cancelled(
    bookings: Any, admin: Any, db: asyncpg.Connection, state: str
) -> None:
    booking = await confirmed(bookings, db)
    await set_state(db, booking.id, state)
    err = await refused(admin.CancelSlot(A.CancelSlotRequest(slot_id=booking.slot_id)), FP, "SLOT_IN_USE")
    info, _ = error_details(err)
    assert info is not None and info.metadata["status"] == state
    assert await db.fetchval("SELECT cancel_time FROM slots WHERE id = $1", booking.slot_id) is None


async def test_cancelling_an_unknown_slot_is_not_found(admin: Any) -> None:
    await refused(
        admin.CancelSlot(A.CancelSlotRequest(slot_id=987_654_321)), grpc.StatusCode.NOT_FOUND, "SLOT_NOT_FOUND"
    )
