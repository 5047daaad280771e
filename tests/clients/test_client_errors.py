"""Every failure the real server gives arrives as its own typed exception, with reason and fields."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest
from orflow.v1 import error_reason_pb2
from orflow_client import (
    BookingConflict,
    BookingNotActive,
    BookingNotPending,
    EquipmentUnavailable,
    HoldExpired,
    InvalidArgument,
    NotFound,
    OrFlowClient,
    OrFlowError,
    PatientBusy,
    RequestIdReused,
    RoomBusy,
    SlotStarted,
    SlotTaken,
    SurgeonBusy,
)
from orflow_client.errors import BY_REASON, parse_reason
from orflow_server.domain import errors as server_errors
from orflow_server.domain.reasons import ErrorReason

from ..factories import future, insert_doctor, insert_equipment, insert_room, insert_slot


async def test_slot_taken(client: OrFlowClient, db: asyncpg.Connection) -> None:
    slot_id = await insert_slot(db)
    await client.create_booking(slot_id=slot_id, patient_id="p-1")
    with pytest.raises(SlotTaken) as caught:
        await client.create_booking(slot_id=slot_id, patient_id="p-2")
    assert isinstance(caught.value, BookingConflict) and caught.value.reason == "SLOT_TAKEN"
    assert caught.value.error_reason == error_reason_pb2.ERROR_REASON_SLOT_TAKEN
    assert caught.value.code.name == "ABORTED"


async def test_room_busy(client: OrFlowClient, db: asyncpg.Connection) -> None:
    room = await insert_room(db)
    first, second = await insert_slot(db, room_id=room), await insert_slot(db, room_id=room)
    await client.create_booking(slot_id=first, patient_id="p-1")
    with pytest.raises(RoomBusy):
        await client.create_booking(slot_id=second, patient_id="p-2")


async def test_surgeon_busy(client: OrFlowClient, db: asyncpg.Connection) -> None:
    doctor = await insert_doctor(db)
    first, second = await insert_slot(db, doctor_id=doctor), await insert_slot(db, doctor_id=doctor)
    await client.create_booking(slot_id=first, patient_id="p-1")
    with pytest.raises(SurgeonBusy):
        await client.create_booking(slot_id=second, patient_id="p-2")


async def test_patient_busy(client: OrFlowClient, db: asyncpg.Connection) -> None:
    first, second = await insert_slot(db), await insert_slot(db)
    await client.create_booking(slot_id=first, patient_id="p-1")
    with pytest.raises(PatientBusy):
        await client.create_booking(slot_id=second, patient_id="p-1")


async def test_equipment_unavailable(client: OrFlowClient, db: asyncpg.Connection) -> None:
    ventilator = await insert_equipment(db, name="Ventilator", quantity=1)
    first = await insert_slot(db, equipment=[(ventilator, 1)])
    second = await insert_slot(db, equipment=[(ventilator, 1)])
    await client.create_booking(slot_id=first, patient_id="p-1")
    with pytest.raises(EquipmentUnavailable) as caught:
        await client.create_booking(slot_id=second, patient_id="p-2")
    assert caught.value.metadata  # which equipment, as the server said


async def test_hold_expired(client: OrFlowClient, db: asyncpg.Connection) -> None:
    hold = await client.create_booking(slot_id=await insert_slot(db), patient_id="p-1")
    await db.execute("UPDATE bookings SET expire_time = now() - interval '1 second' WHERE id = $1", hold.id)
    with pytest.raises(HoldExpired) as caught:
        await client.confirm_booking(hold.id)
    assert caught.value.code.name == "FAILED_PRECONDITION"


async def test_booking_not_pending_and_not_active(client: OrFlowClient, db: asyncpg.Connection) -> None:
    hold = await client.create_booking(slot_id=await insert_slot(db), patient_id="p-1")
    await client.cancel_booking(hold.id)
    with pytest.raises(BookingNotPending):
        await client.confirm_booking(hold.id)
    with pytest.raises(BookingNotActive):
        await client.cancel_booking(hold.id)


async def test_slot_started(client: OrFlowClient, db: asyncpg.Connection) -> None:
    slot_id = await insert_slot(db, start=future(-1))
    with pytest.raises(SlotStarted):
        await client.create_booking(slot_id=slot_id, patient_id="p-1")


async def test_not_found_carries_the_resource(client: OrFlowClient, db: asyncpg.Connection) -> None:
    with pytest.raises(NotFound) as caught:
        await client.get_booking(987_654)
    assert caught.value.reason == "BOOKING_NOT_FOUND"
    assert caught.value.metadata == {"resource": "booking", "id": "987654"}


async def test_invalid_argument_lists_the_fields(client: OrFlowClient, db: asyncpg.Connection) -> None:
    start = future()
    with pytest.raises(InvalidArgument) as caught:
        await client.create_slot(
            doctor_id=0, procedure_type="", room_id=0, start_time=start, end_time=start - timedelta(hours=1)
        )
    fields = {v.field for v in caught.value.field_violations}
    assert {"doctor_id", "procedure_type", "room_id"} <= fields
    assert all(v.description for v in caught.value.field_violations)


async def test_request_id_reused_for_another_slot(client: OrFlowClient, db: asyncpg.Connection) -> None:
    first, second = await insert_slot(db, start=future(24)), await insert_slot(db, start=future(48))
    await client.create_booking(slot_id=first, patient_id="p-1", request_id="same-key")
    with pytest.raises(RequestIdReused) as caught:
        await client.create_booking(slot_id=second, patient_id="p-1", request_id="same-key")
    assert isinstance(caught.value, InvalidArgument)


async def test_every_typed_error_is_an_orflow_error(client: OrFlowClient, db: asyncpg.Connection) -> None:
    with pytest.raises(OrFlowError) as caught:
        await client.get_slot(-1)
    assert type(caught.value) is InvalidArgument
    assert [v.field for v in caught.value.field_violations] == ["slot_id"]


@pytest.mark.parametrize("reason", list(ErrorReason), ids=str)
def test_the_client_reads_every_reason_the_server_can_send(reason: ErrorReason) -> None:
    """The client's prefix rule and the server's generated enum name the same values."""
    value = parse_reason(reason.value)
    assert error_reason_pb2.ErrorReason.Name(value) == f"ERROR_REASON_{reason.value}"


def test_a_reason_newer_than_the_client_reads_unspecified() -> None:
    assert parse_reason("SOMETHING_NEW") == parse_reason("") == error_reason_pb2.ERROR_REASON_UNSPECIFIED


@pytest.mark.parametrize("value", list(BY_REASON), ids=error_reason_pb2.ErrorReason.Name)
def test_each_typed_reason_is_raised_by_a_server_error_of_the_same_kind(value: int) -> None:
    """BY_REASON is keyed by the generated enum, and each key is the reason of a server error class."""
    wire = error_reason_pb2.ErrorReason.Name(value).removeprefix("ERROR_REASON_")
    classes = [c for c in vars(server_errors).values() if isinstance(c, type) and getattr(c, "reason", None) == wire]
    assert len(classes) == 1, wire
    assert BY_REASON[value].__name__ == classes[0].__name__.removesuffix("Error")
