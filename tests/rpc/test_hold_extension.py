"""BookingService.ExtendHold over the wire: once by the hold TTL, never twice, never an expired or another's hold.

The job that expires an extended hold at its new deadline is tested with a real worker in
tests/worker/test_expiry.py.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import asyncpg
import grpc
import pytest
from orflow.v1 import booking_pb2, booking_service_pb2, booking_service_pb2_grpc
from orflow_client import HoldAlreadyExtended, HoldExpired, NotFound, OrFlowClient
from orflow_server.domain.access import Role

from tests.auth import authorized_channel, token_for
from tests.conftest import ServerFactory
from tests.factories import future, insert_slot, snapshot
from tests.rpc.test_bookings import book, expire, refused

Extend = booking_service_pb2.ExtendHoldRequest
Confirm = booking_service_pb2.ConfirmBookingRequest
TTL = timedelta(seconds=120)  # the test server's hold TTL (tests/conftest.py TEST_SETTINGS)


async def test_a_hold_is_extended_once_by_the_ttl_and_a_second_time_refused(
    db: asyncpg.Connection, bookings: Any
) -> None:
    held = await book(bookings, await insert_slot(db))
    extended = (await bookings.ExtendHold(Extend(booking_id=held.id, request_id="ext-1"))).booking
    assert extended.status == booking_pb2.BOOKING_STATUS_PENDING
    assert extended.expire_time.ToDatetime() - held.expire_time.ToDatetime() == TTL
    row = await db.fetchrow(
        "SELECT expire_time - create_time AS held_for, hold_extended_at IS NOT NULL AS is_extended,"
        " hold_extension_request_id FROM bookings WHERE id = $1",
        held.id,
    )
    assert tuple(row) == (2 * TTL, True, "ext-1")

    before = await snapshot(db)
    for request_id in ("ext-2", ""):
        err = await refused(
            bookings.ExtendHold(Extend(booking_id=held.id, request_id=request_id)),
            grpc.StatusCode.FAILED_PRECONDITION,
            "HOLD_ALREADY_EXTENDED",
        )
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await snapshot(db) == before

    # A retry of the extension that succeeded (its reply lost) gets the hold as it is, not a refusal.
    again = (await bookings.ExtendHold(Extend(booking_id=held.id, request_id="ext-1"))).booking
    assert again.expire_time == extended.expire_time
    assert await snapshot(db) == before

    confirmed = (await bookings.ConfirmBooking(Confirm(booking_id=held.id))).booking
    assert confirmed.status == booking_pb2.BOOKING_STATUS_CONFIRMED


async def test_an_expired_hold_is_not_extended(db: asyncpg.Connection, bookings: Any) -> None:
    held = await book(bookings, await insert_slot(db))
    await expire(db, held.id)
    before = await snapshot(db)
    await refused(
        bookings.ExtendHold(Extend(booking_id=held.id, request_id="late")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "HOLD_EXPIRED",
    )
    assert await snapshot(db) == before


async def test_a_confirmed_or_cancelled_booking_is_not_extended(db: asyncpg.Connection, bookings: Any) -> None:
    confirmed = await book(bookings, await insert_slot(db), "p-1")
    await bookings.ConfirmBooking(Confirm(booking_id=confirmed.id))
    cancelled = await book(bookings, await insert_slot(db), "p-2")
    await bookings.CancelBooking(booking_service_pb2.CancelBookingRequest(booking_id=cancelled.id))
    before = await snapshot(db)
    for booking_id in (confirmed.id, cancelled.id):
        await refused(
            bookings.ExtendHold(Extend(booking_id=booking_id)),
            grpc.StatusCode.FAILED_PRECONDITION,
            "BOOKING_NOT_PENDING",
        )
    assert await snapshot(db) == before


async def test_bad_ids_are_refused(bookings: Any) -> None:
    await refused(bookings.ExtendHold(Extend(booking_id=0)), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    await refused(
        bookings.ExtendHold(Extend(booking_id=1, request_id="x" * 129)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    await refused(bookings.ExtendHold(Extend(booking_id=987_654_321)), grpc.StatusCode.NOT_FOUND, "BOOKING_NOT_FOUND")


async def test_a_patient_extends_only_its_own_hold_through_the_typed_client(
    db: asyncpg.Connection, target: str
) -> None:
    slot_id = await insert_slot(db)
    async with (
        OrFlowClient(target, token=token_for(Role.PATIENT, "p-own")) as owner,
        OrFlowClient(target, token=token_for(Role.PATIENT, "p-other")) as other,
    ):
        held = await owner.create_booking(slot_id=slot_id)
        before = await snapshot(db)
        with pytest.raises(NotFound):  # another patient's booking reads as missing
            await other.extend_hold(held.id)
        assert await snapshot(db) == before

        extended = await owner.extend_hold(held.id)
        assert extended.expire_time.ToDatetime() - held.expire_time.ToDatetime() == TTL
        with pytest.raises(HoldAlreadyExtended) as caught:
            await owner.extend_hold(held.id)
        assert caught.value.metadata["booking_id"] == str(held.id)

        late = await owner.create_booking(slot_id=await insert_slot(db, start=future(24 * 9)))
        await expire(db, late.id)
        with pytest.raises(HoldExpired):
            await owner.extend_hold(late.id)


async def test_the_extension_is_audited_with_its_actor(db: asyncpg.Connection, target: str) -> None:
    async with OrFlowClient(target, token=token_for(Role.PATIENT, "p-audited")) as patient:
        held = await patient.create_booking(slot_id=await insert_slot(db))
        await patient.extend_hold(held.id)
    rows = await db.fetch(
        "SELECT actor, actor_role, (before ->> 'hold_extended_at') IS NULL, (after ->> 'hold_extended_at') IS NULL"
        " FROM audit_events WHERE resource_type = 'booking' AND resource_id = $1 AND action = 'booking.updated'"
        " AND event_time >= $2",  # the audit trail outlives other tests' (and runs') bookings of this id
        str(held.id),
        held.create_time.ToDatetime(tzinfo=UTC),
    )
    assert [tuple(r) for r in rows] == [("p-audited", "patient", True, False)]


async def test_the_hold_ttl_setting_is_the_extension(db: asyncpg.Connection, start_server: ServerFactory) -> None:
    channel = authorized_channel(await start_server(hold_ttl=timedelta(seconds=30)))
    try:
        stub = booking_service_pb2_grpc.BookingServiceStub(channel)
        held = await book(stub, await insert_slot(db))
        extended = (await stub.ExtendHold(Extend(booking_id=held.id))).booking
        assert extended.expire_time.ToDatetime() - held.expire_time.ToDatetime() == timedelta(seconds=30)
    finally:
        await channel.close()
