"""Domain errors: what went wrong in the language of the hospital, not of gRPC or SQL.

Each error carries a stable `reason` (the ErrorInfo reason on the wire) and
`metadata` that tells a caller which resource was involved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class OrFlowError(Exception):
    """Base of every error OR Flow reports to a caller."""

    reason = "ORFLOW_ERROR"

    def __init__(self, message: str, *, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata: dict[str, str] = dict(metadata or {})


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class InvalidArgumentError(OrFlowError):
    """The request itself is wrong; retrying it unchanged can never succeed."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        self.violations = tuple(violations)
        summary = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(f"invalid request: {summary}")


class NotFoundError(OrFlowError):
    reason = "NOT_FOUND"

    def __init__(self, resource: str, resource_id: object) -> None:
        self.resource = resource
        super().__init__(
            f"{resource} {resource_id} does not exist",
            metadata={"resource": resource, "id": str(resource_id)},
        )
        self.reason = f"{resource.upper()}_NOT_FOUND"


class AlreadyExistsError(OrFlowError):
    reason = "ALREADY_EXISTS"


class ConflictError(OrFlowError):
    """Another booking holds something this one needs; another slot may work."""


class SlotTakenError(ConflictError):
    reason = "SLOT_TAKEN"


class RoomBusyError(ConflictError):
    reason = "ROOM_BUSY"


class SurgeonBusyError(ConflictError):
    reason = "SURGEON_BUSY"


class PatientBusyError(ConflictError):
    reason = "PATIENT_BUSY"


class EquipmentUnavailableError(ConflictError):
    reason = "EQUIPMENT_UNAVAILABLE"


class FailedPreconditionError(OrFlowError):
    """The request is valid but the resource is in the wrong state for it."""


class SlotStartedError(FailedPreconditionError):
    reason = "SLOT_STARTED"


class HoldExpiredError(FailedPreconditionError):
    reason = "HOLD_EXPIRED"


class BookingNotPendingError(FailedPreconditionError):
    reason = "BOOKING_NOT_PENDING"


class BookingNotActiveError(FailedPreconditionError):
    reason = "BOOKING_NOT_ACTIVE"


class RequestIdReusedError(InvalidArgumentError):
    """The same idempotency key was sent before with a different request."""

    reason = "REQUEST_ID_REUSED"


class UnavailableError(OrFlowError):
    """The server cannot serve this now (shutting down, or a feature is not configured); retry later."""

    reason = "UNAVAILABLE"


class UnauthenticatedError(OrFlowError):
    """No valid credentials: the token is missing, expired, malformed or wrongly signed."""

    reason = "UNAUTHENTICATED"

    def __init__(self, message: str, *, reason: str = "UNAUTHENTICATED") -> None:
        super().__init__(message)
        self.reason = reason


class PermissionDeniedError(OrFlowError):
    """The caller is known, but its role may not do this."""

    reason = "PERMISSION_DENIED"

    def __init__(
        self, message: str, *, reason: str = "PERMISSION_DENIED", metadata: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message, metadata=metadata)
        self.reason = reason


class RateLimitedError(OrFlowError):
    """Too many requests from one caller; `retry_after_seconds` says when the next one is allowed."""

    reason = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after_seconds: float) -> None:
        super().__init__(message, metadata={"retry_after_seconds": f"{retry_after_seconds:.3f}"})
        self.retry_after_seconds = retry_after_seconds


class ResetDisabledError(FailedPreconditionError):
    """This deployment does not allow wiping its data (ORFLOW_ALLOW_RESET is off)."""

    reason = "RESET_DISABLED"
