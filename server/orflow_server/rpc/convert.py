"""All conversion between protobuf messages and domain objects."""

from __future__ import annotations

from datetime import datetime, timedelta

from google.protobuf import duration_pb2, timestamp_pb2
from orflow.v1 import audit_pb2, booking_pb2, resources_pb2, slot_service_pb2

from ..domain.changes import SlotChangeKind
from ..domain.models import (
    AuditEvent,
    Booking,
    BookingStatus,
    CancellationReason,
    Doctor,
    Equipment,
    FailureReason,
    Room,
    Site,
    Slot,
    etag_for,
)

STATUS_TO_PROTO: dict[BookingStatus, booking_pb2.BookingStatus.ValueType] = {
    BookingStatus.PENDING: booking_pb2.BOOKING_STATUS_PENDING,
    BookingStatus.CONFIRMED: booking_pb2.BOOKING_STATUS_CONFIRMED,
    BookingStatus.FAILED: booking_pb2.BOOKING_STATUS_FAILED,
    BookingStatus.CANCELLED: booking_pb2.BOOKING_STATUS_CANCELLED,
    BookingStatus.CHECKED_IN: booking_pb2.BOOKING_STATUS_CHECKED_IN,
    BookingStatus.IN_PROGRESS: booking_pb2.BOOKING_STATUS_IN_PROGRESS,
    BookingStatus.COMPLETED: booking_pb2.BOOKING_STATUS_COMPLETED,
    BookingStatus.NO_SHOW: booking_pb2.BOOKING_STATUS_NO_SHOW,
}
STATUS_FROM_PROTO = {proto: status for status, proto in STATUS_TO_PROTO.items()}

CANCELLATION_REASON_TO_PROTO: dict[CancellationReason, booking_pb2.CancellationReason.ValueType] = {
    CancellationReason.PATIENT_REQUEST: booking_pb2.CANCELLATION_REASON_PATIENT_REQUEST,
    CancellationReason.SURGEON_UNAVAILABLE: booking_pb2.CANCELLATION_REASON_SURGEON_UNAVAILABLE,
    CancellationReason.EQUIPMENT_UNAVAILABLE: booking_pb2.CANCELLATION_REASON_EQUIPMENT_UNAVAILABLE,
    CancellationReason.MEDICAL: booking_pb2.CANCELLATION_REASON_MEDICAL,
    CancellationReason.SLOT_CANCELLED: booking_pb2.CANCELLATION_REASON_SLOT_CANCELLED,
    CancellationReason.OTHER: booking_pb2.CANCELLATION_REASON_OTHER,
}
CANCELLATION_REASON_FROM_PROTO = {proto: reason for reason, proto in CANCELLATION_REASON_TO_PROTO.items()}

FAILURE_REASON_TO_PROTO: dict[FailureReason, booking_pb2.FailureReason.ValueType] = {
    FailureReason.HOLD_EXPIRED: booking_pb2.FAILURE_REASON_HOLD_EXPIRED,
}

CHANGE_KIND_TO_PROTO: dict[SlotChangeKind, slot_service_pb2.SlotChangeKind.ValueType] = {
    SlotChangeKind.SNAPSHOT: slot_service_pb2.SLOT_CHANGE_KIND_SNAPSHOT,
    SlotChangeKind.SNAPSHOT_COMPLETE: slot_service_pb2.SLOT_CHANGE_KIND_SNAPSHOT_COMPLETE,
    SlotChangeKind.CREATED: slot_service_pb2.SLOT_CHANGE_KIND_CREATED,
    SlotChangeKind.BOOKED: slot_service_pb2.SLOT_CHANGE_KIND_BOOKED,
    SlotChangeKind.CONFIRMED: slot_service_pb2.SLOT_CHANGE_KIND_CONFIRMED,
    SlotChangeKind.RELEASED: slot_service_pb2.SLOT_CHANGE_KIND_RELEASED,
    SlotChangeKind.AVAILABILITY_CHANGED: slot_service_pb2.SLOT_CHANGE_KIND_AVAILABILITY_CHANGED,
    SlotChangeKind.CASE_PROGRESSED: slot_service_pb2.SLOT_CHANGE_KIND_CASE_PROGRESSED,
    SlotChangeKind.DELAYED: slot_service_pb2.SLOT_CHANGE_KIND_DELAYED,
    SlotChangeKind.CANCELLED: slot_service_pb2.SLOT_CHANGE_KIND_CANCELLED,
}


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def site_to_proto(site: Site) -> resources_pb2.Site:
    return resources_pb2.Site(id=site.id, name=site.name, display_name=site.display_name, time_zone=site.time_zone)


