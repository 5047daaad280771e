"""The ONE table from a refusal (gRPC status code + ErrorInfo reason) to HTTP status + OperationOutcome.

Every refusal the FHIR edge answers goes through `translate`: the gRPC
server's own (read from `grpc-status-details-bin`) and the few the edge makes
itself (a bad search parameter, a stale `If-Match`), which are raised as
`FhirError` with a gRPC code and a reason so they take the same path. The
reason travels in `OperationOutcome.issue[0].details.coding` (system
`REASON_SYSTEM`): the same words a gRPC client sees in ErrorInfo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import grpc
from google.rpc import error_details_pb2, status_pb2

REASON_SYSTEM: Final = "urn:orflow:error-reason"
_DETAILS_KEY = "grpc-status-details-bin"
# Reasons only the FHIR edge gives (not in orflow.v1.ErrorReason): prefixed so they never collide.
VERSION_MISMATCH: Final = "FHIR_VERSION_MISMATCH"
NOT_SUPPORTED: Final = "FHIR_NOT_SUPPORTED"
UNKNOWN_RESOURCE: Final = "FHIR_RESOURCE_NOT_FOUND"


@dataclass(frozen=True)
class Translation:
    http_status: int
    issue_code: str  # http://hl7.org/fhir/issue-type
    severity: str = "error"


# (gRPC code, reason) → answer; a row with reason None is the code's default. Looked up exact first.
TABLE: Final[dict[tuple[grpc.StatusCode, str | None], Translation]] = {
    (grpc.StatusCode.ABORTED, None): Translation(409, "conflict"),  # SLOT_TAKEN, ROOM_BUSY, … EQUIPMENT_UNAVAILABLE
    (grpc.StatusCode.FAILED_PRECONDITION, None): Translation(409, "conflict"),  # HOLD_EXPIRED, BOOKING_NOT_*
    (grpc.StatusCode.FAILED_PRECONDITION, "SLOT_STARTED"): Translation(422, "business-rule"),
    (grpc.StatusCode.FAILED_PRECONDITION, VERSION_MISMATCH): Translation(412, "conflict"),
    (grpc.StatusCode.ALREADY_EXISTS, None): Translation(409, "duplicate"),
    (grpc.StatusCode.INVALID_ARGUMENT, None): Translation(400, "invalid"),
    (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED"): Translation(409, "duplicate"),
    (grpc.StatusCode.NOT_FOUND, None): Translation(404, "not-found"),
    (grpc.StatusCode.UNAUTHENTICATED, None): Translation(401, "login"),
    (grpc.StatusCode.PERMISSION_DENIED, None): Translation(403, "forbidden"),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, None): Translation(429, "throttled"),
    (grpc.StatusCode.UNIMPLEMENTED, None): Translation(501, "not-supported"),
    (grpc.StatusCode.UNIMPLEMENTED, NOT_SUPPORTED): Translation(405, "not-supported"),
    (grpc.StatusCode.UNAVAILABLE, None): Translation(503, "transient"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, None): Translation(504, "timeout"),
}
_FALLBACK = Translation(500, "exception", "fatal")


@dataclass(frozen=True)
class Refusal:
    """A refusal as the gRPC server (or the edge, in its terms) gave it."""

    code: grpc.StatusCode
    reason: str
    message: str
    fields: Sequence[tuple[str, str]] = ()  # BadRequest field violations: (field, description)
    retry_after_seconds: int | None = None


class FhirError(Exception):
    """A refusal made by the FHIR edge itself, in gRPC terms so the one table answers it."""

    def __init__(self, code: grpc.StatusCode, reason: str, message: str, *, fields: Sequence[tuple[str, str]] = ()):
        super().__init__(message)
        self.refusal = Refusal(code, reason, message, tuple(fields))


def invalid(message: str, *, field_name: str = "") -> FhirError:
    """A bad parameter or body: 400, reason INVALID_ARGUMENT as the server would say."""
    return FhirError(
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        message,
        fields=[(field_name, message)] if field_name else (),
    )


def translate(refusal: Refusal) -> Translation:
    return TABLE.get((refusal.code, refusal.reason)) or TABLE.get((refusal.code, None)) or _FALLBACK


def refusal_from_rpc(error: grpc.aio.AioRpcError) -> Refusal:
    """The status code, ErrorInfo reason, BadRequest fields and RetryInfo of a failed gRPC call."""
    reason, fields, retry = "", list[tuple[str, str]](), None
    for detail in _status_details(error):
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend((v.field, v.description) for v in bad.field_violations)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info_retry = error_details_pb2.RetryInfo()
            detail.Unpack(info_retry)
            retry = max(1, info_retry.retry_delay.seconds + (1 if info_retry.retry_delay.nanos else 0))
    return Refusal(error.code(), reason, error.details() or "", tuple(fields), retry)


def _status_details(error: grpc.aio.AioRpcError) -> Sequence[Any]:
    trailing: Any = error.trailing_metadata() or ()
    for key, value in trailing:
        if key == _DETAILS_KEY and isinstance(value, bytes):
            return list(status_pb2.Status.FromString(value).details)
    return []


def operation_outcome(refusal: Refusal, translation: Translation) -> dict[str, Any]:
    """The OperationOutcome body: one issue with the reason in details, plus one per bad field."""
    details: dict[str, Any] = {"text": refusal.message or translation.issue_code}
    if refusal.reason:
        details["coding"] = [{"system": REASON_SYSTEM, "code": refusal.reason}]
    issues: list[dict[str, Any]] = [
        {"severity": translation.severity, "code": translation.issue_code, "details": details}
    ]
    issues.extend(
        {"severity": "error", "code": translation.issue_code, "diagnostics": description, "expression": [name]}
        for name, description in refusal.fields
        if name
    )
    return {"resourceType": "OperationOutcome", "issue": issues}


@dataclass(frozen=True)
class ErrorAnswer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def answer(refusal: Refusal) -> ErrorAnswer:
    """What the edge sends for a refusal: status, OperationOutcome and the headers HTTP expects with it."""
    translation = translate(refusal)
    headers: dict[str, str] = {}
    if translation.http_status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="orflow"'
    if refusal.retry_after_seconds is not None:
        headers["Retry-After"] = str(refusal.retry_after_seconds)
    return ErrorAnswer(translation.http_status, operation_outcome(refusal, translation), headers)
