"""RescheduleBooking over the wire: both or neither, the booking's state kept, idempotency, and races.

The races fire from several processes (tests/rpc/test_concurrency.py's
`fire`) and end with THE SQL invariant checks (orflow_tools.testkit.invariants).
"""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from typing import Any

import asyncpg
import grpc
from orflow.v1 import booking_pb2, booking_service_pb2, booking_service_pb2_grpc
from orflow_server.domain.access import Role
from orflow_tools.testkit import invariants

from tests.auth import authorized_channel, token_for
from tests.factories import future, insert_equipment, insert_room, insert_slot
from tests.rpc.test_bookings import book, refused
from tests.rpc.test_concurrency import failures, fire, successes

Pb = booking_service_pb2
ABORTED = grpc.StatusCode.ABORTED
_patients = itertools.count(1)


def patient() -> str:
    return f"p-move-{next(_patients)}"


async def move(stub: Any, booking_id: int, slot_id: int, request_id: str = "") -> booking_pb2.Booking:
    request = Pb.RescheduleBookingRequest(booking_id=booking_id, slot_id=slot_id, request_id=request_id)
    return (await stub.RescheduleBooking(request)).booking


async def row(db: asyncpg.Connection, booking_id: int) -> asyncpg.Record:
    return await db.fetchrow(
        "SELECT slot_id, room_id, doctor_id, start_time, end_time, status, expire_time FROM bookings WHERE id = $1",
        booking_id,
    )


async def test_a_confirmed_booking_moves_and_stays_confirmed(bookings: Any, db: asyncpg.Connection) -> None:
    old_slot, new_slot = await insert_slot(db), await insert_slot(db, start=future(30))
    held = await book(bookings, old_slot, patient_id=patient())
    await bookings.ConfirmBooking(Pb.ConfirmBookingRequest(booking_id=held.id))
    moved = await move(bookings, held.id, new_slot)
    assert (moved.id, moved.slot_id, moved.status) == (held.id, new_slot, booking_pb2.BOOKING_STATUS_CONFIRMED)
    facts = await row(db, held.id)
    slot = await db.fetchrow("SELECT room_id, doctor_id, start_time, end_time FROM slots WHERE id = $1", new_slot)
    assert tuple(facts)[1:5] == tuple(slot)
    # The old slot is free at once: another patient can hold it.
    assert (await book(bookings, old_slot, patient_id=patient())).status == booking_pb2.BOOKING_STATUS_PENDING
    actions = await db.fetch(
        "SELECT action, actor FROM audit_events WHERE resource_type = 'booking' AND resource_id = $1"
        " ORDER BY id DESC LIMIT 1",
        str(held.id),
    )
    assert [tuple(a) for a in actions] == [("booking.rescheduled", "test-admin")]


async def test_a_hold_keeps_its_deadline(bookings: Any, db: asyncpg.Connection) -> None:
    old_slot, new_slot = await insert_slot(db), await insert_slot(db, start=future(30))
    held = await book(bookings, old_slot, patient_id=patient())
    moved = await move(bookings, held.id, new_slot)
    assert moved.status == booking_pb2.BOOKING_STATUS_PENDING
    assert moved.expire_time == held.expire_time


