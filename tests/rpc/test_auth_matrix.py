"""Every RPC x every kind of caller, against the real server: the code each one gets.

Callers: no token, an expired token, a token with a bad signature, an `alg: none`
token, the patient who owns the booking, another patient, a service and an admin.
Each case sets up its own data (a free slot, and a booking of the owner's) so a
call that changes state never leaks into the next case.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import pytest
from orflow.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    booking_service_pb2,
    booking_service_pb2_grpc,
    slot_service_pb2,
    slot_service_pb2_grpc,
)
from orflow_server.domain.access import Role
from orflow_server.rpc.auth import METHOD_ROLES
from orflow_server.security.tokens import issue_token

from ..auth import TEST_SECRET, bearer, token_for
from ..factories import error_details, future, insert_doctor, insert_equipment, insert_room, insert_slot

OWNER, OTHER = "p-owner", "p-other"
OK = grpc.StatusCode.OK
UNAUTH = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_FOUND = grpc.StatusCode.NOT_FOUND


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _alg_none_token() -> str:
    now = int(datetime.now(UTC).timestamp())
    claims = {"sub": "intruder", "role": "admin", "iss": "orflow", "aud": "orflow", "iat": now, "exp": now + 3600}
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


CALLERS: dict[str, str | None] = {
    "no token": None,
    "expired": issue_token(
        TEST_SECRET,
        subject="test-admin",
        role=Role.ADMIN,
        ttl=timedelta(hours=1),
        issuer="orflow",
        audience="orflow",
        now=datetime.now(UTC) - timedelta(hours=3),
    ),
    "bad signature": issue_token(
        "a-different-secret-of-32-characters-or-more",
        subject="test-admin",
        role=Role.ADMIN,
        ttl=timedelta(hours=1),
        issuer="orflow",
        audience="orflow",
    ),
    "alg none": _alg_none_token(),
    "patient": token_for(Role.PATIENT, OWNER),
    "other patient": token_for(Role.PATIENT, OTHER),
    "service": token_for(Role.SERVICE, "ehr"),
    "admin": token_for(Role.ADMIN, "test-admin"),
}
INVALID = {"expired": UNAUTH, "bad signature": UNAUTH, "alg none": UNAUTH}


def _public() -> dict[str, grpc.StatusCode]:
    return {"no token": OK, **INVALID, "patient": OK, "other patient": OK, "service": OK, "admin": OK}


def _own_booking(other: grpc.StatusCode) -> dict[str, grpc.StatusCode]:
    """A call on the owner's booking: another patient must not learn it exists."""
    return {"no token": UNAUTH, **INVALID, "patient": OK, "other patient": other, "service": OK, "admin": OK}


def _admin_only() -> dict[str, grpc.StatusCode]:
    return {"no token": UNAUTH, **INVALID, "patient": DENIED, "other patient": DENIED, "service": DENIED, "admin": OK}


@dataclass(frozen=True)
class Fixture:
    slot_id: int
    booking_id: int
    room_id: int
    doctor_id: int
    equipment_id: int


Stubs = dict[str, Any]
Call = Callable[[Stubs, Fixture, tuple[tuple[str, str], ...]], Awaitable[Any]]


async def _first_message(stubs: Stubs, f: Fixture, md: tuple[tuple[str, str], ...]) -> Any:
    stream = stubs["slots"].WatchSlots(slot_service_pb2.WatchSlotsRequest(), metadata=md, timeout=10)
    try:
        return await stream.read()
    finally:
        stream.cancel()


