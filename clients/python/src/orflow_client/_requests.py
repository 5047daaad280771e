"""Request messages from keyword arguments, shared by both clients (one place for the field names)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta

from google.protobuf import duration_pb2, timestamp_pb2
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
    )


def list_bookings(
    *, page_size: int, page_token: str, status: booking_pb2.BookingStatus.ValueType, patient_id: str, slot_id: int
) -> admin_service_pb2.ListBookingsRequest:
    return admin_service_pb2.ListBookingsRequest(
        page_size=page_size, page_token=page_token, status=status, patient_id=patient_id, slot_id=slot_id
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
