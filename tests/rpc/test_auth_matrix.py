"""Every RPC x every kind of caller, against the real server: the code each one gets.

Callers: no token, an expired token, a token with a bad signature, an `alg: none`
token, the patient who owns the booking, another patient, a service and an admin.
What each caller should get is derived from the protos' `(orflow.v1.access)`
option on the method (read here from the descriptors, independently of
rpc/auth.py), plus the ownership rule no option can state (another patient's
booking). Each case sets up its own data (a free slot, and a booking of the
owner's) so a call that changes state never leaks into the next case.
"""

from __future__ import annotations

import base64
import importlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import orflow.v1
import pytest
from orflow.v1 import (
    access_pb2,
    admin_service_pb2,
    admin_service_pb2_grpc,
    booking_service_pb2,
    booking_service_pb2_grpc,
    resources_pb2,
    slot_service_pb2,
    slot_service_pb2_grpc,
)
from orflow_server.domain.access import Role
from orflow_server.rpc.auth import METHOD_ROLES, roles_for
from orflow_server.security.tokens import issue_token

from ..auth import TEST_SECRET, bearer, token_for
from ..conftest import REPO_ROOT
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
INVALID = {"expired", "bad signature", "alg none"}
CALLER_ROLES = {
    "no token": access_pb2.ROLE_ANONYMOUS,
    "patient": access_pb2.ROLE_PATIENT,
    "other patient": access_pb2.ROLE_PATIENT,
    "service": access_pb2.ROLE_SERVICE,
    "admin": access_pb2.ROLE_ADMIN,
}

# Ownership, which no role option can say: another patient must not learn the owner's booking exists
# (NOT_FOUND), nor act for the owner (PERMISSION_DENIED).
OTHER_PATIENT = {
    "/orflow.v1.BookingService/CreateBooking": DENIED,
    "/orflow.v1.BookingService/GetBooking": NOT_FOUND,
    "/orflow.v1.BookingService/ConfirmBooking": NOT_FOUND,
    "/orflow.v1.BookingService/CancelBooking": NOT_FOUND,
    "/orflow.v1.BookingService/ListPatientBookings": DENIED,
    "/orflow.v1.BookingService/RescheduleBooking": NOT_FOUND,
    "/orflow.v1.BookingService/ExtendHold": NOT_FOUND,
}

# BookingService's day-of-surgery methods, which its comment reserves to staff (service and admin tokens).
STAFF_ONLY = {
    "/orflow.v1.BookingService/CheckInBooking",
    "/orflow.v1.BookingService/StartBooking",
    "/orflow.v1.BookingService/CompleteBooking",
    "/orflow.v1.BookingService/MarkBookingNoShow",
}


# AdminService's one read open to every caller, as its comment says: a portal needs each site's time zone.
OPEN_TO_ALL = {"/orflow.v1.AdminService/ListSites"}
EVERYONE = {access_pb2.ROLE_ANONYMOUS, access_pb2.ROLE_PATIENT, access_pb2.ROLE_SERVICE, access_pb2.ROLE_ADMIN}


def _declared_methods() -> dict[str, Any]:
    """Every RPC of every *_service.proto in protos/orflow/v1, by path, with its method descriptor."""
    methods: dict[str, Any] = {}
    for proto in sorted((REPO_ROOT / "protos" / "orflow" / "v1").glob("*_service.proto")):
        module = importlib.import_module(f"{orflow.v1.__name__}.{proto.stem}_pb2")
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                methods[f"/{service.full_name}/{method.name}"] = method
    return methods


DECLARED = _declared_methods()


def _declared_roles(method: str) -> set[int]:
    options = DECLARED[method].GetOptions()
    return set(options.Extensions[access_pb2.access].roles) if options.HasExtension(access_pb2.access) else set()


def expected_code(method: str, caller: str) -> grpc.StatusCode:
    """What the protos say `caller` gets from `method` (a token that is sent must be valid, even for public methods)."""
    if caller in INVALID:
        return UNAUTH
    if CALLER_ROLES[caller] not in _declared_roles(method):
        return UNAUTH if CALLER_ROLES[caller] == access_pb2.ROLE_ANONYMOUS else DENIED
    if caller == "other patient":
        return OTHER_PATIENT.get(method, OK)
    return OK


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
_SETUP = bearer(token_for(Role.SERVICE, "matrix-setup"))


def _day_step(rpc: str, *before: str) -> Call:
    """Calls `rpc` as the caller after walking the owner's hold to its source state with a setup token."""

    async def call(stubs: Stubs, f: Fixture, md: tuple[tuple[str, str], ...]) -> Any:
        for step in ("ConfirmBooking", *before):
            await getattr(stubs["bookings"], step)(
                getattr(B, f"{step}Request")(booking_id=f.booking_id), metadata=_SETUP
            )
        return await getattr(stubs["bookings"], rpc)(getattr(B, f"{rpc}Request")(booking_id=f.booking_id), metadata=md)

    return call


