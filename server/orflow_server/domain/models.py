"""The resources OR Flow books, as frozen dataclasses."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


class BookingStatus(enum.Enum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CHECKED_IN = "CHECKED_IN"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    NO_SHOW = "NO_SHOW"


ACTIVE_STATUSES = frozenset(
    {
        BookingStatus.PENDING,
        BookingStatus.CONFIRMED,
        BookingStatus.CHECKED_IN,
        BookingStatus.IN_PROGRESS,
        BookingStatus.COMPLETED,
    }
)
"""Statuses that hold the slot, room, surgeon, patient and equipment (migration 0007 says why COMPLETED does)."""


class CancellationReason(enum.Enum):
    PATIENT_REQUEST = "PATIENT_REQUEST"
    SURGEON_UNAVAILABLE = "SURGEON_UNAVAILABLE"
    EQUIPMENT_UNAVAILABLE = "EQUIPMENT_UNAVAILABLE"
    MEDICAL = "MEDICAL"
    SLOT_CANCELLED = "SLOT_CANCELLED"  # given only by cancelling the slot itself
    OTHER = "OTHER"


class FailureReason(enum.Enum):
    HOLD_EXPIRED = "HOLD_EXPIRED"


@dataclass(frozen=True)
class Site:
    """A hospital: its rooms' days are kept in its IANA time zone."""

    id: int
    name: str
    display_name: str
    time_zone: str


@dataclass(frozen=True)
class Room:
    id: int
    name: str
    site_id: int = 0
    turnover: timedelta | None = None
    """The room's own turnover; None means the server's default (Settings.turnover)."""
    revision: int = 0
    """Bumped by the database on every change (migration 0010); 0 where not read (a slot's room)."""
    retire_time: datetime | None = None


@dataclass(frozen=True)
class Doctor:
    id: int
    name: str
    specialty: str
    revision: int = 0
    retire_time: datetime | None = None


@dataclass(frozen=True)
class Equipment:
    id: int
    name: str
    quantity: int
    revision: int = 0
    retire_time: datetime | None = None


@dataclass(frozen=True)
class EquipmentNeed:
    """Units of one equipment type a slot uses for its whole interval."""

    equipment_id: int
    quantity: int
    equipment_name: str = ""


@dataclass(frozen=True)
class Slot:
    id: int
    doctor: Doctor
    procedure_type: str
    room: Room
    start_time: datetime
    end_time: datetime
    required_equipment: tuple[EquipmentNeed, ...]
    is_available: bool
    create_time: datetime
    cancel_time: datetime | None = None
    site: Site | None = None
    """The room's site, with the zone a client shows the slot's times in."""
    revision: int = 0
    retire_time: datetime | None = None
    """The earliest retire time of the slot, its room, its surgeon or an equipment type it needs."""


@dataclass(frozen=True)
class Booking:
    id: int
    slot_id: int
    patient_id: str
    status: BookingStatus
    failure_reason: FailureReason | None
    create_time: datetime
    expire_time: datetime
    update_time: datetime
    request_id: str
    cancellation_reason: CancellationReason | None = None
    cancellation_note: str = ""
    cancelled_by: str = ""
    actual_start_time: datetime | None = None
    actual_end_time: datetime | None = None
    slot_end_time: datetime | None = None
    overrun: timedelta = timedelta(0)
    """How far the case ran past its slot's end (domain.day.overrun)."""
    site: Site | None = None
    """The site of the booked slot's room, with its time zone."""


@dataclass(frozen=True)
class NewSlot:
    """What an admin asks to publish, before it has an id."""

    doctor_id: int
    procedure_type: str
    room_id: int
    start_time: datetime
    end_time: datetime
    required_equipment: tuple[EquipmentNeed, ...] = ()


@dataclass(frozen=True)
class Usage:
    """Units of equipment an active booking uses over [start, end)."""

    start: datetime
    end: datetime
    quantity: int
    booking_id: int = 0


@dataclass(frozen=True)
class AuditEvent:
    """One appended change: who, what, when, and the record before and after."""

    id: int
    event_time: datetime
    actor: str
    actor_role: str
    action: str
    resource_type: str
    resource_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def etag_for(revision: int) -> str:
    """The etag a resource at this revision carries (AIP-154); empty when the revision was not read."""
    return f"r{revision}" if revision > 0 else ""
