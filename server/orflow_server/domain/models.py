"""The resources OR Flow books, as frozen dataclasses."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class BookingStatus(enum.Enum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


ACTIVE_STATUSES = frozenset({BookingStatus.PENDING, BookingStatus.CONFIRMED})


class FailureReason(enum.Enum):
    HOLD_EXPIRED = "HOLD_EXPIRED"


@dataclass(frozen=True)
class Room:
    id: int
    name: str


@dataclass(frozen=True)
class Doctor:
    id: int
    name: str
    specialty: str


@dataclass(frozen=True)
class Equipment:
    id: int
    name: str
    quantity: int


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
