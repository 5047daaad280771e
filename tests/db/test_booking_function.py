"""The booking transaction's server-side function (migration 0006): its peak rule, rollback and locks.

The refusal codes and their errors are covered through the RPCs
(tests/rpc/test_bookings.py, test_concurrency.py); here, what only the
database can show.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest
from orflow.v1 import booking_service_pb2, booking_service_pb2_grpc
from orflow_server.db.bookings import PATIENT_LOCK_SPACE
from orflow_server.domain.models import Usage
from orflow_server.domain.rules import peak_usage

from tests.factories import error_details, insert_doctor, insert_equipment, insert_room, insert_slot, snapshot

BASE = datetime(2030, 1, 1, tzinfo=UTC)
Interval = tuple[float, float, int]  # start hour, end hour, quantity


def at(hour: float) -> datetime:
    return BASE + timedelta(hours=hour)


async def _peaks_both_ways(
    conn: asyncpg.Connection, uses: Sequence[Interval], window: tuple[float, float]
) -> tuple[int, int]:
    """Stores each use as an active booking, then evaluates the SQL function and the Python rule on those rows."""
    equipment = await insert_equipment(conn, quantity=1000)
    other = await insert_equipment(conn, quantity=1000)  # another type's use never counts
    for n, (lo, hi, quantity) in enumerate(uses):
        slot = await insert_slot(conn, start=at(lo), hours=hi - lo, equipment=[(equipment, quantity), (other, 7)])
        await conn.execute(
            """
            INSERT INTO bookings (slot_id, room_id, doctor_id, start_time, end_time, room_free_time,
                                  patient_id, status, create_time, expire_time, update_time)
            SELECT id, room_id, doctor_id, start_time, end_time, end_time, $2, 'CONFIRMED', now(), now(), now()
            FROM slots WHERE id = $1
            """,
            slot,
            f"p-{n}",
        )
    start, end = at(window[0]), at(window[1])
    in_sql = await conn.fetchval("SELECT orflow_equipment_peak($1, tstzrange($2, $3, '[)'))", equipment, start, end)
    rows = await conn.fetch(
        """
        SELECT b.start_time, b.end_time, se.quantity
        FROM bookings b JOIN slot_equipment se ON se.slot_id = b.slot_id
        WHERE se.equipment_id = $1 AND b.status IN ('PENDING', 'CONFIRMED')
        """,
        equipment,
    )
    in_python = peak_usage((Usage(r["start_time"], r["end_time"], r["quantity"]) for r in rows), start, end)
    return int(in_sql), in_python


class _RollBack(Exception):
    pass


async def _agree(conn: asyncpg.Connection, uses: Sequence[Interval], window: tuple[float, float]) -> int:
    """Both peaks, in a transaction rolled back afterwards; asserts they agree and returns the peak."""
    peaks: tuple[int, int] = (-1, -2)
    with pytest.raises(_RollBack):
        async with conn.transaction():
            peaks = await _peaks_both_ways(conn, uses, window)
            raise _RollBack
    assert peaks[0] == peaks[1], (uses, window, peaks)
    return peaks[0]


@pytest.mark.parametrize(
    ("uses", "window", "expected"),
    [
        pytest.param([], (8, 12), 0, id="empty"),
        pytest.param([(9, 10, 1)], (8, 12), 1, id="one"),
        pytest.param([(8, 10, 1), (10, 12, 1)], (8, 12), 1, id="back-to-back-half-open"),
        pytest.param([(8, 12, 1), (9, 10, 1)], (8, 12), 2, id="nested"),
        pytest.param([(8, 12, 1), (9, 11, 1), (9.5, 10, 1)], (8, 12), 3, id="nested-three"),
        pytest.param([(6, 9, 1), (11, 14, 1)], (8, 12), 1, id="partially-outside-clipped"),
        pytest.param([(6, 9, 1), (8.5, 13, 1)], (8, 12), 2, id="overlap-inside-window"),
        pytest.param([(6, 8, 1), (12, 14, 1)], (8, 12), 0, id="touching-window-edges-outside"),
        pytest.param([(6, 9, 1), (6, 8.5, 1)], (9, 12), 0, id="overlap-only-before-window"),
        pytest.param([(8, 10, 3), (9, 11, 2)], (8, 12), 5, id="quantity-weights"),
        pytest.param([(8, 10, 3), (10, 12, 4)], (8, 12), 4, id="quantity-back-to-back"),
        pytest.param([(8, 9, 1), (10, 11, 1)], (8, 11), 1, id="sum-would-overcount"),
        pytest.param([(8, 9, 2), (9, 10, 2), (10, 11, 2)], (8, 11), 2, id="chain-of-three"),
        pytest.param([(7, 13, 2), (8, 12, 1)], (9, 10), 3, id="both-cover-the-whole-window"),
        pytest.param([(9, 10, 1), (9, 10, 4)], (8, 12), 5, id="same-interval-twice"),
        pytest.param([(11.5, 14, 1), (6, 8.25, 2)], (8, 12), 2, id="one-at-each-edge"),
    ],
)
async def test_sql_peak_agrees_with_the_python_rule(
    db: asyncpg.Connection, uses: list[Interval], window: tuple[float, float], expected: int
) -> None:
    assert await _agree(db, uses, window) == expected


async def test_sql_peak_agrees_with_the_python_rule_on_random_intervals(db: asyncpg.Connection) -> None:
    """Boundaries on a half-hour grid, so ends and starts often coincide."""
    rng = random.Random(20301)
    for _ in range(40):
        uses = []
        for _ in range(rng.randint(0, 6)):
            lo = rng.randint(0, 16) / 2
            uses.append((lo, lo + rng.randint(1, 8) / 2, rng.randint(1, 4)))
        w_lo = rng.randint(0, 14) / 2
        await _agree(db, uses, (w_lo, w_lo + rng.randint(1, 8) / 2))


async def test_a_refused_booking_also_rolls_back_the_overdue_holds_it_failed(
    db: asyncpg.Connection, bookings: booking_service_pb2_grpc.BookingServiceStub
) -> None:
    """Nothing is written on any error: the function fails overdue holds first, then refuses (SURGEON_BUSY)."""
    room, doctor = await insert_room(db), await insert_doctor(db)
    start = datetime.now(UTC) + timedelta(days=3)
    wanted = await insert_slot(db, room_id=room, doctor_id=doctor, start=start)
    overdue = await insert_slot(db, room_id=room, start=start)  # same room and time, another surgeon
    busy = await insert_slot(db, doctor_id=doctor, start=start)  # same surgeon and time, another room
    await db.execute(
        """
        INSERT INTO bookings (slot_id, room_id, doctor_id, start_time, end_time, room_free_time,
                              patient_id, status, create_time, expire_time, update_time)
        SELECT id, room_id, doctor_id, start_time, end_time, end_time, patient, status,
               now() - interval '5 minutes', now() + expires, now() - interval '5 minutes'
        FROM (VALUES ($1::bigint, 'p-overdue', 'PENDING', interval '-1 minute'),
                     ($2::bigint, 'p-busy', 'CONFIRMED', interval '2 minutes')) v(slot, patient, status, expires)
        JOIN slots ON slots.id = v.slot
        """,
        overdue,
        busy,
    )
    before = await snapshot(db)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await bookings.CreateBooking(booking_service_pb2.CreateBookingRequest(slot_id=wanted, patient_id="p-1"))
    info, _ = error_details(refused.value)
    assert info is not None and info.reason == "SURGEON_BUSY"
    assert await snapshot(db) == before
    assert await db.fetchval("SELECT status FROM bookings WHERE patient_id = 'p-overdue'") == "PENDING"


async def test_the_function_takes_the_patient_advisory_lock_of_the_documented_namespace(
    db: asyncpg.Connection, pool: asyncpg.Pool, bookings: booking_service_pb2_grpc.BookingServiceStub
) -> None:
    slot = await insert_slot(db)
    async with pool.acquire() as locker:
        lock = locker.transaction()
        await lock.start()
        try:
            await locker.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", PATIENT_LOCK_SPACE, "p-locked")
            call = asyncio.ensure_future(
                bookings.CreateBooking(booking_service_pb2.CreateBookingRequest(slot_id=slot, patient_id="p-locked"))
            )
            async with asyncio.timeout(10):
                while not await db.fetchval(  # noqa: ASYNC110 - polling PostgreSQL
                    "SELECT count(*) FROM pg_stat_activity WHERE $1::int = ANY(pg_blocking_pids(pid))",
                    locker.get_server_pid(),
                ):
                    await asyncio.sleep(0.01)
            assert not call.done()
            assert await db.fetchval("SELECT count(*) FROM bookings") == 0
        finally:
            await lock.rollback()
        booked = await call
    assert booked.booking.patient_id == "p-locked"
