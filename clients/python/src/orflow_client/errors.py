"""Typed exceptions for every error OR Flow answers, built from the gRPC status and its details.

The server sends a google.rpc.Status in `grpc-status-details-bin` with an
ErrorInfo (a stable `reason` such as SLOT_TAKEN) and, for bad requests, a
BadRequest listing the offending fields. `from_rpc_error` turns that into one
exception class per reason, so callers write `except SlotTaken:` instead of
comparing codes and strings. Reasons are the values of orflow.v1.ErrorReason
(protos/orflow/v1/error_reason.proto, which documents each one); on the wire
a reason is the value's name without its "ERROR_REASON_" prefix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import grpc
from google.rpc import error_details_pb2, status_pb2
from orflow.v1 import error_reason_pb2
from orflow.v1.error_reason_pb2 import ErrorReason

ERROR_DOMAIN = "orflow"
REASON_PREFIX = "ERROR_REASON_"
_DETAILS_KEY = "grpc-status-details-bin"


def parse_reason(reason: str) -> ErrorReason.ValueType:
    """The ErrorReason an ErrorInfo reason string names; UNSPECIFIED for none, or one newer than this client."""
    try:
        return ErrorReason.Value(REASON_PREFIX + reason)
    except ValueError:
        return error_reason_pb2.ERROR_REASON_UNSPECIFIED


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request, as the server described it."""

    field: str
    description: str


