"""Booking use cases: create (the heart), get, confirm, cancel, list.

Every use case takes the acting `Actor`: it names the actor of the
transaction for the audit trail, and a patient only ever sees or changes its
own bookings (another patient's reads NOT_FOUND).
"""

from __future__ import annotations

from dataclasses import replace

from ..db import bookings as db
from ..db.audit import set_actor
from ..db.clock import current_time
from ..db.connection import Conn
from ..domain.access import Actor
from ..domain.errors import (
    BookingNotActiveError,
    BookingNotPendingError,
    EquipmentUnavailableError,
    FieldViolation,
    HoldExpiredError,
    NotFoundError,
    PatientBusyError,
    RequestIdReusedError,
    RoomBusyError,
    SlotStartedError,
    SlotTakenError,
    SurgeonBusyError,
)
from ..domain.filters import BookingFilters
from ..domain.models import Booking, BookingStatus, FailureReason
from ..domain.paging import decode_page_token, encode_page_token
from ..domain.rules import effective_booking, peak_usage
from .context import OpsContext


async def create_booking(ctx: OpsContext, actor: Actor, *, slot_id: int, patient_id: str, request_id: str) -> Booking:
    """Holds a slot for a patient, then schedules the hold's expiry after the commit."""
    patient_id = actor.patient_for(patient_id)
    booking, is_new = await _hold_slot(ctx, actor, slot_id=slot_id, patient_id=patient_id, request_id=request_id)
    if is_new:
        ctx.metrics.holds_created.inc()
    if booking.status is BookingStatus.PENDING:
        await ctx.expiry.schedule(booking)  # a replay re-schedules harmlessly: the job key is the same
    return booking


async def _hold_slot(
    ctx: OpsContext, actor: Actor, *, slot_id: int, patient_id: str, request_id: str
) -> tuple[Booking, bool]:
    """The booking transaction (see db/bookings.py for the lock order); True when it made a new booking."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        slot = await db.lock_slot(conn, slot_id)
        if slot is None:
            raise NotFoundError("slot", slot_id)
        if request_id:
            # Read under the slot lock, so a concurrent retry of the same
            # request waits for the first and then finds its booking.
            earlier = await db.find_by_request_id(conn, patient_id, request_id)
            if earlier is not None:
                return effective_booking(_replay(earlier, slot_id), await current_time(conn)), False
        inventory = await db.lock_resources(conn, slot, patient_id=patient_id, actor=actor)  # names the actor too
        now = await db.expire_overdue_holds(conn, slot, turnover=ctx.turnover)
        if slot.start_time <= now:
            raise SlotStartedError(f"slot {slot_id} started at {slot.start_time.isoformat()}")
        conflicts = await db.find_conflicts(conn, slot, patient_id=patient_id, turnover=ctx.turnover)
        _raise_for_conflicts(conflicts, slot_id)
        usage = await db.equipment_usage(conn, slot)
        for need in slot.needs:
            name, owned = inventory[need.equipment_id]
            in_use = peak_usage(usage[need.equipment_id], slot.start_time, slot.end_time)
            if in_use + need.quantity > owned:
                raise EquipmentUnavailableError(
                    f"{name}: {need.quantity} needed, {owned - in_use} of {owned} free at the busiest moment",
                    metadata={
                        "equipment_id": str(need.equipment_id),
                        "equipment": name,
                        "needed": str(need.quantity),
                        "available": str(max(owned - in_use, 0)),
                    },
                )
        booking = await db.insert_booking(
            conn,
            slot,
            patient_id=patient_id,
            request_id=request_id,
            now=now,
            hold_ttl=ctx.hold_ttl,
            turnover=ctx.turnover,
        )
        return booking, True


def _replay(earlier: Booking, slot_id: int) -> Booking:
    if earlier.slot_id != slot_id:
        raise RequestIdReusedError(
            [FieldViolation("request_id", f"was already used for slot {earlier.slot_id}; use a new request_id")]
        )
    return earlier


def _raise_for_conflicts(conflicts: db.Conflicts, slot_id: int) -> None:
    meta = {"slot_id": str(slot_id)}
    if conflicts.is_slot_taken:
        raise SlotTakenError(f"slot {slot_id} is already held by another booking", metadata=meta)
    if conflicts.is_room_busy:
        raise RoomBusyError("the room is booked at an overlapping time", metadata=meta)
    if conflicts.is_surgeon_busy:
        raise SurgeonBusyError("the surgeon is booked at an overlapping time", metadata=meta)
    if conflicts.is_patient_busy:
        raise PatientBusyError("the patient already has a booking at an overlapping time", metadata=meta)


async def _read_booking(conn: Conn, actor: Actor, booking_id: int) -> Booking:
    """The booking as it reads now (an overdue hold reads FAILED), or NOT_FOUND (also when not the actor's)."""
    booking = await db.fetch_booking(conn, booking_id)
    if booking is None or not actor.may_see(booking):
        raise NotFoundError("booking", booking_id)
    return effective_booking(booking, await current_time(conn))


async def get_booking(ctx: OpsContext, actor: Actor, booking_id: int) -> Booking:
    async with ctx.pool.acquire() as conn:
        return await _read_booking(conn, actor, booking_id)


async def confirm_booking(ctx: OpsContext, actor: Actor, booking_id: int) -> Booking:
    """Confirms a live hold; on failure it writes nothing and says why."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        await set_actor(conn, actor)
        confirmed = await db.confirm_pending(conn, booking_id, patient_scope=actor.patient_scope)
        if confirmed is None:
            current = await _read_booking(conn, actor, booking_id)
            meta = {"booking_id": str(booking_id), "status": current.status.value}
            if current.failure_reason is FailureReason.HOLD_EXPIRED:
                raise HoldExpiredError(
                    f"booking {booking_id}'s hold expired at {current.expire_time.isoformat()}", metadata=meta
                )
            raise BookingNotPendingError(f"booking {booking_id} is {current.status.value}, not PENDING", metadata=meta)
    ctx.metrics.holds_confirmed.inc()
    await ctx.expiry.cancel(confirmed)  # the job would find nothing to do; this just tidies the queue
    return confirmed


async def cancel_booking(ctx: OpsContext, actor: Actor, booking_id: int) -> Booking:
    """Cancels a live hold or a confirmed booking; its slot is free the moment this commits."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        await set_actor(conn, actor)
        cancelled = await db.cancel_active(conn, booking_id, patient_scope=actor.patient_scope)
        if cancelled is None:
            current = await _read_booking(conn, actor, booking_id)
            raise BookingNotActiveError(
                f"booking {booking_id} is {current.status.value}; only PENDING or CONFIRMED bookings can be cancelled",
                metadata={"booking_id": str(booking_id), "status": current.status.value},
            )
    ctx.metrics.holds_cancelled.inc()
    await ctx.expiry.cancel(cancelled)
    return cancelled


async def list_bookings(
    ctx: OpsContext, actor: Actor, filters: BookingFilters, *, page_size: int, page_token: str
) -> tuple[list[Booking], str]:
    """A page of bookings, newest first; a patient's list is always its own."""
    if actor.patient_scope is not None:
        filters = replace(filters, patient_id=actor.patient_for(filters.patient_id))
    key = decode_page_token(page_token, filters, shape=(int,))
    before_id = int(key[0]) if key else None
    async with ctx.pool.acquire() as conn:
        rows = await db.list_bookings(conn, filters, before_id=before_id, limit=page_size + 1)
        now = await current_time(conn)
    page = [effective_booking(b, now) for b in rows[:page_size]]
    token = encode_page_token([page[-1].id], filters) if len(rows) > page_size else ""
    return page, token
