"""Request messages from keyword arguments, shared by both clients (one place for the field names)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta

from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from orflow.v1 import admin_service_pb2, booking_pb2, resources_pb2, slot_service_pb2


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    """A Timestamp from an aware datetime (a naive one is ambiguous for a hospital across time zones)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware (e.g. datetime.now(UTC))")
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def duration(value: timedelta | None) -> duration_pb2.Duration | None:
    if value is None:
        return None
    span = duration_pb2.Duration()
    span.FromTimedelta(value)
    return span


def local_date(value: date | None) -> resources_pb2.LocalDate | None:
    """A LocalDate (a calendar day the server reads in a site's time zone) from a `date`."""
    if value is None:
        return None
    return resources_pb2.LocalDate(year=value.year, month=value.month, day=value.day)


def list_slots(
    *,
    page_size: int,
    page_token: str,
    procedure_type: str,
    doctor_id: int,
    room_id: int,
    window_start: datetime | None,
    window_end: datetime | None,
    available_only: bool,
    site_id: int = 0,
    day: date | None = None,
    show_retired: bool = False,
) -> slot_service_pb2.ListSlotsRequest:
    return slot_service_pb2.ListSlotsRequest(
        page_size=page_size,
        page_token=page_token,
        procedure_type=procedure_type,
        doctor_id=doctor_id,
        room_id=room_id,
        window_start=timestamp(window_start),
        window_end=timestamp(window_end),
        available_only=available_only,
        site_id=site_id,
        day=local_date(day),
        show_retired=show_retired,
    )


def list_bookings(
    *,
    page_size: int,
    page_token: str,
    status: booking_pb2.BookingStatus.ValueType,
    patient_id: str,
    slot_id: int,
    slot_ids: Iterable[int] = (),
) -> admin_service_pb2.ListBookingsRequest:
    return admin_service_pb2.ListBookingsRequest(
        page_size=page_size,
        page_token=page_token,
        status=status,
        patient_id=patient_id,
        slot_id=slot_id,
        slot_ids=list(slot_ids),
    )


def create_slot(
    *,
    doctor_id: int,
    procedure_type: str,
    room_id: int,
    start_time: datetime,
    end_time: datetime,
    required_equipment: Mapping[int, int] | Iterable[resources_pb2.EquipmentRequirement],
) -> admin_service_pb2.CreateSlotRequest:
    """`required_equipment` is {equipment_id: quantity} or EquipmentRequirement messages."""
    needs = (
        [resources_pb2.EquipmentRequirement(equipment_id=e, quantity=q) for e, q in required_equipment.items()]
        if isinstance(required_equipment, Mapping)
        else list(required_equipment)
    )
    return admin_service_pb2.CreateSlotRequest(
        doctor_id=doctor_id,
        procedure_type=procedure_type,
        room_id=room_id,
        start_time=timestamp(start_time),
        end_time=timestamp(end_time),
        required_equipment=needs,
    )


def _mask(fields: Mapping[str, object]) -> field_mask_pb2.FieldMask:
    """The update mask naming the fields a caller gave (None means: leave it as it is)."""
    return field_mask_pb2.FieldMask(paths=[path for path, value in fields.items() if value is not None])


def update_room(
    room_id: int, *, etag: str, name: str | None, site_id: int | None, turnover: timedelta | None
) -> admin_service_pb2.UpdateRoomRequest:
    room = resources_pb2.Room(id=room_id, etag=etag, name=name or "", site_id=site_id or 0, turnover=duration(turnover))
    return admin_service_pb2.UpdateRoomRequest(
        room=room, update_mask=_mask({"name": name, "site_id": site_id, "turnover": turnover})
    )


def update_doctor(
    doctor_id: int, *, etag: str, name: str | None, specialty: str | None
) -> admin_service_pb2.UpdateDoctorRequest:
    doctor = resources_pb2.Doctor(id=doctor_id, etag=etag, name=name or "", specialty=specialty or "")
    return admin_service_pb2.UpdateDoctorRequest(
        doctor=doctor, update_mask=_mask({"name": name, "specialty": specialty})
    )


def update_equipment(
    equipment_id: int, *, etag: str, name: str | None, quantity: int | None
) -> admin_service_pb2.UpdateEquipmentRequest:
    item = resources_pb2.Equipment(id=equipment_id, etag=etag, name=name or "", quantity=quantity or 0)
    return admin_service_pb2.UpdateEquipmentRequest(
        equipment=item, update_mask=_mask({"name": name, "quantity": quantity})
    )


def update_slot(
    slot_id: int,
    *,
    etag: str,
    procedure_type: str | None,
    start_time: datetime | None,
    end_time: datetime | None,
    room_id: int | None,
    doctor_id: int | None,
) -> admin_service_pb2.UpdateSlotRequest:
    slot = resources_pb2.Slot(
        id=slot_id,
        etag=etag,
        procedure_type=procedure_type or "",
        start_time=timestamp(start_time),
        end_time=timestamp(end_time),
        room=resources_pb2.Room(id=room_id or 0),
        doctor=resources_pb2.Doctor(id=doctor_id or 0),
    )
    fields = {
        "procedure_type": procedure_type,
        "start_time": start_time,
        "end_time": end_time,
        "room.id": room_id,
        "doctor.id": doctor_id,
    }
    return admin_service_pb2.UpdateSlotRequest(slot=slot, update_mask=_mask(fields))