def _optional_site(site: Site | None) -> resources_pb2.Site | None:
    return None if site is None else site_to_proto(site)


def room_to_proto(room: Room) -> resources_pb2.Room:
    turnover = None
    if room.turnover is not None:
        turnover = duration_pb2.Duration()
        turnover.FromTimedelta(room.turnover)
    return resources_pb2.Room(
        id=room.id,
        name=room.name,
        site_id=room.site_id,
        turnover=turnover,
        etag=etag_for(room.revision),
        retire_time=_optional_timestamp(room.retire_time),
    )


def doctor_to_proto(doctor: Doctor) -> resources_pb2.Doctor:
    return resources_pb2.Doctor(
        id=doctor.id,
        name=doctor.name,
        specialty=doctor.specialty,
        etag=etag_for(doctor.revision),
        retire_time=_optional_timestamp(doctor.retire_time),
    )


def equipment_to_proto(equipment: Equipment) -> resources_pb2.Equipment:
    return resources_pb2.Equipment(
        id=equipment.id,
        name=equipment.name,
        quantity=equipment.quantity,
        etag=etag_for(equipment.revision),
        retire_time=_optional_timestamp(equipment.retire_time),
    )


def slot_to_proto(slot: Slot) -> resources_pb2.Slot:
    return resources_pb2.Slot(
        id=slot.id,
        doctor=doctor_to_proto(slot.doctor),
        procedure_type=slot.procedure_type,
        room=room_to_proto(slot.room),
        start_time=timestamp(slot.start_time),
        end_time=timestamp(slot.end_time),
        required_equipment=[
            resources_pb2.EquipmentRequirement(
                equipment_id=need.equipment_id, equipment_name=need.equipment_name, quantity=need.quantity
            )
            for need in slot.required_equipment
        ],
        available=slot.is_available,
        create_time=timestamp(slot.create_time),
        cancel_time=_optional_timestamp(slot.cancel_time),
        site=_optional_site(slot.site),
        etag=etag_for(slot.revision),
        retire_time=_optional_timestamp(slot.retire_time),
    )


def booking_to_proto(booking: Booking) -> booking_pb2.Booking:
    return booking_pb2.Booking(
        id=booking.id,
        slot_id=booking.slot_id,
        patient_id=booking.patient_id,
        status=STATUS_TO_PROTO[booking.status],
        failure_reason=(
            FAILURE_REASON_TO_PROTO[booking.failure_reason]
            if booking.failure_reason
            else booking_pb2.FAILURE_REASON_UNSPECIFIED
        ),
        create_time=timestamp(booking.create_time),
        expire_time=timestamp(booking.expire_time),
        update_time=timestamp(booking.update_time),
        request_id=booking.request_id,
        cancellation_reason=(
            CANCELLATION_REASON_TO_PROTO[booking.cancellation_reason]
            if booking.cancellation_reason
            else booking_pb2.CANCELLATION_REASON_UNSPECIFIED
        ),
        cancellation_note=booking.cancellation_note,
        cancelled_by=booking.cancelled_by,
        actual_start_time=_optional_timestamp(booking.actual_start_time),
        actual_end_time=_optional_timestamp(booking.actual_end_time),
        overrun=_optional_duration(booking.overrun),
        site=_optional_site(booking.site),
    )


def _optional_timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    return None if moment is None else timestamp(moment)


def _optional_duration(span: timedelta) -> duration_pb2.Duration | None:
    if span <= timedelta(0):
        return None
    duration = duration_pb2.Duration()
    duration.FromTimedelta(span)
    return duration


def audit_event_to_proto(event: AuditEvent) -> audit_pb2.AuditEvent:
    proto = audit_pb2.AuditEvent(
        id=event.id,
        event_time=timestamp(event.event_time),
        actor=event.actor,
        actor_role=event.actor_role,
        action=event.action,
        resource_type=event.resource_type,
        resource_id=event.resource_id,
    )
    if event.before is not None:
        proto.before.update(event.before)
    if event.after is not None:
        proto.after.update(event.after)
    return proto
