"""Domain errors: what went wrong in the language of the hospital, not of gRPC or SQL.

Each error carries a stable `reason` (the ErrorInfo reason on the wire), a
member of ErrorReason, which is generated from protos/orflow/v1/error_reason.proto
(so a reason the proto does not document cannot be raised), and `metadata` that
tells a caller which resource was involved (the proto lists the keys per reason).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from .reasons import ErrorReason

Resource = Literal["slot", "booking", "doctor", "room", "equipment", "site"]
"""What NotFoundError can name: the API's resource names (the Doctor message is a surgeon)."""

NOT_FOUND_REASONS: Mapping[Resource, ErrorReason] = {
    "slot": ErrorReason.SLOT_NOT_FOUND,
    "booking": ErrorReason.BOOKING_NOT_FOUND,
    "doctor": ErrorReason.DOCTOR_NOT_FOUND,
    "room": ErrorReason.ROOM_NOT_FOUND,
    "equipment": ErrorReason.EQUIPMENT_NOT_FOUND,
    "site": ErrorReason.SITE_NOT_FOUND,
}


class OrFlowError(Exception):
    """Base of every error OR Flow reports to a caller; abstract categories keep the UNSPECIFIED reason."""

    reason: ErrorReason = ErrorReason.UNSPECIFIED

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

    reason = ErrorReason.INVALID_ARGUMENT

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        self.violations = tuple(violations)
        summary = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(f"invalid request: {summary}")


class NotFoundError(OrFlowError):
    """No such resource; the reason names which kind (NOT_FOUND_REASONS)."""

    def __init__(self, resource: Resource, resource_id: object, *, is_denial: bool = False) -> None:
        self.resource = resource
        self.is_denial = is_denial
        """It exists but is not the caller's: answered as missing, recorded as a refused access."""
        super().__init__(
            f"{resource} {resource_id} does not exist",
            metadata={"resource": resource, "id": str(resource_id)},
        )
        self.reason = NOT_FOUND_REASONS[resource]


class AlreadyExistsError(OrFlowError):
    reason = ErrorReason.ALREADY_EXISTS


class ConflictError(OrFlowError):
    """Another booking holds something this one needs; another slot may work."""


class SlotTakenError(ConflictError):
    reason = ErrorReason.SLOT_TAKEN


class RoomBusyError(ConflictError):
    reason = ErrorReason.ROOM_BUSY


class SurgeonBusyError(ConflictError):
    reason = ErrorReason.SURGEON_BUSY


class PatientBusyError(ConflictError):
    reason = ErrorReason.PATIENT_BUSY


class EquipmentUnavailableError(ConflictError):
    reason = ErrorReason.EQUIPMENT_UNAVAILABLE


class FailedPreconditionError(OrFlowError):
    """The request is valid but the resource is in the wrong state for it."""


class SlotStartedError(FailedPreconditionError):
    reason = ErrorReason.SLOT_STARTED


class HoldExpiredError(FailedPreconditionError):
    reason = ErrorReason.HOLD_EXPIRED


class BookingNotPendingError(FailedPreconditionError):
    reason = ErrorReason.BOOKING_NOT_PENDING


class HoldAlreadyExtendedError(FailedPreconditionError):
    """A hold is extended at most once: the rule that keeps a slot from being held forever."""

    reason = ErrorReason.HOLD_ALREADY_EXTENDED


class BookingNotActiveError(FailedPreconditionError):
    reason = ErrorReason.BOOKING_NOT_ACTIVE


class BookingNotConfirmedError(FailedPreconditionError):
    reason = ErrorReason.BOOKING_NOT_CONFIRMED


class BookingNotCheckedInError(FailedPreconditionError):
    reason = ErrorReason.BOOKING_NOT_CHECKED_IN


class BookingNotInProgressError(FailedPreconditionError):
    reason = ErrorReason.BOOKING_NOT_IN_PROGRESS


class SlotCancelledError(FailedPreconditionError):
    reason = ErrorReason.SLOT_CANCELLED


class SlotInUseError(FailedPreconditionError):
    reason = ErrorReason.SLOT_IN_USE


class RequestIdReusedError(InvalidArgumentError):
    """The same idempotency key was sent before with a different request."""

    reason = ErrorReason.REQUEST_ID_REUSED


class UnavailableError(OrFlowError):
    """The server cannot serve this now (shutting down, a feature is not configured, or a passing fault); retry later.

    A passing fault (a lost database connection, a failover, a serialization failure,
    overload) carries `retry_after_seconds`, sent as google.rpc.RetryInfo; nothing was
    committed, or a retry with the same request_id finds what was.
    """

    reason = ErrorReason.UNAVAILABLE

    def __init__(
        self, message: str, *, retry_after_seconds: float | None = None, metadata: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message, metadata=metadata)
        self.retry_after_seconds = retry_after_seconds


class DeadlineExceededError(OrFlowError):
    """The caller's deadline passed while its database work waited; that work was stopped, nothing committed."""

    reason = ErrorReason.DEADLINE_EXCEEDED


class UnauthenticatedError(OrFlowError):
    """No valid credentials: the token is missing, expired, malformed or wrongly signed."""

    def __init__(self, message: str, *, reason: ErrorReason) -> None:
        super().__init__(message)
        self.reason = reason


class PermissionDeniedError(OrFlowError):
    """The caller is known, but its role may not do this."""

    def __init__(self, message: str, *, reason: ErrorReason, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message, metadata=metadata)
        self.reason = reason


class RateLimitedError(OrFlowError):
    """Too many requests from one caller; `retry_after_seconds` says when the next one is allowed."""

    reason = ErrorReason.RATE_LIMITED

    def __init__(self, message: str, *, retry_after_seconds: float) -> None:
        super().__init__(message, metadata={"retry_after_seconds": f"{retry_after_seconds:.3f}"})
        self.retry_after_seconds = retry_after_seconds


class StreamLimitError(RateLimitedError):
    """Too many WatchSlots streams open: `limit` says which cap (per_caller, per_connection, total) was hit."""

    reason = ErrorReason.STREAM_LIMIT

    def __init__(self, limit: str, *, maximum: int, retry_after_seconds: float) -> None:
        super().__init__(
            f"too many open WatchSlots streams ({limit.replace('_', ' ')}: at most {maximum}); "
            "close one or try again later",
            retry_after_seconds=retry_after_seconds,
        )
        self.metadata.update(limit=limit, max=str(maximum))


class EtagMismatchError(OrFlowError):
    """The resource changed since the caller read it (its etag is no longer the one sent); nothing was changed."""

    reason = ErrorReason.ETAG_MISMATCH


class EquipmentInUseError(FailedPreconditionError):
    """Lowering an equipment count below what booked cases need at their busiest moment."""

    reason = ErrorReason.EQUIPMENT_IN_USE


class ResourceInUseError(FailedPreconditionError):
    """Retiring something that future active bookings depend on, without asking to cancel them."""

    reason = ErrorReason.RESOURCE_IN_USE


class ResourceRetiredError(FailedPreconditionError):
    """Booking, editing or publishing with something retired (a slot, room, surgeon or equipment type)."""

    reason = ErrorReason.RESOURCE_RETIRED


class ResetDisabledError(FailedPreconditionError):
    """This deployment does not allow wiping its data (ORFLOW_ALLOW_RESET is off)."""

    reason = ErrorReason.RESET_DISABLED
