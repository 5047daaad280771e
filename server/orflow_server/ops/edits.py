"""Edit and retire use cases: UpdateRoom/Doctor/Equipment/Slot and RetireRoom/Doctor/Equipment/Slot.

Each is one transaction that first locks what it changes in the global lock
order (db/edits.py), then checks the etag, then the rules, so a stale etag or
a refusal changes nothing and a racing booking either committed first (and is
counted) or waits and then sees the change.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from ..db import edits as db
from ..db import inventory as db_inventory
from ..db import slots as db_slots
from ..db.audit import set_actor
from ..db.bookings import Refusal
from ..db.clock import current_time
from ..db.connection import Conn
from ..domain.access import Actor
from ..domain.edits import RETIRE_CANCELLATION_REASONS, Retirable, bookings_over, check_etag, not_found
from ..domain.errors import (
    EquipmentInUseError,
    InvalidArgumentError,
    NotFoundError,
    ResourceInUseError,
    ResourceRetiredError,
    SlotCancelledError,
    SlotStartedError,
)
from ..domain.models import Booking, Doctor, Equipment, NewSlot, Room, Slot
from ..domain.rules import slot_violations
from .bookings import refusal_error
from .context import OpsContext

_MOVE_COLUMNS = ("start_time", "end_time", "room_id", "doctor_id")


async def update_room(ctx: OpsContext, actor: Actor, room_id: int, *, etag: str, changes: Mapping[str, Any]) -> Room:
    async with ctx.connection() as conn, conn.transaction():
        row = await _lock_for_edit(conn, actor, "room", room_id, etag=etag)
        if "site_id" in changes and await db_inventory.fetch_site(conn, changes["site_id"]) is None:
            raise NotFoundError("site", changes["site_id"])
        return db_inventory.room_from_row(await db.update_row(conn, "room", room_id, changes) if changes else row)


async def update_doctor(
    ctx: OpsContext, actor: Actor, doctor_id: int, *, etag: str, changes: Mapping[str, Any]
) -> Doctor:
    async with ctx.connection() as conn, conn.transaction():
        row = await _lock_for_edit(conn, actor, "doctor", doctor_id, etag=etag)
        return db_inventory.doctor_from_row(await db.update_row(conn, "doctor", doctor_id, changes) if changes else row)


async def update_equipment(
    ctx: OpsContext, actor: Actor, equipment_id: int, *, etag: str, changes: Mapping[str, Any]
) -> Equipment:
    """Under the equipment row lock (bookings needing it take it too): a lower count must cover booked cases."""
    async with ctx.connection() as conn, conn.transaction():
        row = await _lock_for_edit(conn, actor, "equipment", equipment_id, etag=etag)
        quantity = changes.get("quantity", row["quantity"])
        if quantity < row["quantity"]:
            await db.fail_overdue_holds_using(conn, equipment_id)
            peak, over = bookings_over(
                await db.equipment_usages(conn, equipment_id), quantity, await current_time(conn)
            )
            if over:
                ids = ", ".join(map(str, over))
                raise EquipmentInUseError(
                    f"{row['name']}: booked cases need {peak} at their busiest moment, more than {quantity};"
                    f" bookings in the way: {ids}",
                    metadata={"equipment_id": str(equipment_id), "needed": str(peak), "booking_ids": ids},
                )
        updated = await db.update_row(conn, "equipment", equipment_id, changes) if changes else row
        return db_inventory.equipment_from_row(updated)


async def update_slot(ctx: OpsContext, actor: Actor, slot_id: int, *, etag: str, changes: Mapping[str, Any]) -> Slot:
    """A move (time, room, surgeon) re-checks the slot's booking under every booking rule, in this transaction."""
    async with ctx.connection() as conn, conn.transaction():
        row = await _lock_for_edit(conn, actor, "slot", slot_id, etag=etag)  # the slot row: first in the lock order
        if row["cancel_time"] is not None:
            raise SlotCancelledError(f"slot {slot_id} was cancelled", metadata={"slot_id": str(slot_id)})
        if any(name in changes and changes[name] != row[name] for name in _MOVE_COLUMNS):
            await _move_slot(ctx, conn, row, changes)
        elif changes:
            await db.update_row(conn, "slot", slot_id, changes)
        slot = await db_slots.fetch_slot(conn, slot_id, turnover=ctx.turnover)
    assert slot is not None
    return slot


async def _move_slot(ctx: OpsContext, conn: Conn, row: asyncpg.Record, changes: Mapping[str, Any]) -> None:
    slot_id = row["id"]
    now = await current_time(conn)
    if row["start_time"] <= now:
        raise SlotStartedError(f"slot {slot_id} started at {row['start_time'].isoformat()}; it can no longer be moved")
    facts = {name: changes.get(name, row[name]) for name in (*_MOVE_COLUMNS, "procedure_type")}
    violations = slot_violations(NewSlot(**facts), now, {})
    if violations:
        raise InvalidArgumentError(violations)
    await _check_in_service(conn, "rooms", "room", facts["room_id"])
    await _check_in_service(conn, "doctors", "doctor", facts["doctor_id"])
    booked = await db.occupant(conn, slot_id)
    if booked is not None:
        await db.lock_for_move(
            conn,
            slot_id=slot_id,
            room_ids=sorted({row["room_id"], facts["room_id"]}),
            doctor_ids=sorted({row["doctor_id"], facts["doctor_id"]}),
            patient_id=booked.patient_id,
        )
    await db.defer_slot_facts(conn)
    await db.update_row(conn, "slot", slot_id, changes)
    if booked is not None:
        fits = await db.check_booking_fits(conn, slot_id=slot_id, occupant=booked, turnover=ctx.turnover)
        if isinstance(fits, Refusal):
            raise refusal_error(fits, slot_id, is_staff=True)
    await db.carry_bookings(conn, slot_id, turnover=ctx.turnover)


