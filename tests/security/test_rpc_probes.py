"""Issue 17's probes of the gRPC server, replayed against the real server (port 0, real PostgreSQL, LISTEN hub).

Each test names the finding it keeps closed: F2 stream caps, F5 refusals logged and counted, F6/F13
control and invisible characters, F9 bounded field violations, F10 what anonymous watchers see,
F11 no stock in a patient's refusal, F12 authentication before parsing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import grpc
import pytest
import pytest_asyncio
from google.protobuf import timestamp_pb2
from orflow.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    booking_service_pb2,
    booking_service_pb2_grpc,
    slot_service_pb2,
    slot_service_pb2_grpc,
)
from orflow_server.app import OrFlowServer, build_server
from orflow_server.domain.access import Role
from orflow_server.metrics import Metrics
from orflow_server.ops.scheduling import NoQueueExpiryScheduler
from orflow_server.rpc.auth import DeniedCalls
from orflow_server.rpc.errors import MAX_FIELD_VIOLATIONS

from ..auth import ADMIN_TOKEN, bearer, token_for
from ..conftest import TEST_SETTINGS, ServerFactory
from ..factories import error_details, future, insert_equipment, insert_slot
from ..rpc.test_watch_slots import AVAILABILITY, BOOKED, CONFIRMED, RELEASED, Watcher, barrier

WATCH_ALL = slot_service_pb2.WatchSlotsRequest()
_SEPARATE_CONNECTION = (("grpc.use_local_subchannel_pool", 1),)  # channels otherwise share one connection


def _channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target, options=_SEPARATE_CONNECTION)


async def _watch(channel: grpc.aio.Channel, token: str | None = None) -> grpc.aio.UnaryStreamCall:
    """A WatchSlots stream that got its snapshot (so the server has admitted it), or raises its refusal."""
    call = slot_service_pb2_grpc.SlotServiceStub(channel).WatchSlots(
        WATCH_ALL, metadata=bearer(token) if token else None
    )
    complete = slot_service_pb2.SLOT_CHANGE_KIND_SNAPSHOT_COMPLETE
    while (message := await asyncio.wait_for(call.read(), 10)).kind != complete:
        assert message is not grpc.aio.EOF
    return call


async def _refusal(channel: grpc.aio.Channel, token: str | None = None) -> tuple[grpc.StatusCode, dict[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _watch(channel, token)
    info, _ = error_details(caught.value)
    assert info is not None
    return caught.value.code(), {"reason": info.reason, **info.metadata}


async def test_f2_watch_streams_are_capped_per_caller_per_connection_and_in_total(
    db: asyncpg.Connection, start_server: ServerFactory
) -> None:
    """Before: 500 anonymous streams on one connection were all accepted. Now each cap answers STREAM_LIMIT."""
    target = await start_server(watch_streams_per_caller=2, watch_streams_per_connection=3, watch_streams_total=6)
    patient = token_for(Role.PATIENT, "p-streams")
    x, y, z = _channel(target), _channel(target), _channel(target)
    try:
        mine = [await _watch(x, patient), await _watch(x, patient)]
        code, meta = await _refusal(x, patient)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert meta["reason"] == "STREAM_LIMIT" and meta["limit"] == "per_caller" and meta["max"] == "2"

        anonymous = [await _watch(y) for _ in range(3)]
        assert (await _refusal(y))[1]["limit"] == "per_connection"

        last = await _watch(z)  # the sixth stream on the server
        assert (await _refusal(z))[1]["limit"] == "total"

        anonymous.pop().cancel()  # a stream that ends gives its place back
        async with asyncio.timeout(10):
            while True:
                try:
                    again = await _watch(z)
                    break
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    await asyncio.sleep(0.05)
        for call in (*mine, *anonymous, last, again):
            call.cancel()
    finally:
        for channel in (x, y, z):
            await channel.close()


@pytest_asyncio.fixture(loop_scope="session")
async def metered(pool: asyncpg.Pool) -> AsyncIterator[tuple[str, Metrics]]:
    """A server whose metrics the test can read."""
    metrics = Metrics()
    server: OrFlowServer = build_server(TEST_SETTINGS, pool=pool, expiry=NoQueueExpiryScheduler(), metrics=metrics)
    await server.start()
    yield f"127.0.0.1:{server.port}", metrics
    await server.stop(grace=None)


def _denied(metrics: Metrics, method: str, reason: str) -> float:
    value = metrics.registry.get_sample_value("orflow_calls_denied_total", {"method": method, "reason": reason})
    return value or 0.0


async def test_f5_refused_calls_are_logged_and_counted(
    db: asyncpg.Connection, metered: tuple[str, Metrics], caplog: pytest.LogCaptureFixture
) -> None:
    """Before: a forged token, a patient calling AdminService or reading another's booking left no trace."""
    target, metrics = metered
    slot_id = await insert_slot(db)
    get_booking = "/orflow.v1.BookingService/GetBooking"
    list_rooms = "/orflow.v1.AdminService/ListRooms"
    caplog.set_level(logging.WARNING, logger="orflow_server.rpc.auth")
    async with grpc.aio.insecure_channel(target) as channel:
        bookings = booking_service_pb2_grpc.BookingServiceStub(channel)
        admin = admin_service_pb2_grpc.AdminServiceStub(channel)
        theirs = await bookings.CreateBooking(
            booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id="p-victim"),
            metadata=bearer(ADMIN_TOKEN),
        )
        forged = ADMIN_TOKEN[:-4] + ("AAAA" if not ADMIN_TOKEN.endswith("AAAA") else "BBBB")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await bookings.GetBooking(booking_service_pb2.GetBookingRequest(booking_id=1), metadata=bearer(forged))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        attacker = bearer(token_for(Role.PATIENT, "p-attacker"))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await admin.ListRooms(admin_service_pb2.ListRoomsRequest(), metadata=attacker)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        hidden, missing = [
            await _not_found(bookings, booking_id, attacker) for booking_id in (theirs.booking.id, 10**12)
        ]
    assert hidden == (grpc.StatusCode.NOT_FOUND, "BOOKING_NOT_FOUND"), "another's booking reads as a missing one"
    assert hidden == missing
    assert _denied(metrics, get_booking, "TOKEN_BAD_SIGNATURE") == 1
    assert _denied(metrics, list_rooms, "ROLE_FORBIDDEN") == 1
    assert _denied(metrics, get_booking, "OTHER_PATIENTS_BOOKING") == 1
    assert _denied(metrics, get_booking, "BOOKING_NOT_FOUND") == 0, "a missing booking is no refusal"
    lines = [r.getMessage() for r in caplog.records if r.name == "orflow_server.rpc.auth"]
    assert any(get_booking in line and "'test-admin'" in line and "TOKEN_BAD_SIGNATURE" in line for line in lines)
    assert any(list_rooms in line and "p-attacker" in line and "ROLE_FORBIDDEN" in line for line in lines)
    assert any(get_booking in line and "p-attacker" in line and "OTHER_PATIENTS_BOOKING" in line for line in lines)