S, B, A = slot_service_pb2, booking_service_pb2, admin_service_pb2
CASES: dict[str, tuple[Call, dict[str, grpc.StatusCode]]] = {
    "/orflow.v1.SlotService/ListSlots": (
        lambda st, f, md: st["slots"].ListSlots(S.ListSlotsRequest(), metadata=md),
        _public(),
    ),
    "/orflow.v1.SlotService/GetSlot": (
        lambda st, f, md: st["slots"].GetSlot(S.GetSlotRequest(slot_id=f.slot_id), metadata=md),
        _public(),
    ),
    "/orflow.v1.SlotService/ListDoctors": (
        lambda st, f, md: st["slots"].ListDoctors(S.ListDoctorsRequest(), metadata=md),
        _public(),
    ),
    "/orflow.v1.SlotService/WatchSlots": (_first_message, _public()),
    "/orflow.v1.BookingService/CreateBooking": (
        lambda st, f, md: st["bookings"].CreateBooking(
            B.CreateBookingRequest(slot_id=f.slot_id, patient_id=OWNER), metadata=md
        ),
        _own_booking(DENIED),
    ),
    "/orflow.v1.BookingService/GetBooking": (
        lambda st, f, md: st["bookings"].GetBooking(B.GetBookingRequest(booking_id=f.booking_id), metadata=md),
        _own_booking(NOT_FOUND),
    ),
    "/orflow.v1.BookingService/ConfirmBooking": (
        lambda st, f, md: st["bookings"].ConfirmBooking(B.ConfirmBookingRequest(booking_id=f.booking_id), metadata=md),
        _own_booking(NOT_FOUND),
    ),
    "/orflow.v1.BookingService/CancelBooking": (
        lambda st, f, md: st["bookings"].CancelBooking(B.CancelBookingRequest(booking_id=f.booking_id), metadata=md),
        _own_booking(NOT_FOUND),
    ),
    "/orflow.v1.BookingService/ListPatientBookings": (
        lambda st, f, md: st["bookings"].ListPatientBookings(
            B.ListPatientBookingsRequest(patient_id=OWNER), metadata=md
        ),
        _own_booking(DENIED),
    ),
    "/orflow.v1.AdminService/SeedDatabase": (
        lambda st, f, md: st["admin"].SeedDatabase(A.SeedDatabaseRequest(), metadata=md),
        _admin_only(),
    ),
    "/orflow.v1.AdminService/ListBookings": (
        lambda st, f, md: st["admin"].ListBookings(A.ListBookingsRequest(), metadata=md),
        _admin_only(),
    ),
    "/orflow.v1.AdminService/CreateSlot": (
        lambda st, f, md: st["admin"].CreateSlot(
            A.CreateSlotRequest(
                doctor_id=f.doctor_id,
                room_id=f.room_id,
                procedure_type="Matrix",
                start_time=_ts(future(200)),
                end_time=_ts(future(202)),
            ),
            metadata=md,
        ),
        _admin_only(),
    ),
    "/orflow.v1.AdminService/CreateRoom": (
        lambda st, f, md: st["admin"].CreateRoom(A.CreateRoomRequest(name="OR matrix"), metadata=md),
        _admin_only(),
    ),
    "/orflow.v1.AdminService/ListRooms": (
        lambda st, f, md: st["admin"].ListRooms(A.ListRoomsRequest(), metadata=md),
        _admin_only(),
    ),
    "/orflow.v1.AdminService/CreateDoctor": (
        lambda st, f, md: st["admin"].CreateDoctor(A.CreateDoctorRequest(name="Dr. M", specialty="X"), metadata=md),
        _admin_only(),
    ),
    "/orflow.v1.AdminService/CreateEquipment": (
        lambda st, f, md: st["admin"].CreateEquipment(A.CreateEquipmentRequest(name="Matrix", quantity=1), metadata=md),
        _admin_only(),
    ),
    "/orflow.v1.AdminService/ListEquipment": (
        lambda st, f, md: st["admin"].ListEquipment(A.ListEquipmentRequest(), metadata=md),
        _admin_only(),
    ),
    "/orflow.v1.AdminService/ListAuditEvents": (
        lambda st, f, md: st["admin"].ListAuditEvents(A.ListAuditEventsRequest(), metadata=md),
        _admin_only(),
    ),
}


def _ts(moment: datetime) -> Any:
    from google.protobuf import timestamp_pb2

    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def test_the_matrix_covers_every_method_of_every_service() -> None:
    assert set(CASES) == set(METHOD_ROLES)
    for _, expected in CASES.values():
        assert set(expected) == set(CALLERS)


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("method", list(CASES))
async def test_who_may_call_what(
    method: str, caller: str, channel: grpc.aio.Channel, target: str, db: asyncpg.Connection
) -> None:
    room, doctor = await insert_room(db), await insert_doctor(db)
    equipment = await insert_equipment(db)
    booked = await insert_slot(db, start=future(24))
    free = await insert_slot(db, start=future(48), room_id=room, doctor_id=doctor)
    service_md = bearer(token_for(Role.SERVICE, "matrix-setup"))
    hold = await booking_service_pb2_grpc.BookingServiceStub(channel).CreateBooking(
        B.CreateBookingRequest(slot_id=booked, patient_id=OWNER), metadata=service_md
    )
    async with grpc.aio.insecure_channel(target) as plain:
        stubs = {
            "slots": slot_service_pb2_grpc.SlotServiceStub(plain),
            "bookings": booking_service_pb2_grpc.BookingServiceStub(plain),
            "admin": admin_service_pb2_grpc.AdminServiceStub(plain),
        }
        call, expected = CASES[method]
        token = CALLERS[caller]
        try:
            await call(stubs, Fixture(free, hold.booking.id, room, doctor, equipment), bearer(token) if token else ())
            code = OK
        except grpc.aio.AioRpcError as error:
            code = error.code()
            info, _ = error_details(error)
            assert info is not None and info.reason, "every refusal carries an ErrorInfo reason"
    assert code == expected[caller], f"{caller} calling {method}"


def _field_names(descriptor: Any, seen: set[str] | None = None) -> set[str]:
    """Every field name reachable from a message type (nested messages included)."""
    seen = seen if seen is not None else set()
    if descriptor.full_name in seen:
        return set()
    seen.add(descriptor.full_name)
    names: set[str] = set()
    for field in descriptor.fields:
        names.add(field.name)
        if field.message_type is not None:
            names |= _field_names(field.message_type, seen)
    return names


@pytest.mark.parametrize("message", [S.ListSlotsResponse, S.GetSlotResponse, S.WatchSlotsResponse])
def test_public_slot_messages_cannot_say_who_holds_a_slot(message: Any) -> None:
    names = _field_names(message.DESCRIPTOR)
    assert "available" in names
    assert not {n for n in names if "patient" in n or "booking" in n}
