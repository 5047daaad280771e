"""Rules for editing and retiring resources: field masks (AIP-134), etags (AIP-154), counts in use, retire reasons."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Literal

from .errors import EtagMismatchError, FieldViolation, NotFoundError
from .models import CancellationReason, Usage, etag_for

Retirable = Literal["room", "doctor", "equipment", "slot"]

RETIRE_CANCELLATION_REASONS: Mapping[Retirable, CancellationReason] = {
    "room": CancellationReason.OTHER,
    "doctor": CancellationReason.SURGEON_UNAVAILABLE,
    "equipment": CancellationReason.EQUIPMENT_UNAVAILABLE,
    "slot": CancellationReason.SLOT_CANCELLED,
}
"""The reason recorded on a booking cancelled because what it depended on was retired."""


def mask_violations(
    paths: Sequence[str], *, editable: Collection[str], output_only: Collection[str]
) -> list[FieldViolation]:
    """What is wrong with an update mask: unknown paths, output-only ones, repeats."""
    violations: list[FieldViolation] = []
    seen: set[str] = set()
    for index, path in enumerate(paths):
        field = f"update_mask.paths[{index}]"
        if path in seen:
            violations.append(FieldViolation(field, f"{path!r} is listed twice"))
        elif path in output_only:
            violations.append(FieldViolation(field, f"{path!r} is output only and cannot be changed"))
        elif path not in editable:
            allowed = ", ".join(sorted(editable))
            violations.append(FieldViolation(field, f"{path!r} is not a field that can be changed ({allowed})"))
        seen.add(path)
    return violations


def not_found(kind: Retirable, resource_id: int) -> NotFoundError:
    """NOT_FOUND naming the kind (spelt out, so every NotFoundError names a listed resource literally)."""
    match kind:
        case "room":
            return NotFoundError("room", resource_id)
        case "doctor":
            return NotFoundError("doctor", resource_id)
        case "equipment":
            return NotFoundError("equipment", resource_id)
        case "slot":
            return NotFoundError("slot", resource_id)


def check_etag(given: str, *, revision: int, resource: Retirable, resource_id: int) -> None:
    """An empty etag skips the check (AIP-154); any other must be the current one."""
    current = etag_for(revision)
    if given and given != current:
        raise EtagMismatchError(
            f"{resource} {resource_id} changed since you read it (etag {given!r}, now {current!r});"
            " read it again and resend",
            metadata={"resource": resource, "id": str(resource_id), "etag": current},
        )


def bookings_over(usages: Iterable[Usage], quantity: int, now: datetime) -> tuple[int, list[int]]:
    """(the peak use from `now` on, the bookings in use at any instant where use exceeds `quantity`).

    The use only rises at a booking's start (or at `now` for one already
    under way), so those instants are the only ones to look at.
    """
    live = [u for u in usages if u.end > now]
    peak = 0
    over: set[int] = set()
    for instant in {max(u.start, now) for u in live}:
        present = [u for u in live if u.start <= instant < u.end]
        in_use = sum(u.quantity for u in present)
        peak = max(peak, in_use)
        if in_use > quantity:
            over.update(u.booking_id for u in present)
    return peak, sorted(over)
