"""A pure-Python model of the booking rule, written from README.md's "The booking rule" (no server code).

Times are minutes from a base instant; intervals are half-open [start, end). A booking reads:
PENDING, CONFIRMED, CANCELLED, or FAILED (failure HOLD_EXPIRED) once its hold has expired.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

ACTIVE = ("PENDING", "CONFIRMED")


@dataclass(frozen=True)
class Slot:
    room: str
    surgeon: str
    start: int
    end: int
    equipment: tuple[tuple[str, int], ...] = ()


@dataclass
class Booking:
    slot: int
    patient: str
    request_id: str
    status: str = "PENDING"
    failure: str = ""

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@dataclass
class World:
    """The slots (by index), the equipment stock, the turnover, and every booking by the server's id."""

    slots: list[Slot]
    stock: dict[str, int]
    turnover: int
    bookings: dict[int, Booking] = field(default_factory=dict)

    def copy(self) -> World:
        return copy.deepcopy(self)

    def _active(self) -> list[tuple[Booking, Slot]]:
        return [(b, self.slots[b.slot]) for b in self.bookings.values() if b.is_active]

    def _peak(self, item: str, during: tuple[int, int]) -> int:
        """Most units of `item` in use at any instant of `during`: use only rises at some booking's start."""
        uses = [(s.start, s.end, n) for _, s in self._active() for name, n in s.equipment if name == item]
        instants = {during[0]} | {
            start for start, end, _ in uses if overlaps((start, end), during) and start > during[0]
        }
        return max(sum(n for start, end, n in uses if start <= t < end) for t in instants)

    def refusal(self, slot_index: int, patient: str) -> str | None:
        """Why CreateBooking must refuse (the README's check order), or None when it books."""
        s = self.slots[slot_index]
        active = self._active()
        room = (s.start, s.end + self.turnover)
        if any(b.slot == slot_index for b, _ in active):
            return "SLOT_TAKEN"
        if any(o.room == s.room and overlaps((o.start, o.end + self.turnover), room) for _, o in active):
            return "ROOM_BUSY"
        if any(o.surgeon == s.surgeon and overlaps((o.start, o.end), (s.start, s.end)) for _, o in active):
            return "SURGEON_BUSY"
        if any(b.patient == patient and overlaps((o.start, o.end), (s.start, s.end)) for b, o in active):
            return "PATIENT_BUSY"
        for item, need in sorted(s.equipment):
            if self._peak(item, (s.start, s.end)) + need > self.stock[item]:
                return "EQUIPMENT_UNAVAILABLE"
        return None

    def earlier(self, patient: str, request_id: str) -> tuple[int, Booking] | None:
        return next(
            ((i, b) for i, b in self.bookings.items() if (b.patient, b.request_id) == (patient, request_id)), None
        )

    def create(self, slot_index: int, patient: str, request_id: str) -> tuple[str, int | None]:
        """("BOOKED" | "REPLAYED", booking id None for a new one) or (refusal reason, None); applies a booking."""
        found = self.earlier(patient, request_id)
        if found is not None:
            booking_id, booking = found
            return ("REPLAYED", booking_id) if booking.slot == slot_index else ("REQUEST_ID_REUSED", None)
        reason = self.refusal(slot_index, patient)
        return (reason, None) if reason else ("BOOKED", None)

    def confirm(self, booking_id: int) -> str | None:
        booking = self.bookings[booking_id]
        if booking.status == "PENDING":
            booking.status = "CONFIRMED"
            return None
        return "HOLD_EXPIRED" if booking.failure == "HOLD_EXPIRED" else "BOOKING_NOT_PENDING"

    def cancel(self, booking_id: int) -> str | None:
        booking = self.bookings[booking_id]
        if booking.is_active:
            booking.status = "CANCELLED"
            return None
        return "BOOKING_NOT_ACTIVE"

    def expire(self, booking_id: int) -> None:
        booking = self.bookings[booking_id]
        if booking.status == "PENDING":
            booking.status, booking.failure = "FAILED", "HOLD_EXPIRED"
