"""Who is calling, and what each role may do: plain rules, no tokens or gRPC here.

A patient acts only for itself: its bookings are the ones whose patient_id is
its subject. Another patient's booking is reported as not found, so booking
ids leak nothing. Service (internal systems) and admin act for any patient.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .errors import PermissionDeniedError
from .models import Booking
from .reasons import ErrorReason


class Role(StrEnum):
    ADMIN = "admin"
    SERVICE = "service"
    PATIENT = "patient"
    SYSTEM = "system"  # OR Flow's own processes (the expiry worker)
    ANONYMOUS = "anonymous"  # no token: may only browse slots and doctors


@dataclass(frozen=True)
class Actor:
    subject: str
    role: Role

    @property
    def patient_scope(self) -> str | None:
        """The only patient id this actor may act for, or None when it may act for any."""
        return self.subject if self.role is Role.PATIENT else None

    @property
    def is_staff(self) -> bool:
        """Admins, services and OR Flow's own processes: they may see every booking's activity."""
        return self.role in (Role.ADMIN, Role.SERVICE, Role.SYSTEM)

    def may_see(self, booking: Booking) -> bool:
        scope = self.patient_scope
        return scope is None or booking.patient_id == scope

    def patient_for(self, requested: str) -> str:
        """The patient id a booking request acts for: a patient's own id (empty means itself)."""
        scope = self.patient_scope
        if scope is None:
            return requested
        if requested and requested != scope:
            raise PermissionDeniedError(
                "a patient may only act for itself",
                reason=ErrorReason.NOT_YOUR_PATIENT_ID,
                metadata={"patient_id": requested},
            )
        return scope


ANONYMOUS = Actor("anonymous", Role.ANONYMOUS)
EXPIRY_WORKER = Actor("expiry-worker", Role.SYSTEM)
OPERATOR = Actor("orflow-cli", Role.SYSTEM)  # `orflow seed` / `orflow up` run by an operator at the console
