"""OR Flow's Python client: typed calls, typed errors, safe retries.

async with OrFlowClient("127.0.0.1:50051", token=...) as client:
    booking = await client.create_booking(slot_id=42, patient_id="P-1001")
"""

from ._bearer import InvalidToken
from ._channel import RetryPolicy
from .aio import OrFlowClient
from .blocking import BlockingOrFlowClient
from .errors import (
    AlreadyExists,
    BookingConflict,
    BookingNotActive,
    BookingNotCheckedIn,
    BookingNotConfirmed,
    BookingNotInProgress,
    BookingNotPending,
    Cancelled,
    DeadlineExceeded,
    EquipmentUnavailable,
    FailedPrecondition,
    FieldViolation,
    HoldAlreadyExtended,
    HoldExpired,
    Internal,
    InvalidArgument,
    NotFound,
    OrFlowError,
    PatientBusy,
    PermissionDenied,
    RequestIdReused,
    ResourceExhausted,
    RoomBusy,
    SlotCancelled,
    SlotInUse,
    SlotStarted,
    SlotTaken,
    SurgeonBusy,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "AlreadyExists",
    "BlockingOrFlowClient",
    "BookingConflict",
    "BookingNotActive",
    "BookingNotCheckedIn",
    "BookingNotConfirmed",
    "BookingNotInProgress",
    "BookingNotPending",
    "Cancelled",
    "DeadlineExceeded",
    "EquipmentUnavailable",
    "FailedPrecondition",
    "FieldViolation",
    "HoldAlreadyExtended",
    "HoldExpired",
    "Internal",
    "InvalidArgument",
    "InvalidToken",
    "NotFound",
    "OrFlowClient",
    "OrFlowError",
    "PatientBusy",
    "PermissionDenied",
    "RequestIdReused",
    "ResourceExhausted",
    "RetryPolicy",
    "RoomBusy",
    "SlotCancelled",
    "SlotInUse",
    "SlotStarted",
    "SlotTaken",
    "SurgeonBusy",
    "Unauthenticated",
    "Unavailable",
]