async def test_a_retry_with_the_same_request_id_returns_the_booking_unmoved(
    bookings: Any, db: asyncpg.Connection
) -> None:
    first, second, third = [await insert_slot(db, start=future(24 + 6 * i)) for i in range(3)]
    held = await book(bookings, first, patient_id=patient())
    moved = await move(bookings, held.id, second, request_id="r-1")
    again = await move(bookings, held.id, second, request_id="r-1")
    assert (again.slot_id, again.update_time) == (second, moved.update_time)
    reused = move(bookings, held.id, third, request_id="r-1")
    await refused(reused, grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED")
    assert (await row(db, held.id))["slot_id"] == second


async def test_a_move_onto_a_busy_room_is_refused_and_the_booking_stays(bookings: Any, db: asyncpg.Connection) -> None:
    room = await insert_room(db)
    old_slot = await insert_slot(db)
    taken = await insert_slot(db, room_id=room)
    await book(bookings, taken, patient_id=patient())
    held = await book(bookings, old_slot, patient_id=patient())
    before = await row(db, held.id)
    await refused(move(bookings, held.id, taken), ABORTED, "SLOT_TAKEN")
    other_room_time = await insert_slot(db, room_id=room, start=future(25))  # overlaps `taken` in its room
    await refused(move(bookings, held.id, other_room_time), ABORTED, "ROOM_BUSY")
    assert await row(db, held.id) == before


async def test_a_patient_moves_its_own_booking_only(target: str, bookings: Any, db: asyncpg.Connection) -> None:
    old_slot, new_slot = await insert_slot(db), await insert_slot(db, start=future(30))
    held = await book(bookings, old_slot, patient_id=patient())
    async with authorized_channel(target, token_for(Role.PATIENT, "someone-else")) as channel:
        stranger = booking_service_pb2_grpc.BookingServiceStub(channel)
        await refused(move(stranger, held.id, new_slot), grpc.StatusCode.NOT_FOUND, "BOOKING_NOT_FOUND")
    async with authorized_channel(target, token_for(Role.PATIENT, held.patient_id)) as channel:
        owner = booking_service_pb2_grpc.BookingServiceStub(channel)
        assert (await move(owner, held.id, new_slot)).slot_id == new_slot


async def test_refusals_name_the_reason(bookings: Any, db: asyncpg.Connection) -> None:
    old_slot, new_slot = await insert_slot(db), await insert_slot(db, start=future(30))
    started = await insert_slot(db, start=future(-1))
    held = await book(bookings, old_slot, patient_id=patient())
    await refused(move(bookings, held.id, held.slot_id), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    await refused(move(bookings, held.id, 987_654_321), grpc.StatusCode.NOT_FOUND, "SLOT_NOT_FOUND")
    await refused(move(bookings, 987_654_321, new_slot), grpc.StatusCode.NOT_FOUND, "BOOKING_NOT_FOUND")
    await refused(move(bookings, held.id, started), grpc.StatusCode.FAILED_PRECONDITION, "SLOT_STARTED")
    await db.execute("UPDATE bookings SET status = 'CHECKED_IN' WHERE id = $1", held.id)
    await refused(move(bookings, held.id, new_slot), grpc.StatusCode.FAILED_PRECONDITION, "BOOKING_NOT_ACTIVE")
    assert (await row(db, held.id))["slot_id"] == old_slot


# --- races ---------------------------------------------------------------------------------------------

ROUNDS = 20


async def test_two_reschedules_and_a_create_on_one_free_slot_exactly_one_wins(
    db: asyncpg.Connection, target: str
) -> None:
    """Per round: bookings A (CONFIRMED) and B (PENDING) both move to free slot T while a third patient books T."""
    calls: list[dict[str, Any]] = []
    before: dict[int, asyncpg.Record] = {}
    for r in range(ROUNDS):
        start = future(48 + 6 * r)
        free = await insert_slot(db, start=start)
        for status in ("CONFIRMED", "PENDING"):
            slot = await insert_slot(db, start=start + timedelta(hours=3))
            booking_id = await db.fetchval(
                "INSERT INTO bookings (slot_id, room_id, doctor_id, start_time, end_time, room_free_time, patient_id,"
                " status, create_time, expire_time, update_time)"
                " SELECT id, room_id, doctor_id, start_time, end_time, end_time, $2, $3, now(),"
                " now() + interval '10 minutes', now() FROM slots WHERE id = $1 RETURNING id",
                slot,
                f"race-{r}-{status}",
                status,
            )
            before[booking_id] = await row(db, booking_id)
            calls.append({"booking_id": booking_id, "slot_id": free})
        calls.append({"slot_id": free, "patient_id": f"race-{r}-new"})

    outcomes = await fire(target, calls, workers=3)

    won = successes(outcomes)
    assert sorted(o["slot_id"] for o in won) == sorted({c["slot_id"] for c in calls})  # one winner per free slot
    assert failures(outcomes) == {("ABORTED", "SLOT_TAKEN"): 2 * ROUNDS}
    kinds = {"reschedule": sum(1 for c, o in zip(calls, outcomes, strict=True) if o["ok"] and "booking_id" in c)}
    kinds["create"] = ROUNDS - kinds["reschedule"]
    print("race winners:", json.dumps(kinds))
    for call, outcome in zip(calls, outcomes, strict=True):
        if "booking_id" in call and not outcome["ok"]:
            assert await row(db, call["booking_id"]) == before[call["booking_id"]]  # the loser is untouched
        if "booking_id" not in call and not outcome["ok"]:
            assert not await db.fetchval("SELECT count(*) FROM bookings WHERE patient_id = $1", call["patient_id"])
    assert await invariants.violations(db) == invariants.NO_VIOLATIONS
    assert {e: pq for e, pq in (await invariants.peak_use(db)).items() if pq[0] > pq[1]} == {}


async def test_crossing_reschedules_never_deadlock(db: asyncpg.Connection, target: str) -> None:
    """Per round: X in room 1 moves to a free slot in room 2 while Y in room 2 moves to one in room 1."""
    calls: list[dict[str, Any]] = []
    for r in range(ROUNDS):
        rooms = [await insert_room(db), await insert_room(db)]
        start = future(200 + 6 * r)
        for i in (0, 1):
            here = await insert_slot(db, room_id=rooms[i], start=start)
            there = await insert_slot(db, room_id=rooms[1 - i], start=start + timedelta(hours=3))
            booking_id = await db.fetchval(
                "INSERT INTO bookings (slot_id, room_id, doctor_id, start_time, end_time, room_free_time, patient_id,"
                " status, create_time, expire_time, update_time)"
                " SELECT id, room_id, doctor_id, start_time, end_time, end_time, $2, 'CONFIRMED', now(), now(), now()"
                " FROM slots WHERE id = $1 RETURNING id",
                here,
                f"cross-{r}-{i}",
            )
            calls.append({"booking_id": booking_id, "slot_id": there})

    outcomes = await fire(target, calls, workers=2)

    assert failures(outcomes) == {}
    assert len(successes(outcomes)) == 2 * ROUNDS
    assert await invariants.violations(db) == invariants.NO_VIOLATIONS


async def test_a_move_overlapping_its_own_time_does_not_compete_with_itself(
    bookings: Any, db: asyncpg.Connection
) -> None:
    """The last ventilator: moving a case an hour later needs the unit it already holds, and gets it."""
    ventilator = await insert_equipment(db, quantity=1)
    start = future(60)
    old_slot = await insert_slot(db, start=start, equipment=[(ventilator, 1)])
    new_slot = await insert_slot(db, start=start + timedelta(hours=1), equipment=[(ventilator, 1)])
    rival = await insert_slot(db, start=start + timedelta(hours=1), equipment=[(ventilator, 1)])
    held = await book(bookings, old_slot, patient_id=patient())
    assert (await move(bookings, held.id, new_slot)).slot_id == new_slot
    await refused(book(bookings, rival, patient_id=patient()), ABORTED, "EQUIPMENT_UNAVAILABLE")
    assert await invariants.violations(db) == invariants.NO_VIOLATIONS
