"""Mappers from the gRPC API's messages to FHIR R4 resources (plain JSON dicts), and back for ids and statuses.

All naming decisions of the FHIR face live here: resource ids, code systems,
the Appointment status table (the one place the OR-day states will be added)
and how a resource's version is derived.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeAlias

from google.protobuf.timestamp_pb2 import Timestamp
from orflow.v1 import booking_pb2, resources_pb2

PROCEDURE_SYSTEM: Final = "urn:orflow:procedure"
REQUEST_ID_SYSTEM: Final = "urn:orflow:request-id"
PATIENT_SYSTEM: Final = "urn:orflow:patient-id"
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_SCHEDULE_ID = re.compile(r"^room-([1-9][0-9]{0,17})-surgeon-([1-9][0-9]{0,17})$")

Resource = dict[str, Any]
Status: TypeAlias = booking_pb2.BookingStatus.ValueType

# Booking status → Appointment.status. The mapping point for the OR-day states: when BookingStatus gains
# ARRIVED / FULFILLED / NO_SHOW, they map to "arrived" / "fulfilled" / "noshow" here and nowhere else
# (searching by status, PATCH targets and the CapabilityStatement all derive from this table).
APPOINTMENT_STATUS: Final[Mapping[Status, str]] = {
    booking_pb2.BOOKING_STATUS_PENDING: "pending",
    booking_pb2.BOOKING_STATUS_CONFIRMED: "booked",
    booking_pb2.BOOKING_STATUS_CANCELLED: "cancelled",
    booking_pb2.BOOKING_STATUS_FAILED: "cancelled",  # a hold not confirmed in time; cancelationReason says so
}
_CANCELATION_TEXT: Final[Mapping[Status, str]] = {
    booking_pb2.BOOKING_STATUS_CANCELLED: "cancelled by the patient or the hospital",
    booking_pb2.BOOKING_STATUS_FAILED: "hold expired: not confirmed before its expire_time",
}


def booking_statuses(appointment_status: str) -> list[Status]:
    """The booking statuses one Appointment.status stands for (empty: none of ours)."""
    return [ours for ours, theirs in APPOINTMENT_STATUS.items() if theirs == appointment_status]


@dataclass(frozen=True)
class Organization:
    """The hospital every room belongs to. When sites exist, each site maps to Organization/site-<id>."""

    id: str = "hospital"
    name: str = "OR Flow Hospital"

    def reference(self) -> dict[str, str]:
        return {"reference": f"Organization/{self.id}", "display": self.name}

    def resource(self) -> Resource:
        return {"resourceType": "Organization", "id": self.id, "active": True, "name": self.name}


def instant(ts: Timestamp) -> str:
    return ts.ToJsonString()


def schedule_id(room_id: int, doctor_id: int) -> str:
    """A Schedule is one surgeon's calendar in one room: its slots are exactly that pair's."""
    return f"room-{room_id}-surgeon-{doctor_id}"


def parse_schedule_id(text: str) -> tuple[int, int] | None:
    match = _SCHEDULE_ID.match(text)
    return (int(match[1]), int(match[2])) if match else None


def service_type(procedure: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": PROCEDURE_SYSTEM, "code": procedure}], "text": procedure}]


def location(room: resources_pb2.Room, organization: Organization) -> Resource:
    return {
        "resourceType": "Location",
        "id": str(room.id),
        "status": "active",
        "name": room.name,
        "mode": "instance",
        "type": [{"text": "operating room"}],
        "managingOrganization": organization.reference(),
    }


def practitioner(doctor: resources_pb2.Doctor) -> Resource:
    return {"resourceType": "Practitioner", "id": str(doctor.id), "active": True, "name": [{"text": doctor.name}]}


def practitioner_role(doctor: resources_pb2.Doctor, organization: Organization) -> Resource:
    return {
        "resourceType": "PractitionerRole",
        "id": str(doctor.id),
        "active": True,
        "practitioner": {"reference": f"Practitioner/{doctor.id}", "display": doctor.name},
        "organization": organization.reference(),
        "code": [{"text": "surgeon"}],
        "specialty": [{"text": doctor.specialty}],
    }


def device(equipment: resources_pb2.Equipment, organization: Organization) -> Resource:
    """One Device per equipment TYPE (the pool), with its unit count as a property."""
    return {
        "resourceType": "Device",
        "id": str(equipment.id),
        "status": "active",
        "deviceName": [{"name": equipment.name, "type": "user-friendly-name"}],
        "type": {"text": equipment.name},
        "owner": organization.reference(),
        "property": [{"type": {"text": "units in inventory"}, "valueQuantity": [{"value": equipment.quantity}]}],
    }


def schedule(slot: resources_pb2.Slot) -> Resource:
    return {
        "resourceType": "Schedule",
        "id": schedule_id(slot.room.id, slot.doctor.id),
        "active": True,
        "actor": [
            {"reference": f"Location/{slot.room.id}", "display": slot.room.name},
            {"reference": f"Practitioner/{slot.doctor.id}", "display": slot.doctor.name},
        ],
        "comment": f"{slot.doctor.name} in {slot.room.name}",
    }


def slot_status(slot: resources_pb2.Slot, now: datetime) -> str:
    """free when bookable; busy when held or its room/surgeon is taken; busy-unavailable once started."""
    if slot.available:
        return "free"
    return "busy-unavailable" if slot.start_time.seconds <= now.timestamp() else "busy"


def slot(slot: resources_pb2.Slot, now: datetime) -> Resource:
    needs = ", ".join(f"{e.quantity} x {e.equipment_name}" for e in slot.required_equipment)
    resource: Resource = {
        "resourceType": "Slot",
        "id": str(slot.id),
        "serviceType": service_type(slot.procedure_type),
        "schedule": {
            "reference": f"Schedule/{schedule_id(slot.room.id, slot.doctor.id)}",
            "display": f"{slot.doctor.name} in {slot.room.name}",
        },
        "status": slot_status(slot, now),
        "start": instant(slot.start_time),
        "end": instant(slot.end_time),
    }
    if needs:
        resource["comment"] = f"needs {needs}"
    return resource


def version_id(booking: booking_pb2.Booking) -> str:
    """update_time in microseconds, plus the status as read: a hold that lapsed reads FAILED before any write
    records it, and that must be a new version too."""
    micros = booking.update_time.seconds * 1_000_000 + booking.update_time.nanos // 1000
    status = booking_pb2.BookingStatus.Name(booking.status).removeprefix("BOOKING_STATUS_").lower()
    return f"{micros}-{status}"


def patient_reference(patient_id: str) -> dict[str, Any]:
    reference: dict[str, Any] = {"identifier": {"system": PATIENT_SYSTEM, "value": patient_id}}
    if _FHIR_ID.match(patient_id):
        reference["reference"] = f"Patient/{patient_id}"
    return reference


def patient_id_of(reference: str) -> str:
    """`Patient/MRN-1001`, or the bare id / identifier value `MRN-1001`, `urn:orflow:patient-id|MRN-1001`."""
    reference = reference.removeprefix("Patient/")
    system, bar, value = reference.partition("|")
    return value if bar and system in ("", PATIENT_SYSTEM) else reference


def appointment(booking: booking_pb2.Booking, slot: resources_pb2.Slot) -> Resource:
    participants: list[dict[str, Any]] = [
        {"actor": patient_reference(booking.patient_id), "required": "required", "status": "accepted"},
        _participant(f"Practitioner/{slot.doctor.id}", slot.doctor.name),
        _participant(f"Location/{slot.room.id}", slot.room.name),
    ]
    participants.extend(_participant(f"Device/{e.equipment_id}", e.equipment_name) for e in slot.required_equipment)
    resource: Resource = {
        "resourceType": "Appointment",
        "id": str(booking.id),
        "meta": {"versionId": version_id(booking), "lastUpdated": instant(booking.update_time)},
        "status": APPOINTMENT_STATUS[booking.status],
        "serviceType": service_type(slot.procedure_type),
        "start": instant(slot.start_time),
        "end": instant(slot.end_time),
        "created": instant(booking.create_time),
        "slot": [{"reference": f"Slot/{slot.id}"}],
        "participant": participants,
    }
    if booking.request_id:
        resource["identifier"] = [{"system": REQUEST_ID_SYSTEM, "value": booking.request_id}]
    if booking.status in _CANCELATION_TEXT:
        resource["cancelationReason"] = {"text": _CANCELATION_TEXT[booking.status]}
    if booking.status == booking_pb2.BOOKING_STATUS_PENDING:
        resource["comment"] = f"held until {instant(booking.expire_time)}; confirm by setting status to booked"
    return resource


def _participant(reference: str, display: str) -> dict[str, Any]:
    return {"actor": {"reference": reference, "display": display}, "required": "required", "status": "accepted"}


def bundle(self_url: str, next_url: str | None, entries: Sequence[tuple[str, Resource]]) -> Resource:
    """A searchset Bundle; entries are (fullUrl, resource)."""
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [{"fullUrl": url, "resource": r, "search": {"mode": "match"}} for url, r in entries],
    }
