"""Slot changes as the database announces them: which slot, and what happened to it."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SlotChangeKind(enum.Enum):
    SNAPSHOT = "SNAPSHOT"
    SNAPSHOT_COMPLETE = "SNAPSHOT_COMPLETE"
    CREATED = "CREATED"
    BOOKED = "BOOKED"
    CONFIRMED = "CONFIRMED"
    RELEASED = "RELEASED"
    AVAILABILITY_CHANGED = "AVAILABILITY_CHANGED"  # another slot's booking blocks or frees its room or surgeon
    CASE_PROGRESSED = "CASE_PROGRESSED"  # the slot's case was checked in, started or completed
    DELAYED = "DELAYED"  # an earlier case in the room overran into this slot
    CANCELLED = "CANCELLED"  # the slot itself was cancelled (CancelSlot)


PUBLIC_KINDS: dict[SlotChangeKind, SlotChangeKind | None] = {
    SlotChangeKind.BOOKED: SlotChangeKind.AVAILABILITY_CHANGED,
    SlotChangeKind.RELEASED: SlotChangeKind.AVAILABILITY_CHANGED,
    SlotChangeKind.CONFIRMED: None,
}
"""What a watcher who is not staff sees of each booking kind (None: nothing, the slot looks the same).

Whether a slot is free is public (ListSlots says it); when a patient confirms
or cancels is not. Held and released slots therefore read as availability
changes, indistinguishable from a neighbouring slot's booking, and a
confirmation (which changes nothing a browser shows) is not sent at all.
"""


def public_kind(kind: SlotChangeKind) -> SlotChangeKind | None:
    return PUBLIC_KINDS.get(kind, kind)


@dataclass(frozen=True)
class SlotChange:
    slot_id: int
    kind: SlotChangeKind


@dataclass(frozen=True)
class SlotsReset:
    """Many slots changed at once (a TRUNCATE): only a fresh snapshot is right."""


class Signal(enum.Enum):
    """What a watcher's feed says besides a change."""

    RESYNC = "RESYNC"
    """Changes may have been missed: read a fresh snapshot."""
    CLOSED = "CLOSED"
    """The feed stopped: no more changes will come."""