async def _not_found(
    bookings: booking_service_pb2_grpc.BookingServiceStub, booking_id: int, metadata: tuple[tuple[str, str], ...]
) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await bookings.GetBooking(booking_service_pb2.GetBookingRequest(booking_id=booking_id), metadata=metadata)
    info, _ = error_details(caught.value)
    assert info is not None
    return caught.value.code(), info.reason


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_f5_the_denial_log_is_rate_limited_and_says_how_many_it_left_out(caplog: pytest.LogCaptureFixture) -> None:
    from orflow_server.domain.errors import UnauthenticatedError
    from orflow_server.domain.reasons import ErrorReason

    clock, metrics = _Clock(), Metrics()
    denied = DeniedCalls(metrics, lines_per_minute=2, clock=clock)
    caplog.set_level(logging.WARNING, logger="orflow_server.rpc.auth")
    refusal = UnauthenticatedError("no", reason=ErrorReason.TOKEN_MISSING)
    for _ in range(5):
        denied.record("/orflow.v1.BookingService/GetBooking", "anonymous", refusal, "ipv4:127.0.0.1:1")
    assert len(caplog.records) == 2
    clock.now = 61
    denied.record("/orflow.v1.BookingService/GetBooking", "anonymous", refusal, "ipv4:127.0.0.1:1")
    assert [r.getMessage() for r in caplog.records][2] == "3 more denied calls in the last minute were not logged"
    assert len(caplog.records) == 4
    assert _denied(metrics, "/orflow.v1.BookingService/GetBooking", "TOKEN_MISSING") == 6, "every one is counted"


