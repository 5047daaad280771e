"""Booking use cases: create (the heart), get, confirm, cancel, list.

Every use case takes the acting `Actor`: it names the actor of the
transaction for the audit trail, and a patient only ever sees or changes its
own bookings (another patient's reads NOT_FOUND).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from ..db import bookings as db
from ..db.clock import current_time
from ..db.connection import Conn
from ..domain.access import Actor
from ..domain.day import DayStep
from ..domain.errors import (
    BookingNotActiveError,
    BookingNotPendingError,
    EquipmentUnavailableError,
    FieldViolation,
    HoldAlreadyExtendedError,
    HoldExpiredError,
    InvalidArgumentError,
    NotFoundError,
    OrFlowError,
    PatientBusyError,
    RequestIdReusedError,
    ResourceRetiredError,
    RoomBusyError,
    SlotCancelledError,
    SlotStartedError,
    SlotTakenError,
    SurgeonBusyError,
)
from ..domain.filters import BookingFilters
from ..domain.models import Booking, BookingStatus, CancellationReason, FailureReason
from ..domain.paging import decode_page_token, encode_page_token
from ..domain.rules import effective_booking
from .context import OpsContext


@dataclass(frozen=True)
class Created:
    """CreateBooking's outcome: the booking, and whether a retried request_id found it already made."""

    booking: Booking
    is_replay: bool


async def create_booking(ctx: OpsContext, actor: Actor, *, slot_id: int, patient_id: str, request_id: str) -> Created:
    """Holds a slot for a patient, then schedules the hold's expiry after the commit."""
    patient_id = actor.patient_for(patient_id)
    booking, is_new = await _hold_slot(ctx, actor, slot_id=slot_id, patient_id=patient_id, request_id=request_id)
    if is_new:
        ctx.metrics.holds_created.inc()
    if booking.status is BookingStatus.PENDING:
        await ctx.expiry.schedule(booking)  # a replay re-schedules harmlessly: the job key is the same
    return Created(booking, is_replay=not is_new)


async def _hold_slot(
    ctx: OpsContext, actor: Actor, *, slot_id: int, patient_id: str, request_id: str
) -> tuple[Booking, bool]:
    """The booking transaction, one statement (db/bookings.py has the lock order); True when it made a new booking."""
    async with ctx.connection() as conn:  # no explicit transaction: the one statement is its own
        held = await db.hold_slot(
            conn,
            slot_id=slot_id,
            patient_id=patient_id,
            request_id=request_id,
            actor=actor,
            turnover=ctx.turnover,
            hold_ttl=ctx.hold_ttl,
        )
    if isinstance(held, db.Refusal):
        raise refusal_error(held, slot_id, is_staff=actor.is_staff)
    return effective_booking(held.booking, held.clock), held.is_new


def refusal_error(refusal: db.Refusal, slot_id: int, *, is_staff: bool) -> OrFlowError:
    """The domain error for each refusal code of orflow_book() (migration 0006)."""
    meta = {"slot_id": str(slot_id)}
    details = refusal.details
    match refusal.code:
        case "SLOT_NOT_FOUND":
            return NotFoundError("slot", slot_id)
        case "REQUEST_ID_REUSED":
            return RequestIdReusedError(
                [FieldViolation("request_id", f"was already used for slot {details['slot_id']}; use a new request_id")]
            )
        case "SLOT_STARTED":
            start = datetime.fromisoformat(details["start_time"]).replace(tzinfo=UTC)
            return SlotStartedError(f"slot {slot_id} started at {start.isoformat()}")
        case "SLOT_CANCELLED":
            return SlotCancelledError(f"slot {slot_id} was cancelled", metadata=meta)
        case "SLOT_TAKEN":
            return SlotTakenError(f"slot {slot_id} is already held by another booking", metadata=meta)
        case "ROOM_BUSY":
            return RoomBusyError("the room is booked at an overlapping time", metadata=meta)
        case "SURGEON_BUSY":
            return SurgeonBusyError("the surgeon is booked at an overlapping time", metadata=meta)
        case "PATIENT_BUSY":
            return PatientBusyError("the patient already has a booking at an overlapping time", metadata=meta)
        case "EQUIPMENT_UNAVAILABLE":
            return _equipment_error(details, is_staff=is_staff)
        case "RESOURCE_RETIRED":  # the retired guard on bookings (migration 0010)
            resource, resource_id = str(details["resource"]), str(details["id"])
            return ResourceRetiredError(
                f"{resource} {resource_id} is retired and cannot be booked",
                metadata={"resource": resource, "id": resource_id},
            )
    raise AssertionError(f"orflow_book() refused with an unknown code {refusal.code!r}")


