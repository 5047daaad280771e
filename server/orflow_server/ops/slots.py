"""Slot use cases: browse, get, publish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from ..db import bookings as db_bookings
from ..db import inventory as db_inventory
from ..db import slots as db
from ..db.audit import set_actor
from ..db.bookings import Refusal
from ..db.clock import current_time
from ..db.connection import Conn
from ..domain.access import Actor
from ..domain.edits import not_found
from ..domain.errors import FieldViolation, InvalidArgumentError, NotFoundError, ResourceRetiredError, SlotInUseError
from ..domain.filters import DoctorFilters, SlotFilters
from ..domain.models import Booking, Doctor, NewSlot, Slot
from ..domain.paging import decode_page_token, encode_page_token
from ..domain.rules import slot_violations
from ..domain.sites import local_day_window
from .context import OpsContext

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_MICROS = (datetime(9000, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


async def list_slots(
    ctx: OpsContext, filters: SlotFilters, *, page_size: int, page_token: str
) -> tuple[list[Slot], str]:
    """A page of slots; a local day is turned into its UTC window with the site's zone (23 to 25 hours long)."""
    key = decode_page_token(page_token, filters, shape=(int, int))
    if key and int(key[0]) >= _MAX_MICROS:
        raise InvalidArgumentError([FieldViolation("page_token", "is not a token this API issued")])
    after = (_EPOCH + timedelta(microseconds=int(key[0])), int(key[1])) if key else None
    async with ctx.connection() as conn:
        day_window = None
        if filters.day is not None:
            site = await db_inventory.fetch_site(conn, filters.site_id)
            if site is None:
                raise NotFoundError("site", filters.site_id)
            day_window = local_day_window(filters.day, site.time_zone)
        rows = await db.list_slots(
            conn, filters, after=after, limit=page_size + 1, turnover=ctx.turnover, day_window=day_window
        )
    page = rows[:page_size]
    token = encode_page_token([_micros(page[-1].start_time), page[-1].id], filters) if len(rows) > page_size else ""
    return page, token


async def get_slot(ctx: OpsContext, slot_id: int) -> Slot:
    async with ctx.connection() as conn:
        slot = await db.fetch_slot(conn, slot_id, turnover=ctx.turnover)
    if slot is None:
        raise NotFoundError("slot", slot_id)
    return slot


async def create_slot(ctx: OpsContext, actor: Actor, new: NewSlot) -> Slot:
    async with ctx.connection() as conn, conn.transaction():
        await set_actor(conn, actor)
        await _check_in_service(conn, "doctor", [new.doctor_id])
        await _check_in_service(conn, "room", [new.room_id])
        wanted = [need.equipment_id for need in new.required_equipment]
        await _check_in_service(conn, "equipment", wanted)
        inventory = {e.id: e.quantity for e in await db_inventory.list_equipment(conn, wanted)}
        violations = slot_violations(new, await current_time(conn), inventory)
        if violations:
            raise InvalidArgumentError(violations)
        slot_id = await db.insert_slot(conn, new)
        slot = await db.fetch_slot(conn, slot_id, turnover=ctx.turnover)
    assert slot is not None
    return slot


_TABLES: dict[Literal["doctor", "room", "equipment"], str] = {
    "doctor": "doctors",
    "room": "rooms",
    "equipment": "equipment",
}


async def _check_in_service(conn: Conn, kind: Literal["doctor", "room", "equipment"], ids: list[int]) -> None:
    """NOT_FOUND for the first missing id, RESOURCE_RETIRED for the first retired one (a new slot needs neither)."""
    retired = await db_inventory.retire_times(conn, _TABLES[kind], ids)
    for resource_id in ids:
        if resource_id not in retired:
            raise not_found(kind, resource_id)
    for resource_id in ids:
        if retired[resource_id] is not None:
            raise ResourceRetiredError(
                f"{kind} {resource_id} is retired", metadata={"resource": kind, "id": str(resource_id)}
            )


async def cancel_slot(ctx: OpsContext, actor: Actor, slot_id: int, *, note: str) -> tuple[Slot, Booking | None]:
    """Cancels the slot and its active booking in one statement; returns the slot and the booking it cancelled."""
    async with ctx.connection() as conn:  # one statement, its own transaction
        done = await db.cancel_slot(conn, slot_id, note=note, actor=actor)
        if isinstance(done, Refusal):
            if done.code == "SLOT_NOT_FOUND":
                raise NotFoundError("slot", slot_id)
            status = str(done.details["status"])
            raise SlotInUseError(
                f"slot {slot_id}'s case is {status}: it can no longer be cancelled",
                metadata={"slot_id": str(slot_id), "status": status},
            )
        _, booking_id = done
        slot = await db.fetch_slot(conn, slot_id, turnover=ctx.turnover)
        booking = None if booking_id is None else await db_bookings.fetch_booking(conn, booking_id)
    assert slot is not None
    return slot, booking


async def list_doctors(
    ctx: OpsContext, *, query: str, page_size: int, page_token: str, is_retired_shown: bool = False
) -> tuple[list[Doctor], str]:
    filters = DoctorFilters(query=query, is_retired_shown=is_retired_shown)
    key = decode_page_token(page_token, filters, shape=(str, int))
    after = (str(key[0]), int(key[1])) if key else None
    async with ctx.connection() as conn:
        rows = await db_inventory.list_doctors(
            conn, query=query, after=after, limit=page_size + 1, is_retired_shown=is_retired_shown
        )
    page = rows[:page_size]
    token = encode_page_token([page[-1].name, page[-1].id], filters) if len(rows) > page_size else ""
    return page, token
