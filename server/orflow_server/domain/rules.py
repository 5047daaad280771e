"""Pure booking rules: intervals, peak equipment use, what a booking reads as now."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from .day import overrun
from .errors import FieldViolation
from .models import Booking, BookingStatus, EquipmentNeed, FailureReason, NewSlot, Usage

MAX_SLOT_LENGTH = timedelta(hours=24)
MAX_EQUIPMENT_QUANTITY = 100_000  # units of one equipment type; the CHECK on equipment.quantity (0001) agrees


def peak_usage(usages: Iterable[Usage], start: datetime, end: datetime) -> int:
    """Most units in use at any single instant of [start, end).

    A sum over every overlapping booking would over-count bookings that
    follow one another inside the window; the peak is what must fit the
    inventory. Intervals are half-open, so one ending as another starts
    never counts twice.
    """
    events: list[tuple[datetime, int]] = []
    for usage in usages:
        lo, hi = max(usage.start, start), min(usage.end, end)
        if lo < hi:
            events.append((lo, usage.quantity))
            events.append((hi, -usage.quantity))
    # Ends sort before starts at the same instant (negative deltas first).
    events.sort(key=lambda event: (event[0], event[1]))
    peak = current = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def effective_booking(booking: Booking, now: datetime) -> Booking:
    """The booking as it reads at `now`: a PENDING hold past expiry is FAILED.

    The expiry job only makes this durable; readers never wait for it.
    """
    if booking.status is BookingStatus.PENDING and booking.expire_time <= now:
        return replace(
            booking,
            status=BookingStatus.FAILED,
            failure_reason=FailureReason.HOLD_EXPIRED,
            update_time=booking.expire_time,
        )
    if booking.slot_end_time is not None and booking.status in (BookingStatus.IN_PROGRESS, BookingStatus.COMPLETED):
        late = overrun(booking.status, end_time=booking.slot_end_time, actual_end_time=booking.actual_end_time, now=now)
        return replace(booking, overrun=late)
    return booking


def slot_violations(slot: NewSlot, now: datetime, inventory: dict[int, int]) -> list[FieldViolation]:
    """Field violations of a slot an admin wants to publish.

    `inventory` maps equipment ids to units owned; unknown ids are NOT_FOUND
    and are reported by the caller, not here.
    """
    violations: list[FieldViolation] = []
    if slot.end_time <= slot.start_time:
        violations.append(FieldViolation("end_time", "must be after start_time"))
    elif slot.end_time - slot.start_time > MAX_SLOT_LENGTH:
        violations.append(FieldViolation("end_time", "a slot lasts at most 24 hours"))
    if slot.start_time <= now:
        violations.append(FieldViolation("start_time", "must be in the future"))
    violations.extend(_equipment_violations(slot.required_equipment, inventory))
    return violations


def _equipment_violations(needs: Sequence[EquipmentNeed], inventory: dict[int, int]) -> list[FieldViolation]:
    violations: list[FieldViolation] = []
    seen: set[int] = set()
    for index, need in enumerate(needs):
        field = f"required_equipment[{index}]"
        equipment_id, quantity = need.equipment_id, need.quantity
        if equipment_id in seen:
            violations.append(FieldViolation(f"{field}.equipment_id", "each equipment type at most once"))
        seen.add(equipment_id)
        if quantity < 1:
            violations.append(FieldViolation(f"{field}.quantity", "must be at least 1"))
        elif equipment_id in inventory and quantity > inventory[equipment_id]:
            violations.append(
                FieldViolation(
                    f"{field}.quantity",
                    f"needs {quantity} but the inventory holds {inventory[equipment_id]}",
                )
            )
    return violations
