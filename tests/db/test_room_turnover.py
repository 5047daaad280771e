"""Turnover per room in the rule functions themselves (migration 0009): p_turnover is the default for a room
without its own, and the functions' signatures are those 0006/0007 published (migration 0010 calls them)."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from tests.factories import future, insert_room, insert_slot

SIGNATURES = {
    "orflow_check_slot_free": "p_slot_id bigint, p_patient_id text, p_turnover interval, p_ignore bigint",
    "orflow_book": (
        "p_slot_id bigint, p_patient_id text, p_request_id text, p_actor text, p_actor_role text,"
        " p_turnover interval, p_hold_ttl interval, OUT outcome text, OUT id bigint, OUT slot_id bigint,"
        " OUT patient_id text, OUT status text, OUT failure_reason text, OUT create_time timestamp with time zone,"
        " OUT expire_time timestamp with time zone, OUT update_time timestamp with time zone, OUT request_id text,"
        " OUT clock timestamp with time zone"
    ),
    "orflow_reschedule": (
        "p_booking_id bigint, p_slot_id bigint, p_patient_scope text, p_request_id text, p_actor text,"
        " p_actor_role text, p_turnover interval, OUT outcome text, OUT booking_id bigint,"
        " OUT clock timestamp with time zone"
    ),
}


@pytest.mark.parametrize("function", list(SIGNATURES))
async def test_the_rule_functions_keep_their_signatures(db: asyncpg.Connection, function: str) -> None:
    rows = await db.fetch(
        "SELECT pg_get_function_arguments(p.oid) AS args FROM pg_proc p WHERE p.proname = $1", function
    )
    assert [r["args"] for r in rows] == [SIGNATURES[function]]


async def book(db: asyncpg.Connection, slot_id: int, patient: str, default: timedelta) -> timedelta:
    """orflow_book() with `default` as p_turnover; the booked room's buffer (room_free_time - end_time)."""
    row = await db.fetchrow(
        "SELECT * FROM orflow_book($1, $2, NULL, 'test', 'admin', $3, interval '2 minutes')", slot_id, patient, default
    )
    assert row is not None and row["outcome"] == "BOOKED"
    buffer: timedelta = await db.fetchval("SELECT room_free_time - end_time FROM bookings WHERE id = $1", row["id"])
    return buffer


@pytest.mark.parametrize(
    ("own", "default", "buffer"),
    [
        (timedelta(minutes=30), timedelta(minutes=10), timedelta(minutes=30)),
        (None, timedelta(minutes=10), timedelta(minutes=10)),
        (timedelta(0), timedelta(minutes=10), timedelta(0)),
    ],
)
async def test_the_room_s_own_turnover_else_the_default(
    db: asyncpg.Connection, own: timedelta | None, default: timedelta, buffer: timedelta
) -> None:
    room = await insert_room(db, turnover=own)
    start = future(30)
    first = await insert_slot(db, room_id=room, start=start, hours=1)
    assert await book(db, first, "p-1", default) == buffer

    # The slot right after the buffer books; one starting inside it is refused ROOM_BUSY (SQLSTATE ORF01).
    inside = await insert_slot(
        db, room_id=room, start=start + timedelta(hours=1) + buffer - timedelta(minutes=1), hours=1
    )
    after = await insert_slot(db, room_id=room, start=start + timedelta(hours=1) + buffer, hours=1)
    if buffer:
        with pytest.raises(asyncpg.PostgresError) as refused:
            await book(db, inside, "p-2", default)
        assert (refused.value.sqlstate, str(refused.value.message)) == ("ORF01", "ROOM_BUSY")
    assert await book(db, after, "p-3", default) == buffer


async def test_a_turnover_outside_0_to_24_hours_is_refused_by_the_database(db: asyncpg.Connection) -> None:
    for bad in (timedelta(minutes=-1), timedelta(hours=24, seconds=1)):
        with pytest.raises(asyncpg.CheckViolationError) as refused:
            await insert_room(db, turnover=bad)
        assert refused.value.constraint_name == "rooms_turnover_check"
