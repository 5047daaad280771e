"""What a listing may be narrowed by: one frozen dataclass per listing, each naming its page-token fields.

Each class spells out `token_fields()` by hand instead of deriving it from
its attributes, so renaming an attribute cannot change the page tokens that
clients hold (domain/paging.py fingerprints exactly these names and values).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import ClassVar

from .models import BookingStatus, Slot
from .paging import FilterValue


@dataclass(frozen=True)
class SlotFilters:
    listing: ClassVar[str] = "slots"

    procedure_type: str = ""
    doctor_id: int = 0
    room_id: int = 0
    window_start: datetime | None = None
    window_end: datetime | None = None
    is_available_only: bool = False
    site_id: int = 0
    day: date | None = None
    """A calendar day in the site's zone (needs site_id): slots starting from its local midnight to the next."""
    is_retired_shown: bool = False

    def token_fields(self) -> dict[str, FilterValue]:
        fields: dict[str, FilterValue] = {
            "procedure_type": self.procedure_type,
            "doctor_id": self.doctor_id,
            "room_id": self.room_id,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "available_only": self.is_available_only,
        }
        # Only when set, so tokens issued before sites existed stay valid.
        if self.site_id:
            fields["site_id"] = self.site_id
        if self.day is not None:
            fields["day"] = self.day.isoformat()
        if self.is_retired_shown:  # only when set, so tokens issued before it existed stay valid
            fields["show_retired"] = True
        return fields

    def matches(self, slot: Slot) -> bool:
        """The room, site, surgeon and procedure tests ListSlots applies in SQL, for one slot in hand."""
        return (
            (not self.room_id or slot.room.id == self.room_id)
            and (not self.site_id or slot.room.site_id == self.site_id)
            and (not self.doctor_id or slot.doctor.id == self.doctor_id)
            and (not self.procedure_type or slot.procedure_type.lower() == self.procedure_type.lower())
        )


@dataclass(frozen=True)
class BookingFilters:
    listing: ClassVar[str] = "bookings"

    status: BookingStatus | None = None
    patient_id: str = ""
    slot_id: int = 0
    slot_ids: tuple[int, ...] = ()
    """Any of these slots (sorted, distinct); empty means no such filter."""

    def token_fields(self) -> dict[str, FilterValue]:
        fields: dict[str, FilterValue] = {
            "status": None if self.status is None else self.status.value,
            "patient_id": self.patient_id,
            "slot_id": self.slot_id,
        }
        if self.slot_ids:  # only when set, so tokens issued before it existed stay valid
            fields["slot_ids"] = ",".join(map(str, self.slot_ids))
        return fields


@dataclass(frozen=True)
class AuditFilters:
    listing: ClassVar[str] = "audit_events"

    action: str = ""
    actor: str = ""
    resource_type: str = ""
    resource_id: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None

    def token_fields(self) -> dict[str, FilterValue]:
        return {
            "action": self.action,
            "actor": self.actor,
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "start_time": self.start_time,
            "end_time": self.end_time,
        }


@dataclass(frozen=True)
class DoctorFilters:
    listing: ClassVar[str] = "doctors"

    query: str = ""
    is_retired_shown: bool = False

    def token_fields(self) -> dict[str, FilterValue]:
        fields: dict[str, FilterValue] = {"query": self.query}
        if self.is_retired_shown:  # only when set, so tokens issued before it existed stay valid
            fields["show_retired"] = True
        return fields