@pytest.mark.parametrize("subject", ["p\x00nul", "p\u202eevil", "p\u200bzero-width"])
async def test_f6_f13_a_signed_token_whose_subject_has_control_or_invisible_characters_is_refused(
    target: str, subject: str
) -> None:
    """Before: a NUL in `sub` reached PostgreSQL and answered INTERNAL."""
    async with grpc.aio.insecure_channel(target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await booking_service_pb2_grpc.BookingServiceStub(channel).ListPatientBookings(
                booking_service_pb2.ListPatientBookingsRequest(), metadata=bearer(token_for(Role.PATIENT, subject))
            )
    info, _ = error_details(caught.value)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert info is not None and info.reason == "TOKEN_INVALID"


@pytest.mark.parametrize("name", ["OR\u202e1", "OR\u200b1", "OR\x001", "OR\u20281"])
async def test_f13_names_and_patient_ids_refuse_invisible_characters(
    db: asyncpg.Connection,
    admin: admin_service_pb2_grpc.AdminServiceStub,
    bookings: booking_service_pb2_grpc.BookingServiceStub,
    name: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.CreateRoom(admin_service_pb2.CreateRoomRequest(name=name))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(caught.value)[1] == [("name", "must not contain control characters")]
    slot_id = await insert_slot(db)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await bookings.CreateBooking(booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id=name))
    assert error_details(caught.value)[1] == [("patient_id", "must not contain control characters")]


async def test_f9_a_list_repeating_one_item_is_one_bounded_invalid_argument(
    db: asyncpg.Connection, admin: admin_service_pb2_grpc.AdminServiceStub
) -> None:
    """Before: 50 copies of one equipment overflowed the trailers (RESOURCE_EXHAUSTED, metadata size)."""
    equipment_id = await insert_equipment(db, quantity=3)
    room = await admin.CreateRoom(admin_service_pb2.CreateRoomRequest(name="OR probe"))
    doctor = await admin.CreateDoctor(admin_service_pb2.CreateDoctorRequest(name="Dr Probe", specialty="General"))
    start, end = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
    start.FromDatetime(future(24))
    end.FromDatetime(future(26))
    request = admin_service_pb2.CreateSlotRequest(
        doctor_id=doctor.doctor.id, room_id=room.room.id, procedure_type="Probe", start_time=start, end_time=end
    )
    for _ in range(50):
        request.required_equipment.add(equipment_id=equipment_id, quantity=1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.CreateSlot(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info, violations = error_details(caught.value)
    assert info is not None and info.reason == "INVALID_ARGUMENT"
    assert violations[0] == ("required_equipment[1].equipment_id", "each equipment type at most once")
    assert violations[-1] == ("request", "and 48 more violations like these")
    assert len(violations) == 2 <= MAX_FIELD_VIOLATIONS


async def test_f9_many_different_violations_stop_at_the_bound(
    db: asyncpg.Connection, admin: admin_service_pb2_grpc.AdminServiceStub
) -> None:
    request = admin_service_pb2.CreateSlotRequest()
    for i in range(50):
        request.required_equipment.add(equipment_id=-i - 1, quantity=1)  # each a distinct field, same problem
    request.procedure_type = "x" * 300
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.CreateSlot(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, violations = error_details(caught.value)
    assert len(violations) <= MAX_FIELD_VIOLATIONS
    assert violations[-1][0] == "request" and "more violations" in violations[-1][1]


class _Watcher(Watcher):
    """tests/rpc's Watcher, as anonymous or with a token of its own."""

    def __init__(self, channel: grpc.aio.Channel, token: str | None = None) -> None:
        stub = slot_service_pb2_grpc.SlotServiceStub(channel)
        self.call = stub.WatchSlots(WATCH_ALL, metadata=bearer(token) if token else None)


async def test_f10_anonymous_watchers_see_availability_not_booking_activity(
    db: asyncpg.Connection, start_server: ServerFactory, bookings: booking_service_pb2_grpc.BookingServiceStub
) -> None:
    """Before: anonymous watchers saw BOOKED -> CONFIRMED -> RELEASED: when a patient confirmed and cancelled.
    Now they see only that the slot became unavailable and then available again."""
    target = await start_server()
    slot_id = await insert_slot(db)
    async with _channel(target) as anonymous_channel, _channel(target) as staff_channel:
        anonymous = _Watcher(anonymous_channel)
        patient = _Watcher(anonymous_channel, token_for(Role.PATIENT, "p-watching"))
        staff = _Watcher(staff_channel, ADMIN_TOKEN)
        watchers = (anonymous, patient, staff)
        for watcher in watchers:
            assert slot_id in await watcher.snapshot()
        await barrier(db, *watchers)
        held = await bookings.CreateBooking(booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id="p-9"))
        await bookings.ConfirmBooking(booking_service_pb2.ConfirmBookingRequest(booking_id=held.booking.id))
        await bookings.CancelBooking(booking_service_pb2.CancelBookingRequest(booking_id=held.booking.id))
        assert [await staff.change() for _ in range(3)] == [
            (BOOKED, slot_id, False),
            (CONFIRMED, slot_id, False),
            (RELEASED, slot_id, True),
        ]
        for watcher in (anonymous, patient):
            assert [await watcher.change() for _ in range(2)] == [
                (AVAILABILITY, slot_id, False),
                (AVAILABILITY, slot_id, True),
            ]
        marker = await insert_slot(db)  # the next thing they hear: no CONFIRMED was queued in between
        for watcher in (anonymous, patient):
            assert (await watcher.change())[:2] == (slot_service_pb2.SLOT_CHANGE_KIND_CREATED, marker)
        for watcher in watchers:
            watcher.call.cancel()


async def test_f11_a_patient_is_told_which_equipment_is_short_but_not_the_stock(
    db: asyncpg.Connection, target: str, bookings: booking_service_pb2_grpc.BookingServiceStub
) -> None:
    """Before: "0 of 5 free" and metadata `available` in a patient's refusal; inventory is admin-only."""
    ventilator = await insert_equipment(db, name="Ventilator", quantity=1)
    start = future(30)
    first, second = [await insert_slot(db, start=start, equipment=[(ventilator, 1)]) for _ in range(2)]
    await bookings.CreateBooking(booking_service_pb2.CreateBookingRequest(slot_id=first, patient_id="p-first"))
    async with grpc.aio.insecure_channel(target) as channel:
        as_patient = booking_service_pb2_grpc.BookingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await as_patient.CreateBooking(
                booking_service_pb2.CreateBookingRequest(slot_id=second),
                metadata=bearer(token_for(Role.PATIENT, "p-second")),
            )
    info, _ = error_details(caught.value)
    assert caught.value.code() == grpc.StatusCode.ABORTED
    assert info is not None and info.reason == "EQUIPMENT_UNAVAILABLE"
    assert dict(info.metadata) == {"equipment_id": str(ventilator), "equipment": "Ventilator"}
    assert caught.value.details() == "Ventilator is not available at that time"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await bookings.CreateBooking(booking_service_pb2.CreateBookingRequest(slot_id=second, patient_id="p-2"))
    info, _ = error_details(caught.value)
    assert info is not None and info.metadata["available"] == "0", "staff still learn the stock"


@pytest.mark.parametrize("token", [None, "not-a-jwt"])
async def test_f12_a_token_method_authenticates_before_it_parses(target: str, token: str | None) -> None:
    """Before: anonymous garbage bytes got INVALID_ARGUMENT (parsed first); now UNAUTHENTICATED, unparsed."""
    async with grpc.aio.insecure_channel(target) as channel:
        raw = channel.unary_unary("/orflow.v1.BookingService/GetBooking")  # bytes in, bytes out
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await raw(b"\xff\xff\xff garbage", metadata=bearer(token) if token else None)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_f12_an_allowed_caller_still_gets_invalid_argument_for_garbage(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        raw = channel.unary_unary("/orflow.v1.BookingService/GetBooking")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await raw(b"\xff\xff\xff garbage", metadata=bearer(ADMIN_TOKEN))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_settings_for_stream_caps_have_safe_defaults() -> None:
    defaults = replace(TEST_SETTINGS)
    assert (
        defaults.watch_streams_per_caller,
        defaults.watch_streams_per_connection,
        defaults.watch_streams_total,
    ) == (10, 100, 500)
