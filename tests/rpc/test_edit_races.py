"""Edits and retirements racing bookings, from several client processes released together (tests/rpc/
test_concurrency.py's `fire`), each followed by the SQL invariant checks (orflow_tools.testkit.invariants).

Whichever serialized first wins; what must never happen is a double booking, equipment used beyond its
count, an active booking on something retired, a booking whose copy of its slot's facts is stale, or a
call failing with anything but its documented refusals (no deadlock, no INTERNAL).
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from orflow_tools.testkit import invariants

from tests.factories import future, insert_doctor, insert_equipment, insert_room, insert_slot
from tests.rpc.test_bookings import book
from tests.rpc.test_concurrency import Outcome, fire


def admin_call(rpc: str, **request: Any) -> dict[str, Any]:
    return {"admin": rpc, "request": request}


def tally(outcomes: list[Outcome], *, rpc: str | None) -> Counter[tuple[str, str]]:
    """(code, reason) of each outcome of one admin rpc (None: the bookings), "OK" for a success."""
    return Counter(("OK", "") if o["ok"] else (o["code"], o["reason"]) for o in outcomes if o.get("rpc") == rpc)


async def assert_no_clash(db: asyncpg.Connection) -> None:
    assert await invariants.violations(db) == invariants.NO_VIOLATIONS
    assert {e: pq for e, pq in (await invariants.peak_use(db)).items() if pq[0] > pq[1]} == {}
    # Every booking's copy of its slot's facts is the slot's (the deferred foreign key, checked at commit).
    stale = await db.fetchval(
        "SELECT count(*) FROM bookings b JOIN slots s ON s.id = b.slot_id"
        " WHERE (b.room_id, b.doctor_id, b.start_time, b.end_time)"
        " <> (s.room_id, s.doctor_id, s.start_time, s.end_time)"
    )
    assert stale == 0


async def test_lowering_a_count_while_bookings_race_in_never_over_uses(db: asyncpg.Connection, target: str) -> None:
    """40 overlapping slots (own rooms and surgeons) each needing 1 of 10 units, booked while four admins
    lower the count to 8, 6, 4 and 2: the count ends at whatever the last lowering that fitted set, and the
    booked cases never need more than it."""
    item = await insert_equipment(db, name="Ventilator", quantity=10)
    base = future(200)
    slot_ids = [
        await insert_slot(db, start=base + timedelta(seconds=20 * i), hours=2, equipment=[(item, 1)]) for i in range(40)
    ]
    calls: list[dict[str, Any]] = [{"slot_id": s, "patient_id": f"lower-{i}"} for i, s in enumerate(slot_ids)]
    for quantity in (8, 6, 4, 2):
        calls.insert(
            quantity * 4,
            admin_call("UpdateEquipment", equipment={"id": item, "quantity": quantity}, updateMask="quantity"),
        )

    outcomes = await fire(target, calls)

    await assert_no_clash(db)
    lowerings = tally(outcomes, rpc="UpdateEquipment")
    assert set(lowerings) <= {("OK", ""), ("FAILED_PRECONDITION", "EQUIPMENT_IN_USE")}
    booked = tally(outcomes, rpc=None)
    assert set(booked) <= {("OK", ""), ("ABORTED", "EQUIPMENT_UNAVAILABLE")}
    final = await db.fetchval("SELECT quantity FROM equipment WHERE id = $1", item)
    active = await db.fetchval(
        "SELECT count(*) FROM bookings WHERE status = ANY($1::text[])", list(invariants.ACTIVE_STATUSES)
    )
    print(f"\nlowering race: lowerings {dict(lowerings)}, bookings {dict(booked)}, final {final}, active {active}")
    assert active == booked[("OK", "")] <= final
    assert (final == 10) == (lowerings[("OK", "")] == 0)


async def test_a_slot_moved_while_it_is_being_booked(db: asyncpg.Connection, target: str, bookings: Any) -> None:
    """Bookings of slot S race moves of S: onto a time its room already holds (ROOM_BUSY once anything
    holds S; and once S sits there, bookings of it are ROOM_BUSY) and back to a free time. At most one
    booking holds S, and it has S's final facts."""
    room = await insert_room(db)
    base = future(220)
    taken = await insert_slot(db, room_id=room, start=base + timedelta(hours=6), hours=2)
    moving = await insert_slot(db, room_id=room, start=base, hours=2)
    await book(bookings, taken, patient_id="move-holder")
    calls: list[dict[str, Any]] = [{"slot_id": moving, "patient_id": f"move-{i}"} for i in range(30)]
    clash = base + timedelta(hours=7)
    for i in range(4):
        # Even: onto the time `taken` holds in room R; odd: back to a free time in R.
        start = clash if i % 2 == 0 else base + timedelta(hours=i)
        calls.insert(
            2 + 7 * i,
            admin_call(
                "UpdateSlot",
                slot={
                    "id": moving,
                    "room": {"id": room},
                    "startTime": start.isoformat(),
                    "endTime": (start + timedelta(hours=2)).isoformat(),
                },
                updateMask="room.id,startTime,endTime",
            ),
        )

    outcomes = await fire(target, calls)

    await assert_no_clash(db)
    assert set(tally(outcomes, rpc="UpdateSlot")) <= {("OK", ""), ("ABORTED", "ROOM_BUSY")}
    booked = tally(outcomes, rpc=None)
    assert set(booked) <= {("OK", ""), ("ABORTED", "SLOT_TAKEN"), ("ABORTED", "ROOM_BUSY")}
    holders = await db.fetch(
        "SELECT b.start_time, s.start_time AS slot_start FROM bookings b JOIN slots s ON s.id = b.slot_id"
        " WHERE b.slot_id = $1 AND b.status = ANY($2::text[])",
        moving,
        list(invariants.ACTIVE_STATUSES),
    )
    moves = dict(tally(outcomes, rpc="UpdateSlot"))
    print(f"\nmove race: moves {moves}, bookings {dict(booked)}, holders {len(holders)}")
    assert len(holders) <= 1 and all(h["start_time"] == h["slot_start"] for h in holders)
    assert booked[("OK", "")] == len(holders)