class OrFlowError(Exception):
    """Base of every error this client raises for a failed call."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
        field_violations: Sequence[FieldViolation] = (),
        retry_delay: timedelta | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}" + (f" [{reason}]" if reason else ""))
        self.code = code
        self.message = message
        self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})
        self.field_violations = tuple(field_violations)
        self.retry_delay = retry_delay

    @property
    def error_reason(self) -> ErrorReason.ValueType:
        """`reason` as an orflow.v1.ErrorReason value (ERROR_REASON_UNSPECIFIED when the server sent none)."""
        return parse_reason(self.reason)


class InvalidArgument(OrFlowError):
    """The request is wrong; `field_violations` says which fields and why."""


class RequestIdReused(InvalidArgument):
    """The request_id was used before for a different booking request."""


class NotFound(OrFlowError):
    """The slot, booking, room, surgeon or equipment does not exist (or is not yours to see)."""


class AlreadyExists(OrFlowError):
    pass


class BookingConflict(OrFlowError):
    """ABORTED: another booking holds something this one needs; another slot may work."""


class SlotTaken(BookingConflict):
    pass


class RoomBusy(BookingConflict):
    pass


class SurgeonBusy(BookingConflict):
    pass


class PatientBusy(BookingConflict):
    pass


class EquipmentUnavailable(BookingConflict):
    pass


class FailedPrecondition(OrFlowError):
    """The request is valid but the resource is in the wrong state for it."""


class HoldExpired(FailedPrecondition):
    pass


class SlotStarted(FailedPrecondition):
    pass


class BookingNotPending(FailedPrecondition):
    pass


class HoldAlreadyExtended(FailedPrecondition):
    """ExtendHold on a hold that was already extended (once is the limit); `metadata["expire_time"]` is its deadline."""


class BookingNotActive(FailedPrecondition):
    pass


class BookingNotConfirmed(FailedPrecondition):
    """A check-in or no-show of a booking that is not CONFIRMED; `metadata["status"]` names its state."""


class BookingNotCheckedIn(FailedPrecondition):
    """A start of a case that is not CHECKED_IN; `metadata["status"]` names its state."""


class BookingNotInProgress(FailedPrecondition):
    """A completion of a case that is not IN_PROGRESS; `metadata["status"]` names its state."""


class SlotCancelled(FailedPrecondition):
    """A booking or reschedule onto a slot that was cancelled."""


class SlotInUse(FailedPrecondition):
    """CancelSlot on a slot whose case is in progress or completed; `metadata["status"]` names its state."""


class EtagMismatch(OrFlowError):
    """ABORTED: the resource changed since you read it (`metadata["etag"]` is its current etag); nothing changed."""


class EquipmentInUse(FailedPrecondition):
    """A lower equipment count than booked cases need at once; `metadata["booking_ids"]` names them."""


class ResourceInUse(FailedPrecondition):
    """A retire refused: future bookings depend on it (`metadata["booking_ids"]`); pass cancel_bookings=True."""


class ResourceRetired(FailedPrecondition):
    """Booking, editing or publishing with something retired; `metadata` names the resource and id."""


class Unauthenticated(OrFlowError):
    """No token, or one that is expired, malformed or wrongly signed."""


class PermissionDenied(OrFlowError):
    """The token is valid but its role may not do this."""


class ResourceExhausted(OrFlowError):
    """A limit was hit (e.g. the booking rate); `retry_delay` says when to try again."""


class Unavailable(OrFlowError):
    """The server could not be reached or is shutting down; safe to retry."""


class DeadlineExceeded(OrFlowError):
    pass


class Cancelled(OrFlowError):
    pass


class Internal(OrFlowError):
    pass


BY_REASON: dict[ErrorReason.ValueType, type[OrFlowError]] = {
    error_reason_pb2.ERROR_REASON_SLOT_TAKEN: SlotTaken,
    error_reason_pb2.ERROR_REASON_ROOM_BUSY: RoomBusy,
    error_reason_pb2.ERROR_REASON_SURGEON_BUSY: SurgeonBusy,
    error_reason_pb2.ERROR_REASON_PATIENT_BUSY: PatientBusy,
    error_reason_pb2.ERROR_REASON_EQUIPMENT_UNAVAILABLE: EquipmentUnavailable,
    error_reason_pb2.ERROR_REASON_HOLD_EXPIRED: HoldExpired,
    error_reason_pb2.ERROR_REASON_SLOT_STARTED: SlotStarted,
    error_reason_pb2.ERROR_REASON_BOOKING_NOT_PENDING: BookingNotPending,
    error_reason_pb2.ERROR_REASON_HOLD_ALREADY_EXTENDED: HoldAlreadyExtended,
    error_reason_pb2.ERROR_REASON_BOOKING_NOT_ACTIVE: BookingNotActive,
    error_reason_pb2.ERROR_REASON_BOOKING_NOT_CONFIRMED: BookingNotConfirmed,
    error_reason_pb2.ERROR_REASON_BOOKING_NOT_CHECKED_IN: BookingNotCheckedIn,
    error_reason_pb2.ERROR_REASON_BOOKING_NOT_IN_PROGRESS: BookingNotInProgress,
    error_reason_pb2.ERROR_REASON_SLOT_CANCELLED: SlotCancelled,
    error_reason_pb2.ERROR_REASON_SLOT_IN_USE: SlotInUse,
    error_reason_pb2.ERROR_REASON_REQUEST_ID_REUSED: RequestIdReused,
    error_reason_pb2.ERROR_REASON_ETAG_MISMATCH: EtagMismatch,
    error_reason_pb2.ERROR_REASON_EQUIPMENT_IN_USE: EquipmentInUse,
    error_reason_pb2.ERROR_REASON_RESOURCE_IN_USE: ResourceInUse,
    error_reason_pb2.ERROR_REASON_RESOURCE_RETIRED: ResourceRetired,
}
"""ErrorInfo reasons (domain "orflow") that have a class of their own."""

BY_CODE: dict[grpc.StatusCode, type[OrFlowError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.ABORTED: BookingConflict,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.INTERNAL: Internal,
}
"""The class for a status code when the reason has none of its own."""


def _status_details(error: grpc.RpcError) -> status_pb2.Status | None:
    trailing = getattr(error, "trailing_metadata", None)
    for key, value in (trailing() if callable(trailing) else None) or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return None


def from_rpc_error(error: grpc.RpcError) -> OrFlowError:
    """The typed exception for a failed call (raise it `from` the original)."""
    code: grpc.StatusCode = error.code()
    message: str = error.details() or ""
    reason, metadata, violations, retry_delay = "", {}, [], None
    status = _status_details(error)
    for packed in status.details if status is not None else ():
        if packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            packed.Unpack(info)
            if info.domain == ERROR_DOMAIN:
                reason, metadata = info.reason, dict(info.metadata)
        elif packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            packed.Unpack(bad)
            violations = [FieldViolation(v.field, v.description) for v in bad.field_violations]
        elif packed.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            packed.Unpack(retry)
            retry_delay = retry.retry_delay.ToTimedelta()
    cls = BY_REASON.get(parse_reason(reason)) or BY_CODE.get(code, OrFlowError)
    return cls(code, message, reason=reason, metadata=metadata, field_violations=violations, retry_delay=retry_delay)