CASES: dict[str, Call] = {
    "/orflow.v1.SlotService/ListSlots": lambda st, f, md: st["slots"].ListSlots(S.ListSlotsRequest(), metadata=md),
    "/orflow.v1.SlotService/GetSlot": lambda st, f, md: st["slots"].GetSlot(
        S.GetSlotRequest(slot_id=f.slot_id), metadata=md
    ),
    "/orflow.v1.SlotService/ListDoctors": lambda st, f, md: st["slots"].ListDoctors(
        S.ListDoctorsRequest(), metadata=md
    ),
    "/orflow.v1.SlotService/WatchSlots": _first_message,
    "/orflow.v1.BookingService/CreateBooking": lambda st, f, md: st["bookings"].CreateBooking(
        B.CreateBookingRequest(slot_id=f.slot_id, patient_id=OWNER), metadata=md
    ),
    "/orflow.v1.BookingService/GetBooking": lambda st, f, md: st["bookings"].GetBooking(
        B.GetBookingRequest(booking_id=f.booking_id), metadata=md
    ),
    "/orflow.v1.BookingService/ConfirmBooking": lambda st, f, md: st["bookings"].ConfirmBooking(
        B.ConfirmBookingRequest(booking_id=f.booking_id), metadata=md
    ),
    "/orflow.v1.BookingService/CancelBooking": lambda st, f, md: st["bookings"].CancelBooking(
        B.CancelBookingRequest(booking_id=f.booking_id), metadata=md
    ),
    "/orflow.v1.BookingService/ListPatientBookings": lambda st, f, md: st["bookings"].ListPatientBookings(
        B.ListPatientBookingsRequest(patient_id=OWNER), metadata=md
    ),
    "/orflow.v1.BookingService/RescheduleBooking": lambda st, f, md: st["bookings"].RescheduleBooking(
        B.RescheduleBookingRequest(booking_id=f.booking_id, slot_id=f.slot_id), metadata=md
    ),
    "/orflow.v1.BookingService/ExtendHold": lambda st, f, md: st["bookings"].ExtendHold(
        B.ExtendHoldRequest(booking_id=f.booking_id), metadata=md
    ),
    "/orflow.v1.BookingService/CheckInBooking": _day_step("CheckInBooking"),
    "/orflow.v1.BookingService/StartBooking": _day_step("StartBooking", "CheckInBooking"),
    "/orflow.v1.BookingService/CompleteBooking": _day_step("CompleteBooking", "CheckInBooking", "StartBooking"),
    "/orflow.v1.BookingService/MarkBookingNoShow": _day_step("MarkBookingNoShow"),
    "/orflow.v1.AdminService/SeedDatabase": lambda st, f, md: st["admin"].SeedDatabase(
        A.SeedDatabaseRequest(), metadata=md
    ),
    "/orflow.v1.AdminService/ListBookings": lambda st, f, md: st["admin"].ListBookings(
        A.ListBookingsRequest(), metadata=md
    ),
    "/orflow.v1.AdminService/CreateSlot": lambda st, f, md: st["admin"].CreateSlot(
        A.CreateSlotRequest(
            doctor_id=f.doctor_id,
            room_id=f.room_id,
            procedure_type="Matrix",
            start_time=_ts(future(200)),
            end_time=_ts(future(202)),
        ),
        metadata=md,
    ),
    "/orflow.v1.AdminService/CancelSlot": lambda st, f, md: st["admin"].CancelSlot(
        A.CancelSlotRequest(slot_id=f.slot_id, note="matrix"), metadata=md
    ),
    "/orflow.v1.AdminService/CreateRoom": lambda st, f, md: st["admin"].CreateRoom(
        A.CreateRoomRequest(name="OR matrix"), metadata=md
    ),
    "/orflow.v1.AdminService/ListRooms": lambda st, f, md: st["admin"].ListRooms(A.ListRoomsRequest(), metadata=md),
    "/orflow.v1.AdminService/CreateSite": lambda st, f, md: st["admin"].CreateSite(
        A.CreateSiteRequest(name=f"matrix-{uuid.uuid4().hex[:8]}", display_name="Matrix", time_zone="Europe/London"),
        metadata=md,
    ),
    "/orflow.v1.AdminService/ListSites": lambda st, f, md: st["admin"].ListSites(A.ListSitesRequest(), metadata=md),
    "/orflow.v1.AdminService/CreateDoctor": lambda st, f, md: st["admin"].CreateDoctor(
        A.CreateDoctorRequest(name="Dr. M", specialty="X"), metadata=md
    ),
    "/orflow.v1.AdminService/CreateEquipment": lambda st, f, md: st["admin"].CreateEquipment(
        A.CreateEquipmentRequest(name="Matrix", quantity=1), metadata=md
    ),
    "/orflow.v1.AdminService/ListEquipment": lambda st, f, md: st["admin"].ListEquipment(
        A.ListEquipmentRequest(), metadata=md
    ),
    "/orflow.v1.AdminService/ListAuditEvents": lambda st, f, md: st["admin"].ListAuditEvents(
        A.ListAuditEventsRequest(), metadata=md
    ),
    "/orflow.v1.AdminService/UpdateRoom": lambda st, f, md: st["admin"].UpdateRoom(
        A.UpdateRoomRequest(room=resources_pb2.Room(id=f.room_id, name="OR matrix 2")), metadata=md
    ),
    "/orflow.v1.AdminService/UpdateDoctor": lambda st, f, md: st["admin"].UpdateDoctor(
        A.UpdateDoctorRequest(doctor=resources_pb2.Doctor(id=f.doctor_id, specialty="Y")), metadata=md
    ),
    "/orflow.v1.AdminService/UpdateEquipment": lambda st, f, md: st["admin"].UpdateEquipment(
        A.UpdateEquipmentRequest(equipment=resources_pb2.Equipment(id=f.equipment_id, quantity=3)), metadata=md
    ),
    "/orflow.v1.AdminService/UpdateSlot": lambda st, f, md: st["admin"].UpdateSlot(
        A.UpdateSlotRequest(slot=resources_pb2.Slot(id=f.slot_id, procedure_type="Matrix")), metadata=md
    ),
    "/orflow.v1.AdminService/RetireRoom": lambda st, f, md: st["admin"].RetireRoom(
        A.RetireRoomRequest(room_id=f.room_id), metadata=md
    ),
    "/orflow.v1.AdminService/RetireDoctor": lambda st, f, md: st["admin"].RetireDoctor(
        A.RetireDoctorRequest(doctor_id=f.doctor_id), metadata=md
    ),
    "/orflow.v1.AdminService/RetireEquipment": lambda st, f, md: st["admin"].RetireEquipment(
        A.RetireEquipmentRequest(equipment_id=f.equipment_id), metadata=md
    ),
    "/orflow.v1.AdminService/RetireSlot": lambda st, f, md: st["admin"].RetireSlot(
        A.RetireSlotRequest(slot_id=f.slot_id), metadata=md
    ),
}


