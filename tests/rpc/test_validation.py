"""Bad requests over the wire: every RPC refuses them with the right code and field, and writes nothing.

Each case names the RPC, builds the request from a small world of real rows, and says which
status, ErrorInfo reason and (for INVALID_ARGUMENT) BadRequest field it must get.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import grpc
import pytest
import pytest_asyncio
from google.protobuf import timestamp_pb2
from orflow.v1 import admin_service_pb2, booking_service_pb2, resources_pb2, slot_service_pb2

from tests.factories import error_details, future, insert_doctor, insert_equipment, insert_room, insert_slot, snapshot

INVALID = grpc.StatusCode.INVALID_ARGUMENT


@dataclass(frozen=True)
class World:
    room: int
    doctor: int
    item: int  # quantity 3
    slot: int


@pytest_asyncio.fixture(loop_scope="session")
async def world(db: asyncpg.Connection) -> World:
    room = await insert_room(db, name="Existing Room")
    doctor = await insert_doctor(db)
    item = await insert_equipment(db, name="Existing Device", quantity=3)
    slot = await insert_slot(db, room_id=room, doctor_id=doctor, equipment=[(item, 1)])
    return World(room, doctor, item, slot)


def ts(moment: datetime | None = None, *, seconds: int | None = None, nanos: int = 0) -> timestamp_pb2.Timestamp:
    if seconds is None:
        assert moment is not None
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(moment)
        stamp.nanos = nanos or stamp.nanos
        return stamp
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def slot_request(w: World, **overrides: Any) -> admin_service_pb2.CreateSlotRequest:
    start = future(48)
    fields: dict[str, Any] = {
        "doctor_id": w.doctor,
        "room_id": w.room,
        "procedure_type": "Appendectomy",
        "start_time": ts(start),
        "end_time": ts(start + timedelta(hours=2)),
    }
    fields.update(overrides)
    return admin_service_pb2.CreateSlotRequest(**{k: v for k, v in fields.items() if v is not None})


def need(equipment_id: int, quantity: int) -> resources_pb2.EquipmentRequirement:
    return resources_pb2.EquipmentRequirement(equipment_id=equipment_id, quantity=quantity)


Build = Callable[[World], Any]

# (case id, service, method, build, code, ErrorInfo reason, BadRequest field or None)
CASES: list[tuple[str, str, str, Build, grpc.StatusCode, str, str | None]] = []


def case(
    name: str,
    service: str,
    method: str,
    build: Build,
    field: str | None = None,
    *,
    code: grpc.StatusCode = INVALID,
    reason: str = "INVALID_ARGUMENT",
) -> None:
    CASES.append((name, service, method, build, code, reason, field))


Book = booking_service_pb2.CreateBookingRequest
ListSlots = slot_service_pb2.ListSlotsRequest

# --- BookingService -----------------------------------------------------------------------------------
case("book-slot-0", "bookings", "CreateBooking", lambda w: Book(slot_id=0, patient_id="p"), "slot_id")
case("book-slot-negative", "bookings", "CreateBooking", lambda w: Book(slot_id=-5, patient_id="p"), "slot_id")
case("book-patient-empty", "bookings", "CreateBooking", lambda w: Book(slot_id=w.slot), "patient_id")
case("book-patient-blank", "bookings", "CreateBooking", lambda w: Book(slot_id=w.slot, patient_id=" \t "), "patient_id")
case("book-patient-65", "bookings", "CreateBooking", lambda w: Book(slot_id=w.slot, patient_id="x" * 65), "patient_id")
case("book-patient-nul", "bookings", "CreateBooking", lambda w: Book(slot_id=w.slot, patient_id="p\x00q"), "patient_id")
case(
    "book-patient-newline", "bookings", "CreateBooking", lambda w: Book(slot_id=w.slot, patient_id="p\nq"), "patient_id"
)
case("book-patient-del", "bookings", "CreateBooking", lambda w: Book(slot_id=w.slot, patient_id="p\x7f"), "patient_id")
case(
    "book-request-id-129",
    "bookings",
    "CreateBooking",
    lambda w: Book(slot_id=w.slot, patient_id="p", request_id="r" * 129),
    "request_id",
)
case(
    "book-request-id-blank",
    "bookings",
    "CreateBooking",
    lambda w: Book(slot_id=w.slot, patient_id="p", request_id="  "),
    "request_id",
)
case(
    "book-request-id-control",
    "bookings",
    "CreateBooking",
    lambda w: Book(slot_id=w.slot, patient_id="p", request_id="r\x01"),
    "request_id",
)
case(
    "get-booking-negative",
    "bookings",
    "GetBooking",
    lambda w: booking_service_pb2.GetBookingRequest(booking_id=-1),
    "booking_id",
)
case("get-booking-absent", "bookings", "GetBooking", lambda w: booking_service_pb2.GetBookingRequest(), "booking_id")
case(
    "confirm-negative",
    "bookings",
    "ConfirmBooking",
    lambda w: booking_service_pb2.ConfirmBookingRequest(booking_id=-1),
    "booking_id",
)
case("cancel-absent", "bookings", "CancelBooking", lambda w: booking_service_pb2.CancelBookingRequest(), "booking_id")

# --- SlotService --------------------------------------------------------------------------------------
case("get-slot-0", "slots", "GetSlot", lambda w: slot_service_pb2.GetSlotRequest(slot_id=0), "slot_id")
case("get-slot-negative", "slots", "GetSlot", lambda w: slot_service_pb2.GetSlotRequest(slot_id=-5), "slot_id")
case("list-slots-page-size", "slots", "ListSlots", lambda w: ListSlots(page_size=-1), "page_size")
case("list-slots-token", "slots", "ListSlots", lambda w: ListSlots(page_token="not-a-token!"), "page_token")
case("list-slots-token-json", "slots", "ListSlots", lambda w: ListSlots(page_token="eyJrIjpbXX0"), "page_token")
case("list-slots-doctor", "slots", "ListSlots", lambda w: ListSlots(doctor_id=-1), "doctor_id")
case("list-slots-room", "slots", "ListSlots", lambda w: ListSlots(room_id=-1), "room_id")
case("list-slots-procedure-blank", "slots", "ListSlots", lambda w: ListSlots(procedure_type="   "), "procedure_type")
case("list-slots-procedure-201", "slots", "ListSlots", lambda w: ListSlots(procedure_type="p" * 201), "procedure_type")
case(
    "list-slots-window-reversed",
    "slots",
    "ListSlots",
    lambda w: ListSlots(window_start=ts(future(48)), window_end=ts(future(24))),
    "window_end",
)
case(
    "list-slots-window-empty",
    "slots",
    "ListSlots",
    lambda w: ListSlots(window_start=ts(future(48)), window_end=ts(future(48))),
    "window_end",
)
case(
    "list-slots-nanos-negative",
    "slots",
    "ListSlots",
    lambda w: ListSlots(window_start=ts(seconds=1_900_000_000, nanos=-1)),
    "window_start",
)
case(
    "list-slots-nanos-2e9",
    "slots",
    "ListSlots",
    lambda w: ListSlots(window_end=ts(seconds=1_900_000_000, nanos=2_000_000_000)),
    "window_end",
)
case(
    "list-slots-seconds-huge",
    "slots",
    "ListSlots",
    lambda w: ListSlots(window_start=ts(seconds=10**15)),
    "window_start",
)
case(
    "list-slots-seconds-negative",
    "slots",
    "ListSlots",
    lambda w: ListSlots(window_end=ts(seconds=-(10**15))),
    "window_end",
)
case(
    "list-doctors-page-size",
    "slots",
    "ListDoctors",
    lambda w: slot_service_pb2.ListDoctorsRequest(page_size=-1),
    "page_size",
)
case(
    "list-doctors-token",
    "slots",
    "ListDoctors",
    lambda w: slot_service_pb2.ListDoctorsRequest(page_token="%%%"),
    "page_token",
)
case(
    "list-doctors-query-201",
    "slots",
    "ListDoctors",
    lambda w: slot_service_pb2.ListDoctorsRequest(query="q" * 201),
    "query",
)
case(
    "list-doctors-query-nul",
    "slots",
    "ListDoctors",
    lambda w: slot_service_pb2.ListDoctorsRequest(query="a\x00"),
    "query",
)

# --- AdminService -------------------------------------------------------------------------------------
LB = admin_service_pb2.ListBookingsRequest
case("list-bookings-page-size", "admin", "ListBookings", lambda w: LB(page_size=-1), "page_size")
case("list-bookings-token", "admin", "ListBookings", lambda w: LB(page_token="garbage"), "page_token")
case("list-bookings-status", "admin", "ListBookings", lambda w: LB(status=99), "status")  # type: ignore[arg-type]
case("list-bookings-patient-65", "admin", "ListBookings", lambda w: LB(patient_id="x" * 65), "patient_id")
case("list-bookings-patient-nul", "admin", "ListBookings", lambda w: LB(patient_id="\x00"), "patient_id")
case("list-bookings-slot", "admin", "ListBookings", lambda w: LB(slot_id=-1), "slot_id")

case(
    "slot-end-before-start",
    "admin",
    "CreateSlot",
    lambda w: slot_request(w, start_time=ts(future(48)), end_time=ts(future(47))),
    "end_time",
)
case(
    "slot-start-in-past",
    "admin",
    "CreateSlot",
    lambda w: slot_request(w, start_time=ts(future(-2)), end_time=ts(future(-1))),
    "start_time",
)
case("slot-missing-start", "admin", "CreateSlot", lambda w: slot_request(w, start_time=None), "start_time")
case("slot-missing-end", "admin", "CreateSlot", lambda w: slot_request(w, end_time=None), "end_time")
case(
    "slot-longer-than-24h",
    "admin",
    "CreateSlot",
    lambda w: slot_request(w, start_time=ts(future(48)), end_time=ts(future(48 + 24) + timedelta(minutes=1))),
    "end_time",
)
case(
    "slot-start-nanos",
    "admin",
    "CreateSlot",
    lambda w: slot_request(w, start_time=ts(seconds=1_900_000_000, nanos=-1)),
    "start_time",
)
case(
    "slot-start-seconds-huge",
    "admin",
    "CreateSlot",
    lambda w: slot_request(w, start_time=ts(seconds=10**13)),
    "start_time",
)
case("slot-procedure-empty", "admin", "CreateSlot", lambda w: slot_request(w, procedure_type=""), "procedure_type")
case("slot-procedure-blank", "admin", "CreateSlot", lambda w: slot_request(w, procedure_type="  "), "procedure_type")
case("slot-doctor-0", "admin", "CreateSlot", lambda w: slot_request(w, doctor_id=0), "doctor_id")
case("slot-room-negative", "admin", "CreateSlot", lambda w: slot_request(w, room_id=-1), "room_id")
case(
    "slot-equipment-id-0",
    "admin",
    "CreateSlot",
    lambda w: slot_request(w, required_equipment=[need(0, 1)]),
    "required_equipment[0].equipment_id",
)
case(
    "slot-equipment-quantity-0",
    "admin",
    "CreateSlot",
    lambda w: slot_request(w, required_equipment=[need(w.item, 0)]),
    "required_equipment[0].quantity",
)
case(
    "slot-equipment-beyond-inventory",
    "admin",
    "CreateSlot",
    lambda w: slot_request(w, required_equipment=[need(w.item, 4)]),
    "required_equipment[0].quantity",
)
case(
    "slot-equipment-duplicate",
    "admin",
    "CreateSlot",
    lambda w: slot_request(w, required_equipment=[need(w.item, 1), need(w.item, 1)]),
    "required_equipment[1].equipment_id",
)
case(
    "slot-unknown-room",
    "admin",
    "CreateSlot",
    lambda w: slot_request(w, room_id=987654),
    code=grpc.StatusCode.NOT_FOUND,
    reason="ROOM_NOT_FOUND",
)
case(
    "slot-unknown-doctor",
    "admin",
    "CreateSlot",
    lambda w: slot_request(w, doctor_id=987654),
    code=grpc.StatusCode.NOT_FOUND,
    reason="DOCTOR_NOT_FOUND",
)
case(
    "slot-unknown-equipment",
    "admin",
    "CreateSlot",
    lambda w: slot_request(w, required_equipment=[need(w.item, 1), need(987654, 1)]),
    code=grpc.StatusCode.NOT_FOUND,
    reason="EQUIPMENT_NOT_FOUND",
)

case("room-empty-name", "admin", "CreateRoom", lambda w: admin_service_pb2.CreateRoomRequest(), "name")
case("room-blank-name", "admin", "CreateRoom", lambda w: admin_service_pb2.CreateRoomRequest(name="  "), "name")
case("room-name-201", "admin", "CreateRoom", lambda w: admin_service_pb2.CreateRoomRequest(name="r" * 201), "name")
case("room-name-control", "admin", "CreateRoom", lambda w: admin_service_pb2.CreateRoomRequest(name="Room\x1b"), "name")
case(
    "room-duplicate",
    "admin",
    "CreateRoom",
    lambda w: admin_service_pb2.CreateRoomRequest(name="Existing Room"),
    code=grpc.StatusCode.ALREADY_EXISTS,
    reason="ALREADY_EXISTS",
)
case(
    "doctor-empty-name",
    "admin",
    "CreateDoctor",
    lambda w: admin_service_pb2.CreateDoctorRequest(specialty="Surgery"),
    "name",
)
case(
    "doctor-empty-specialty",
    "admin",
    "CreateDoctor",
    lambda w: admin_service_pb2.CreateDoctorRequest(name="Dr. X"),
    "specialty",
)
case(
    "equipment-quantity-negative",
    "admin",
    "CreateEquipment",
    lambda w: admin_service_pb2.CreateEquipmentRequest(name="Laser", quantity=-1),
    "quantity",
)
case(
    "equipment-quantity-too-many",
    "admin",
    "CreateEquipment",
    lambda w: admin_service_pb2.CreateEquipmentRequest(name="Laser", quantity=100_001),
    "quantity",
)
case(
    "equipment-empty-name",
    "admin",
    "CreateEquipment",
    lambda w: admin_service_pb2.CreateEquipmentRequest(quantity=1),
    "name",
)
case(
    "equipment-duplicate",
    "admin",
    "CreateEquipment",
    lambda w: admin_service_pb2.CreateEquipmentRequest(name="Existing Device", quantity=1),
    code=grpc.StatusCode.ALREADY_EXISTS,
    reason="ALREADY_EXISTS",
)


@pytest.mark.parametrize(
    ("service", "method", "build", "code", "reason", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_bad_request_is_refused_and_changes_nothing(
    db: asyncpg.Connection,
    world: World,
    slots: Any,
    bookings: Any,
    admin: Any,
    service: str,
    method: str,
    build: Build,
    code: grpc.StatusCode,
    reason: str,
    field: str | None,
) -> None:
    stub = {"slots": slots, "bookings": bookings, "admin": admin}[service]
    before = await snapshot(db)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(stub, method)(build(world))

    info, violations = error_details(caught.value)
    assert (caught.value.code(), info.reason if info else None) == (code, reason)
    if field is not None:
        assert [f for f, _ in violations] == [field]
    assert await snapshot(db) == before


async def test_every_violation_is_reported_at_once(db: asyncpg.Connection, world: World, bookings: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await bookings.CreateBooking(Book(slot_id=-1, patient_id="", request_id="r" * 200))
    _, violations = error_details(caught.value)
    assert [f for f, _ in violations] == ["slot_id", "patient_id", "request_id"]


# --- page tokens replayed with other filters ----------------------------------------------------------


async def test_list_slots_token_with_other_filters(db: asyncpg.Connection, world: World, slots: Any) -> None:
    for hours in (30, 31, 32):
        await insert_slot(db, start=future(hours))
    first = await slots.ListSlots(ListSlots(page_size=1, procedure_type="Appendectomy"))
    assert first.next_page_token

    for changed in (
        ListSlots(page_size=1, page_token=first.next_page_token, procedure_type="Knee Replacement"),
        ListSlots(page_size=1, page_token=first.next_page_token),
        ListSlots(page_size=1, page_token=first.next_page_token, procedure_type="Appendectomy", available_only=True),
        ListSlots(page_size=1, page_token=first.next_page_token, procedure_type="Appendectomy", room_id=world.room),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await slots.ListSlots(changed)
        _, violations = error_details(caught.value)
        assert (caught.value.code(), [f for f, _ in violations]) == (INVALID, ["page_token"])

    # the same filters with another page size are fine
    second = await slots.ListSlots(
        ListSlots(page_size=2, page_token=first.next_page_token, procedure_type="Appendectomy")
    )
    assert len(second.slots) == 2


async def test_list_doctors_token_with_other_query(db: asyncpg.Connection, slots: Any) -> None:
    for i in range(3):
        await insert_doctor(db, name=f"Dr. Same {i}")
    first = await slots.ListDoctors(slot_service_pb2.ListDoctorsRequest(page_size=1, query="same"))
    assert first.next_page_token

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await slots.ListDoctors(
            slot_service_pb2.ListDoctorsRequest(page_size=1, page_token=first.next_page_token, query="dr.")
        )
    _, violations = error_details(caught.value)
    assert (caught.value.code(), [f for f, _ in violations]) == (INVALID, ["page_token"])


async def test_list_bookings_token_with_other_filters(db: asyncpg.Connection, bookings: Any, admin: Any) -> None:
    for i in range(3):
        await bookings.CreateBooking(Book(slot_id=await insert_slot(db, start=future(30 + 3 * i)), patient_id="p"))
    first = await admin.ListBookings(LB(page_size=1, patient_id="p"))
    assert first.next_page_token

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.ListBookings(LB(page_size=1, page_token=first.next_page_token, patient_id="q"))
    _, violations = error_details(caught.value)
    assert (caught.value.code(), [f for f, _ in violations]) == (INVALID, ["page_token"])


async def test_token_of_one_list_is_refused_by_another(db: asyncpg.Connection, slots: Any, admin: Any) -> None:
    for hours in (30, 31):
        await insert_slot(db, start=future(hours))
    token = (await slots.ListSlots(ListSlots(page_size=1))).next_page_token
    assert token

    for call in (
        slots.ListDoctors(slot_service_pb2.ListDoctorsRequest(page_token=token)),
        admin.ListBookings(LB(page_token=token)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        _, violations = error_details(caught.value)
        assert (caught.value.code(), [f for f, _ in violations]) == (INVALID, ["page_token"])


# A token is base64 JSON with a filter fingerprint but no signature, so a client can forge one that
# passes decode_page_token's shape check with a key the database cannot take.
FORGED = [
    pytest.param("bookings", [2**63], id="bookings-id-beyond-bigint"),
    pytest.param("slots", [10**20, 1], id="slots-start-beyond-datetime"),
    pytest.param("slots", [0, 2**64], id="slots-id-beyond-bigint"),
    pytest.param("doctors", ["a\x00", 1], id="doctors-name-with-nul"),
]


@pytest.mark.parametrize(("listing", "key"), FORGED)
async def test_forged_page_token_is_invalid_argument(
    db: asyncpg.Connection, slots: Any, admin: Any, listing: str, key: list[Any]
) -> None:
    from orflow_server.domain.filters import BookingFilters, DoctorFilters, SlotFilters
    from orflow_server.domain.paging import encode_page_token

    if listing == "bookings":
        call = admin.ListBookings(LB(page_token=encode_page_token(key, BookingFilters())))
    elif listing == "slots":
        call = slots.ListSlots(ListSlots(page_token=encode_page_token(key, SlotFilters())))
    else:
        call = slots.ListDoctors(
            slot_service_pb2.ListDoctorsRequest(page_token=encode_page_token(key, DoctorFilters()))
        )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    _, violations = error_details(caught.value)
    assert (caught.value.code(), [f for f, _ in violations]) == (INVALID, ["page_token"])


# --- page size coercion (AIP-158) -----------------------------------------------------------------------


async def test_huge_page_size_is_coerced_to_1000(db: asyncpg.Connection, slots: Any, admin: Any) -> None:
    room, doctor = await insert_room(db), await insert_doctor(db)
    await db.execute(
        """
        INSERT INTO slots (doctor_id, room_id, procedure_type, start_time, end_time)
        SELECT $1, $2, 'Bulk', $3::timestamptz + g * interval '1 hour',
               $3::timestamptz + g * interval '1 hour' + interval '30 minutes'
        FROM generate_series(1, 1001) AS g
        """,
        doctor,
        room,
        future(24),
    )

    first = await slots.ListSlots(ListSlots(page_size=10**9))
    assert len(first.slots) == 1000
    assert first.next_page_token
    rest = await slots.ListSlots(ListSlots(page_size=10**9, page_token=first.next_page_token))
    assert len(rest.slots) == 1
    assert rest.next_page_token == ""

    assert list((await admin.ListBookings(LB(page_size=10**9))).bookings) == []
    doctors = await slots.ListDoctors(slot_service_pb2.ListDoctorsRequest(page_size=2**31 - 1))
    assert [d.id for d in doctors.doctors] == [doctor]


async def test_page_size_zero_means_50(db: asyncpg.Connection, slots: Any) -> None:
    for i in range(51):
        await insert_slot(db, start=future(24 + i))
    page = await slots.ListSlots(ListSlots())
    assert len(page.slots) == 50
    assert page.next_page_token


# --- malformed protobuf on the wire ---------------------------------------------------------------------

# Request bytes that do not parse: the ErrorInterceptor parses them itself (grpcio's own deserializer
# would answer UNKNOWN with the DecodeError text), so they get INVALID_ARGUMENT, write nothing, and the
# server keeps serving.
MALFORMED_CODE = grpc.StatusCode.INVALID_ARGUMENT
MALFORMED = [
    pytest.param(b"\xff\xff\xff", id="truncated-varint"),
    pytest.param(b"\x08\x01\x12\x02\xff\xfe", id="invalid-utf8-string"),
    pytest.param(b"\x12\x10abc", id="length-past-end"),
]


@pytest.mark.parametrize("payload", MALFORMED)
async def test_malformed_bytes_get_an_error_and_the_server_keeps_serving(
    db: asyncpg.Connection, world: World, channel: grpc.aio.Channel, bookings: Any, payload: bytes
) -> None:
    before = await snapshot(db)
    raw = channel.unary_unary(
        "/orflow.v1.BookingService/CreateBooking", request_serializer=None, response_deserializer=None
    )

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await raw(payload, timeout=5)

    assert caught.value.code() == MALFORMED_CODE
    assert await snapshot(db) == before
    served = await bookings.CreateBooking(Book(slot_id=world.slot, patient_id="after-garbage"), timeout=5)
    assert served.booking.slot_id == world.slot


async def test_malformed_bytes_are_answered_without_internals(channel: grpc.aio.Channel) -> None:
    raw = channel.unary_unary(
        "/orflow.v1.BookingService/CreateBooking", request_serializer=None, response_deserializer=None
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await raw(b"\xff\xff\xff", timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "DecodeError" not in (caught.value.details() or "")
    _, violations = error_details(caught.value)
    assert [field for field, _ in violations] == ["request"]


async def test_unknown_fields_are_ignored(db: asyncpg.Connection, world: World, channel: grpc.aio.Channel) -> None:
    raw = channel.unary_unary(
        "/orflow.v1.BookingService/CreateBooking", request_serializer=None, response_deserializer=None
    )
    known = Book(slot_id=world.slot, patient_id="p-unknown").SerializeToString()
    reply = await raw(known + b"\xf8\x3e\x07", timeout=5)  # field 999, varint 7
    booking = booking_service_pb2.CreateBookingResponse.FromString(reply).booking
    assert booking.patient_id == "p-unknown"
