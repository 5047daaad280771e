"""Checks request fields and collects every violation, so a caller learns all of them at once."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.protobuf.message import Message

from ..domain.edits import mask_violations
from ..domain.errors import FieldViolation, InvalidArgumentError
from ..domain.text import has_refused_characters

T = TypeVar("T")

# Narrower than google.protobuf.Timestamp's own range (years 1 to 9999), so
# arithmetic on a time (end plus turnover) can never overflow.
_MIN_SECONDS = 0  # 1970-01-01
_MAX_SECONDS = 221_845_392_000  # 9000-01-01


class RequestChecker:
    """Collects field violations; `raise_if_any` ends a handler's validation."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def fail(self, field: str, description: str) -> None:
        self.violations.append(FieldViolation(field, description))

    def positive_id(self, field: str, value: int) -> int:
        if value <= 0:
            self.fail(field, "must be a positive id" if value else "is required")
        return value

    def optional_id(self, field: str, value: int) -> int:
        if value < 0:
            self.fail(field, "must be a positive id, or 0 for any")
        return value

    def id_list(self, field: str, values: Collection[int], *, max_items: int) -> tuple[int, ...]:
        """Positive ids, at most `max_items`, sorted and distinct (a filter: order and repeats mean nothing)."""
        if len(values) > max_items:
            self.fail(field, f"must list at most {max_items} ids")
            return ()
        for i, value in enumerate(values):
            if value <= 0:
                self.fail(f"{field}[{i}]", "must be a positive id")
        return tuple(sorted(set(values)))

    def text(self, field: str, value: str, *, max_length: int, is_required: bool = True) -> str:
        if not value.strip():
            if is_required:
                self.fail(field, "is required")
            elif value:
                self.fail(field, "must not be blank")
            return ""
        if len(value) > max_length:
            self.fail(field, f"must be at most {max_length} characters")
        elif has_refused_characters(value):
            self.fail(field, "must not contain control characters")
        return value

    def timestamp(self, field: str, value: timestamp_pb2.Timestamp, *, is_set: bool) -> datetime | None:
        if not is_set:
            return None
        if not 0 <= value.nanos < 1_000_000_000:
            self.fail(field, "is not a valid timestamp (nanos must be 0 to 999999999)")
            return None
        if not _MIN_SECONDS <= value.seconds < _MAX_SECONDS:
            self.fail(field, "must be between 1970-01-01 and 9000-01-01")
            return None
        return value.ToDatetime(tzinfo=UTC)

    def required_timestamp(self, field: str, message: Message, name: str) -> datetime | None:
        if not message.HasField(name):
            self.fail(field, "is required")
            return None
        return self.timestamp(field, getattr(message, name), is_set=True)

    def local_date(self, field: str, value: Any, *, is_set: bool) -> date | None:
        """A LocalDate (year, month, day) that names a real calendar day in 1970 to 8999, or None when unset."""
        if not is_set:
            return None
        if not 1970 <= value.year <= 8999:
            self.fail(f"{field}.year", "must be between 1970 and 8999")
            return None
        try:
            return date(value.year, value.month, value.day)
        except ValueError:
            self.fail(field, f"{value.year:04d}-{value.month:02d}-{value.day:02d} is not a calendar day")
            return None

    def duration(self, field: str, value: duration_pb2.Duration, *, is_set: bool) -> timedelta | None:
        """A well-formed Duration (seconds and nanos of one sign, nanos within a second), or None when unset."""
        if not is_set:
            return None
        if not -999_999_999 <= value.nanos <= 999_999_999 or (value.seconds * value.nanos < 0):
            self.fail(field, "is not a valid duration")
            return None
        if abs(value.seconds) > 315_576_000_000:
            self.fail(field, "is out of range")
            return None
        return value.ToTimedelta()

    def enum_filter(self, field: str, value: int, known: Mapping[Any, T], *, what: str) -> T | None:
        """An optional enum filter: None when unset (0), the mapped value when known."""
        if value == 0:
            return None
        if value not in known:
            self.fail(field, f"is not a known {what}")
            return None
        return known[value]

    def update_mask(
        self,
        mask: field_mask_pb2.FieldMask,
        resource: Message,
        *,
        editable: Collection[str],
        output_only: Collection[str],
    ) -> list[str]:
        """The editable paths to set (AIP-134); an empty mask means every editable field the resource sets."""
        if not mask.paths:
            paths = [path for path in sorted(editable) if _is_set(resource, path)]
            if not paths:
                self.fail("update_mask", "is empty and the resource sets no field that can be changed")
            return paths
        self.violations.extend(mask_violations(list(mask.paths), editable=editable, output_only=output_only))
        return [path for path in mask.paths if path in editable]

    def raise_if_any(self) -> None:
        if self.violations:
            raise InvalidArgumentError(self.violations)


def _is_set(message: Message, path: str) -> bool:
    """Whether a dotted path holds a non-default value (a message field: is present)."""
    *parents, leaf = path.split(".")
    for name in parents:
        if not message.HasField(name):
            return False
        message = getattr(message, name)
    if message.DESCRIPTOR.fields_by_name[leaf].message_type is not None:
        return message.HasField(leaf)
    return bool(getattr(message, leaf))
