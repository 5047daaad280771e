"""Domain objects <-> protobuf messages. No server, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from orflow.v1 import booking_pb2
from orflow_server.domain.models import (
    BookingStatus,
    Doctor,
    EquipmentNeed,
    FailureReason,
    Room,
    Slot,
)
from orflow_server.rpc.convert import (
    FAILURE_REASON_TO_PROTO,
    STATUS_FROM_PROTO,
    STATUS_TO_PROTO,
    booking_to_proto,
    slot_to_proto,
    timestamp,
)

from tests.factories import make_booking

NONZERO_STATUSES = [v for v in booking_pb2.BookingStatus.values() if v != 0]
NONZERO_REASONS = [v for v in booking_pb2.FailureReason.values() if v != 0]


@pytest.mark.parametrize("status", list(BookingStatus), ids=lambda s: s.name)
def test_every_booking_status_has_a_proto_value(status: BookingStatus) -> None:
    proto = STATUS_TO_PROTO[status]
    assert proto != booking_pb2.BOOKING_STATUS_UNSPECIFIED
    assert booking_pb2.BookingStatus.Name(proto) == f"BOOKING_STATUS_{status.name}"


@pytest.mark.parametrize("proto", NONZERO_STATUSES, ids=booking_pb2.BookingStatus.Name)
def test_every_proto_status_is_produced(proto: int) -> None:
    assert proto in STATUS_TO_PROTO.values()
    assert STATUS_TO_PROTO[STATUS_FROM_PROTO[proto]] == proto


def test_status_mapping_is_one_to_one() -> None:
    assert len(set(STATUS_TO_PROTO.values())) == len(STATUS_TO_PROTO) == len(BookingStatus)
    assert booking_pb2.BOOKING_STATUS_UNSPECIFIED not in STATUS_FROM_PROTO


@pytest.mark.parametrize("reason", list(FailureReason), ids=lambda r: r.name)
def test_every_failure_reason_has_a_proto_value(reason: FailureReason) -> None:
    proto = FAILURE_REASON_TO_PROTO[reason]
    assert proto != booking_pb2.FAILURE_REASON_UNSPECIFIED
    assert booking_pb2.FailureReason.Name(proto) == f"FAILURE_REASON_{reason.name}"


@pytest.mark.parametrize("proto", NONZERO_REASONS, ids=booking_pb2.FailureReason.Name)
def test_every_proto_failure_reason_is_produced(proto: int) -> None:
    assert proto in FAILURE_REASON_TO_PROTO.values()


T0 = datetime(2030, 6, 15, 8, 30, 12, 345_678, tzinfo=UTC)


@pytest.mark.parametrize(
    "moment",
    [
        T0,
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2030, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(2030, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ],
)
def test_timestamp_keeps_microseconds(moment: datetime) -> None:
    stamp = timestamp(moment)
    assert stamp.nanos == moment.microsecond * 1000
    assert stamp.ToDatetime(tzinfo=UTC) == moment


def test_timestamp_of_other_zone_is_the_same_instant() -> None:
    moment = T0.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert timestamp(moment).ToDatetime(tzinfo=UTC) == T0


@pytest.mark.parametrize("status", list(BookingStatus), ids=lambda s: s.name)
def test_booking_to_proto_round_trip(status: BookingStatus) -> None:
    reason = FailureReason.HOLD_EXPIRED if status is BookingStatus.FAILED else None
    booking = make_booking(
        id=987_654_321_012,
        slot_id=55,
        patient_id="patient-ü-42",
        status=status,
        failure_reason=reason,
        create_time=T0,
        expire_time=T0 + timedelta(seconds=120, microseconds=1),
        update_time=T0 + timedelta(microseconds=999_999),
        request_id="7b0c4c6e-1a5e-4a8f-9f5d-2a7b9c1d3e4f",
    )
    proto = booking_to_proto(booking)
    assert proto.id == booking.id
    assert proto.slot_id == booking.slot_id
    assert proto.patient_id == booking.patient_id
    assert STATUS_FROM_PROTO[proto.status] is status
    expected_reason = booking_pb2.FAILURE_REASON_HOLD_EXPIRED if reason else booking_pb2.FAILURE_REASON_UNSPECIFIED
    assert proto.failure_reason == expected_reason
    assert proto.create_time.ToDatetime(tzinfo=UTC) == booking.create_time
    assert proto.expire_time.ToDatetime(tzinfo=UTC) == booking.expire_time
    assert proto.update_time.ToDatetime(tzinfo=UTC) == booking.update_time
    assert proto.request_id == booking.request_id
    # And over the wire.
    assert booking_pb2.Booking.FromString(proto.SerializeToString()) == proto


def test_slot_to_proto_round_trip() -> None:
    slot = Slot(
        id=12,
        doctor=Doctor(id=3, name="Dr. Meera Iyer", specialty="Cardiothoracic Surgery"),
        procedure_type="Cardiac Bypass",
        room=Room(id=4, name="Apollo Room 101"),
        start_time=T0,
        end_time=T0 + timedelta(hours=2, microseconds=7),
        required_equipment=(EquipmentNeed(1, 2, "Ventilator"), EquipmentNeed(5, 1, "ECMO Machine")),
        is_available=False,
        create_time=T0 - timedelta(days=1, microseconds=3),
    )
    proto = slot_to_proto(slot)
    assert proto.id == 12
    assert (proto.doctor.id, proto.doctor.name, proto.doctor.specialty) == (
        3,
        "Dr. Meera Iyer",
        "Cardiothoracic Surgery",
    )
    assert proto.procedure_type == "Cardiac Bypass"
    assert (proto.room.id, proto.room.name) == (4, "Apollo Room 101")
    assert proto.start_time.ToDatetime(tzinfo=UTC) == slot.start_time
    assert proto.end_time.ToDatetime(tzinfo=UTC) == slot.end_time
    assert proto.create_time.ToDatetime(tzinfo=UTC) == slot.create_time
    assert [(e.equipment_id, e.quantity, e.equipment_name) for e in proto.required_equipment] == [
        (1, 2, "Ventilator"),
        (5, 1, "ECMO Machine"),
    ]
    assert proto.available is False


def test_available_slot_without_equipment() -> None:
    slot = Slot(
        id=1,
        doctor=Doctor(1, "Dr. A", "General Surgery"),
        procedure_type="Appendectomy",
        room=Room(1, "R"),
        start_time=T0,
        end_time=T0 + timedelta(hours=1),
        required_equipment=(),
        is_available=True,
        create_time=T0,
    )
    proto = slot_to_proto(slot)
    assert proto.available is True
    assert list(proto.required_equipment) == []