def _equipment_error(details: dict[str, Any], *, is_staff: bool) -> EquipmentUnavailableError:
    """Staff learn the stock; a patient only which equipment is short (inventory is admin-only)."""
    name, needed, owned, in_use = details["equipment"], details["needed"], details["owned"], details["in_use"]
    if not is_staff:
        return EquipmentUnavailableError(
            f"{name} is not available at that time",
            metadata={"equipment_id": str(details["equipment_id"]), "equipment": name},
        )
    return EquipmentUnavailableError(
        f"{name}: {needed} needed, {owned - in_use} of {owned} free at the busiest moment",
        metadata={
            "equipment_id": str(details["equipment_id"]),
            "equipment": name,
            "needed": str(needed),
            "available": str(max(owned - in_use, 0)),
        },
    )


async def _read_booking(conn: Conn, actor: Actor, booking_id: int) -> Booking:
    """The booking as it reads now (an overdue hold reads FAILED), or NOT_FOUND (also when not the actor's)."""
    booking = await db.fetch_booking(conn, booking_id)
    if booking is None:
        raise NotFoundError("booking", booking_id)
    if not actor.may_see(booking):
        raise NotFoundError("booking", booking_id, is_denial=True)  # the same answer; the attempt is recorded
    return effective_booking(booking, await current_time(conn))


async def get_booking(ctx: OpsContext, actor: Actor, booking_id: int) -> Booking:
    async with ctx.connection() as conn:
        return await _read_booking(conn, actor, booking_id)


async def confirm_booking(ctx: OpsContext, actor: Actor, booking_id: int) -> Booking:
    """Confirms a live hold; on failure it writes nothing and says why."""
    async with ctx.connection() as conn:  # one statement, its own transaction
        confirmed = await db.confirm_pending(conn, booking_id, actor=actor)  # names the actor in the same statement
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


async def extend_hold(ctx: OpsContext, actor: Actor, booking_id: int, *, request_id: str) -> Booking:
    """Extends a live hold once by the hold TTL, then schedules its expiry job at the new deadline.

    The old job still fires at the old deadline and finds the hold not yet due (ops/expiry.py); the sweep
    stays the guarantee. A retry with the extension's request_id gets the booking as it is now.
    """
    async with ctx.connection() as conn:  # one statement, its own transaction
        extended = await db.extend_pending(conn, booking_id, by=ctx.hold_ttl, request_id=request_id, actor=actor)
        if extended is None:
            current = await _read_booking(conn, actor, booking_id)  # NOT_FOUND for another patient's
            if request_id and await db.hold_extension_request_id(conn, booking_id) == request_id:
                return current  # a retry of the extension that succeeded
            meta = {"booking_id": str(booking_id), "status": current.status.value}
            if current.status is BookingStatus.PENDING:
                meta["expire_time"] = current.expire_time.isoformat()
                raise HoldAlreadyExtendedError(f"booking {booking_id}'s hold was already extended once", metadata=meta)
            if current.failure_reason is FailureReason.HOLD_EXPIRED:
                raise HoldExpiredError(
                    f"booking {booking_id}'s hold expired at {current.expire_time.isoformat()}", metadata=meta
                )
            raise BookingNotPendingError(f"booking {booking_id} is {current.status.value}, not PENDING", metadata=meta)
    await ctx.expiry.schedule(extended)  # a new job key: the key names the deadline (jobs.py)
    return extended