@pytest.mark.parametrize("kind", ["room", "doctor", "equipment"])
async def test_a_retire_racing_bookings_leaves_nothing_active_on_it(
    db: asyncpg.Connection, target: str, kind: str
) -> None:
    """30 future slots sharing one room, surgeon or equipment type (at separate times), booked while two
    admins retire it cancelling its bookings and two retire it without: every booking either committed
    first (and is cancelled, or made the plain retire fail) or is refused as retired."""
    base = future(240)
    room, doctor, item = await insert_room(db), await insert_doctor(db), await insert_equipment(db, quantity=50)
    shared = {"room": {"room_id": room}, "doctor": {"doctor_id": doctor}, "equipment": {"equipment": [(item, 1)]}}[kind]
    slot_ids = [await insert_slot(db, start=base + timedelta(hours=3 * i), hours=2, **shared) for i in range(30)]
    resource_id = {"room": room, "doctor": doctor, "equipment": item}[kind]
    rpc = f"Retire{kind.capitalize()}"
    calls: list[dict[str, Any]] = [{"slot_id": s, "patient_id": f"retire-{kind}-{i}"} for i, s in enumerate(slot_ids)]
    for position, cancel in ((5, False), (12, True), (20, False), (27, True)):
        calls.insert(position, admin_call(rpc, **{f"{kind}Id": resource_id, "cancelBookings": cancel, "note": "race"}))

    outcomes = await fire(target, calls)

    await assert_no_clash(db)
    retires = tally(outcomes, rpc=rpc)
    assert set(retires) <= {("OK", ""), ("FAILED_PRECONDITION", "RESOURCE_IN_USE")}
    assert retires[("OK", "")] >= 2  # the two that cancel always succeed
    booked = tally(outcomes, rpc=None)
    assert set(booked) <= {("OK", ""), ("FAILED_PRECONDITION", "RESOURCE_RETIRED")}
    still_active = await db.fetchval(
        "SELECT count(*) FROM bookings WHERE slot_id = ANY($1::bigint[]) AND status = ANY($2::text[])",
        slot_ids,
        list(invariants.ACTIVE_STATUSES),
    )
    assert still_active == 0
    cancelled = await db.fetchval(
        "SELECT count(*) FROM bookings WHERE slot_id = ANY($1::bigint[]) AND status = 'CANCELLED'"
        " AND cancellation_note = 'race'",
        slot_ids,
    )
    print(f"\nretire race ({kind}): retires {dict(retires)}, bookings {dict(booked)}, cancelled {cancelled}")
    assert cancelled == booked[("OK", "")]