async def _check_in_service(conn: Conn, table: str, kind: Retirable, resource_id: int) -> None:
    retired: dict[int, datetime | None] = await db_inventory.retire_times(conn, table, [resource_id])
    if resource_id not in retired:
        raise not_found(kind, resource_id)
    if retired[resource_id] is not None:
        raise _retired(kind, resource_id)


def _retired(kind: Retirable, resource_id: int) -> ResourceRetiredError:
    return ResourceRetiredError(f"{kind} {resource_id} is retired", metadata={"resource": kind, "id": str(resource_id)})


async def _lock_for_edit(conn: Conn, actor: Actor, kind: Retirable, resource_id: int, *, etag: str) -> asyncpg.Record:
    """Names the actor, locks the row, and checks it exists, matches the etag and is in service."""
    await set_actor(conn, actor)
    row = await db.lock_row(conn, kind, resource_id)
    if row is None:
        raise not_found(kind, resource_id)
    check_etag(etag, revision=row["revision"], resource=kind, resource_id=resource_id)
    if row["retire_time"] is not None:
        raise _retired(kind, resource_id)
    return row


async def retire_room(ctx: OpsContext, actor: Actor, room_id: int, **how: Any) -> tuple[Room, list[Booking]]:
    cancelled = await _retire(ctx, actor, "room", room_id, **how)
    async with ctx.connection() as conn:
        return db_inventory.room_from_row(await db.read_row(conn, "room", room_id)), cancelled


async def retire_doctor(ctx: OpsContext, actor: Actor, doctor_id: int, **how: Any) -> tuple[Doctor, list[Booking]]:
    cancelled = await _retire(ctx, actor, "doctor", doctor_id, **how)
    async with ctx.connection() as conn:
        return db_inventory.doctor_from_row(await db.read_row(conn, "doctor", doctor_id)), cancelled


async def retire_equipment(
    ctx: OpsContext, actor: Actor, equipment_id: int, **how: Any
) -> tuple[Equipment, list[Booking]]:
    cancelled = await _retire(ctx, actor, "equipment", equipment_id, **how)
    async with ctx.connection() as conn:
        return db_inventory.equipment_from_row(await db.read_row(conn, "equipment", equipment_id)), cancelled


async def retire_slot(ctx: OpsContext, actor: Actor, slot_id: int, **how: Any) -> tuple[Slot, list[Booking]]:
    cancelled = await _retire(ctx, actor, "slot", slot_id, **how)
    async with ctx.connection() as conn:
        slot = await db_slots.fetch_slot(conn, slot_id, turnover=ctx.turnover)
    assert slot is not None
    return slot, cancelled


async def _retire(
    ctx: OpsContext, actor: Actor, kind: Retirable, resource_id: int, *, etag: str, cancel_bookings: bool, note: str
) -> list[Booking]:
    """Retires the resource (a repeat changes nothing); returns the bookings it cancelled."""
    async with ctx.connection() as conn, conn.transaction():
        await set_actor(conn, actor)
        await db.lock_dependent_slots(conn, kind, resource_id)  # slot rows first, then the resource's own row
        row = await db.lock_row(conn, kind, resource_id)
        if row is None:
            raise not_found(kind, resource_id)
        check_etag(etag, revision=row["revision"], resource=kind, resource_id=resource_id)
        if row["retire_time"] is not None:
            return []
        cancelled = await _release_dependents(
            conn, actor, kind, resource_id, cancel_bookings=cancel_bookings, note=note
        )
        await db.retire_row(conn, kind, resource_id)
    for booking in cancelled:
        ctx.metrics.holds_cancelled.inc()
        await ctx.expiry.cancel(booking)
    return cancelled


async def _release_dependents(
    conn: Conn, actor: Actor, kind: Retirable, resource_id: int, *, cancel_bookings: bool, note: str
) -> list[Booking]:
    """Nothing to do, or every dependent booking cancelled, or ResourceInUseError naming them."""
    dependents = await db.dependent_bookings(conn, kind, resource_id)
    if not dependents:
        return []
    under_way = [d.booking_id for d in dependents if d.status == "IN_PROGRESS"]
    if under_way or not cancel_bookings:
        ids = ", ".join(map(str, under_way or [d.booking_id for d in dependents]))
        why = "a case in progress cannot be cancelled" if under_way else "set cancel_bookings to cancel them"
        raise ResourceInUseError(
            f"{kind} {resource_id} is needed by future bookings {ids}; {why}",
            metadata={"resource": kind, "id": str(resource_id), "booking_ids": ids},
        )
    reason = RETIRE_CANCELLATION_REASONS[kind]
    return await db.cancel_bookings(conn, [d.booking_id for d in dependents], reason=reason, note=note, actor=actor)