async def cancel_booking(
    ctx: OpsContext, actor: Actor, booking_id: int, *, reason: CancellationReason | None = None, note: str = ""
) -> Booking:
    """Cancels a live hold or a confirmed (or checked-in) booking, recording why and by whom; frees its slot."""
    async with ctx.connection() as conn:  # one statement, its own transaction
        # names the actor in the same statement
        cancelled = await db.cancel_active(conn, booking_id, actor=actor, reason=reason, note=note)
        if cancelled is None:
            current = await _read_booking(conn, actor, booking_id)
            raise BookingNotActiveError(
                f"booking {booking_id} is {current.status.value}; only PENDING, CONFIRMED or (by staff)"
                " CHECKED_IN bookings can be cancelled",
                metadata={"booking_id": str(booking_id), "status": current.status.value},
            )
    ctx.metrics.holds_cancelled.inc()
    await ctx.expiry.cancel(cancelled)
    return cancelled


async def advance_booking(ctx: OpsContext, actor: Actor, booking_id: int, step: DayStep) -> Booking:
    """One day-of-surgery transition (domain/day.py); any other current state is refused, naming it."""
    async with ctx.connection() as conn:  # one statement, its own transaction
        moved = await db.advance_day_state(conn, booking_id, step, actor=actor)
        if moved is None:
            current = await _read_booking(conn, actor, booking_id)
            raise step.error(
                f"booking {booking_id} is {current.status.value}, not {step.source.value}",
                metadata={"booking_id": str(booking_id), "status": current.status.value},
            )
        return effective_booking(moved, await current_time(conn))


async def reschedule_booking(
    ctx: OpsContext, actor: Actor, booking_id: int, *, slot_id: int, request_id: str
) -> Booking:
    """Moves a booking to another slot in one statement (the rule of CreateBooking); retried once if it raced itself."""
    async with ctx.connection() as conn:  # no explicit transaction: the one statement is its own
        for _ in range(2):
            moved = await db.move_booking(
                conn, booking_id=booking_id, slot_id=slot_id, request_id=request_id, actor=actor, turnover=ctx.turnover
            )
            if not (isinstance(moved, db.Refusal) and moved.code == "BOOKING_MOVED"):
                break
        if isinstance(moved, db.Refusal):
            raise _reschedule_refusal_error(moved, booking_id, slot_id, is_staff=actor.is_staff)
        return await _read_booking(conn, actor, moved.booking_id)


def _reschedule_refusal_error(refusal: db.Refusal, booking_id: int, slot_id: int, *, is_staff: bool) -> OrFlowError:
    """The domain error for orflow_reschedule()'s own codes; the rest are orflow_book()'s."""
    match refusal.code:
        case "BOOKING_NOT_FOUND":
            return NotFoundError("booking", booking_id)
        case "BOOKING_NOT_ACTIVE":
            status = str(refusal.details["status"])
            return BookingNotActiveError(
                f"booking {booking_id} is {status}; only PENDING or CONFIRMED bookings can be rescheduled",
                metadata={"booking_id": str(booking_id), "status": status},
            )
        case "SAME_SLOT":
            return InvalidArgumentError([FieldViolation("slot_id", "is the booking's slot already")])
        case "BOOKING_MOVED":
            return SlotTakenError(f"booking {booking_id} was moved by another request meanwhile; retry")
    return refusal_error(refusal, slot_id, is_staff=is_staff)


async def list_bookings(
    ctx: OpsContext, actor: Actor, filters: BookingFilters, *, page_size: int, page_token: str
) -> tuple[list[Booking], str]:
    """A page of bookings, newest first; a patient's list is always its own."""
    if actor.patient_scope is not None:
        filters = replace(filters, patient_id=actor.patient_for(filters.patient_id))
    key = decode_page_token(page_token, filters, shape=(int,))
    before_id = int(key[0]) if key else None
    async with ctx.connection() as conn:
        rows = await db.list_bookings(conn, filters, before_id=before_id, limit=page_size + 1)
        now = await current_time(conn)
    page = [effective_booking(b, now) for b in rows[:page_size]]
    token = encode_page_token([page[-1].id], filters) if len(rows) > page_size else ""
    return page, token