def _ts(moment: datetime) -> Any:
    from google.protobuf import timestamp_pb2

    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def test_the_matrix_covers_every_method_of_every_service() -> None:
    assert len(DECLARED) >= 18
    assert sorted(CASES) == sorted(DECLARED) == sorted(METHOD_ROLES)
    assert set(CALLER_ROLES) | INVALID == set(CALLERS)
    assert set(OTHER_PATIENT) <= set(DECLARED)
    assert set(DECLARED) >= STAFF_ONLY


def test_every_rpc_declares_who_may_call_it() -> None:
    """A new RPC without `option (orflow.v1.access)` fails here, by name (and the server refuses it to everyone)."""
    missing = [method for method in DECLARED if not _declared_roles(method) - {access_pb2.ROLE_UNSPECIFIED}]
    assert missing == [], f"add option (orflow.v1.access) = {{roles: [...]}} to: {missing}"


def test_the_server_table_is_the_descriptors() -> None:
    for method, roles in METHOD_ROLES.items():
        declared = {Role[access_pb2.Role.Name(r).removeprefix("ROLE_")] for r in _declared_roles(method)}
        assert roles == declared, method


def test_a_method_without_the_option_is_refused_to_everyone() -> None:
    """Fail closed: health has no access option, so roles_for gives no role at all."""
    from grpc_health.v1 import health_pb2

    check = health_pb2.DESCRIPTOR.services_by_name["Health"].methods_by_name["Check"]
    assert not check.GetOptions().HasExtension(access_pb2.access)
    assert roles_for(check) == frozenset()


@pytest.mark.parametrize(
    ("service", "roles"),
    [
        (
            "SlotService",
            {access_pb2.ROLE_ANONYMOUS, access_pb2.ROLE_PATIENT, access_pb2.ROLE_SERVICE, access_pb2.ROLE_ADMIN},
        ),
        ("BookingService", {access_pb2.ROLE_PATIENT, access_pb2.ROLE_SERVICE, access_pb2.ROLE_ADMIN}),
        ("AdminService", {access_pb2.ROLE_ADMIN}),
    ],
)
def test_each_service_keeps_the_promise_of_its_comment(service: str, roles: set[int]) -> None:
    """The service comments say: browsing needs no token, booking needs one (the day of surgery a staff one),
    admin needs the admin role (but anyone may list the sites)."""
    methods = [m for m in DECLARED if m.startswith(f"/orflow.v1.{service}/")]
    assert methods
    for method in methods:
        expected = {access_pb2.ROLE_SERVICE, access_pb2.ROLE_ADMIN} if method in STAFF_ONLY else roles
        expected = EVERYONE if method in OPEN_TO_ALL else expected
        assert _declared_roles(method) == expected, method


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
        call = CASES[method]
        token = CALLERS[caller]
        try:
            await call(stubs, Fixture(free, hold.booking.id, room, doctor, equipment), bearer(token) if token else ())
            code = OK
        except grpc.aio.AioRpcError as error:
            code = error.code()
            info, _ = error_details(error)
            assert info is not None and info.reason, "every refusal carries an ErrorInfo reason"
    assert code == expected_code(method, caller), f"{caller} calling {method}"


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
