"""Translates the database's refusals into domain errors, by constraint name."""

from __future__ import annotations

import asyncpg

from ..domain import errors

_REFUSALS: dict[str, type[errors.OrFlowError]] = {
    "bookings_one_active_per_slot": errors.SlotTakenError,
    "bookings_room_no_overlap": errors.RoomBusyError,
    "bookings_surgeon_no_overlap": errors.SurgeonBusyError,
    "bookings_patient_no_overlap": errors.PatientBusyError,
    "bookings_equipment_within_inventory": errors.EquipmentUnavailableError,
    "rooms_name_key": errors.AlreadyExistsError,
    "equipment_name_key": errors.AlreadyExistsError,
}

_MESSAGES: dict[str, str] = {
    "bookings_one_active_per_slot": "the slot is already held by another booking",
    "bookings_room_no_overlap": "the room is booked at an overlapping time",
    "bookings_surgeon_no_overlap": "the surgeon is booked at an overlapping time",
    "bookings_patient_no_overlap": "the patient has another booking at an overlapping time",
    "bookings_equipment_within_inventory": "not enough equipment is free at the busiest moment",
    "rooms_name_key": "a room with that name already exists",
    "equipment_name_key": "an equipment type with that name already exists",
}


def translate(exc: asyncpg.IntegrityConstraintViolationError) -> errors.OrFlowError | None:
    """The domain error for a constraint the database enforced, if it is one we name."""
    name = getattr(exc, "constraint_name", None) or ""
    error_class = _REFUSALS.get(name)
    if error_class is None:
        return None
    return error_class(_MESSAGES[name], metadata={"constraint": name})
