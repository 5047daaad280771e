"""Deadlines reach the database: a lock wait that outlasts the caller's deadline ends with it.

Each test holds a slot's row lock from a raw connection (a transaction left
open), so a booking of that slot waits in PostgreSQL; lock_timeout and
statement_timeout are set far beyond the deadline, so only the deadline can
end the wait. Afterwards no backend of the server is left waiting, and the
server's pool still books.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from orflow.v1 import booking_pb2, booking_service_pb2, booking_service_pb2_grpc
from orflow_server.app import OrFlowServer, build_server, create_pool
from orflow_server.ops.scheduling import NoQueueExpiryScheduler

from tests.auth import authorized_channel
from tests.conftest import TEST_SETTINGS
from tests.factories import insert_slot

pytestmark = pytest.mark.asyncio(loop_scope="session")

DEADLINE = 0.5
MARGIN = 1.5  # generous: the machine is shared; what matters is that 30 s of lock_timeout did not run
# Only the deadline (or the call timeout under test) can end the wait: the server-wide timeouts are far away.
SLOW_TIMEOUTS = replace(
    TEST_SETTINGS, db_pool_min=1, db_pool_max=2, db_lock_timeout_ms=30_000, db_statement_timeout_ms=60_000
)


@asynccontextmanager
async def running(database_url: str, **overrides: object) -> AsyncIterator[tuple[OrFlowServer, asyncpg.Pool]]:
    """A server built as `orflow server` builds it (create_pool: application_name=orflow, command timeout)."""
    settings = replace(SLOW_TIMEOUTS, **overrides)  # type: ignore[arg-type]
    pool = await create_pool(settings, database_url)
    server = build_server(settings, pool=pool, expiry=NoQueueExpiryScheduler())
    await server.start()
    try:
        yield server, pool
    finally:
        await server.stop(grace=None)
        await pool.close()


@asynccontextmanager
async def row_locked(database_url: str, slot_id: int) -> AsyncIterator[None]:
    """The slot's row locked FOR UPDATE by a transaction that stays open until the block ends."""
    holder = await asyncpg.connect(database_url)
    try:
        async with holder.transaction():
            await holder.execute("SELECT id FROM slots WHERE id = $1 FOR UPDATE", slot_id)
            yield
    finally:
        await holder.close()


async def orflow_backends(db: asyncpg.Connection) -> list[asyncpg.Record]:
    """The server's backends on this database that are running a statement or waiting on a lock."""
    return await db.fetch(
        "SELECT pid, state, wait_event_type, query FROM pg_stat_activity"
        " WHERE application_name = 'orflow' AND datname = current_database()"
        " AND (state <> 'idle' OR wait_event_type = 'Lock')"
    )


async def no_orflow_backend_busy(db: asyncpg.Connection) -> list[asyncpg.Record]:
    """Polls until no backend of the server is busy (a cancel is acknowledged asynchronously); the last look."""
    for _ in range(50):
        busy = await orflow_backends(db)
        if not busy:
            break
        await asyncio.sleep(0.05)
    return busy


def book(slot_id: int, patient_id: str) -> booking_service_pb2.CreateBookingRequest:
    return booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id=patient_id, request_id=patient_id)


async def test_a_lock_wait_ends_with_the_callers_deadline_and_the_pool_books_on(
    db: asyncpg.Connection, database_url: str
) -> None:
    slot_id, *others = [await insert_slot(db) for _ in range(3)]
    async with running(database_url) as (server, _), authorized_channel(f"127.0.0.1:{server.port}") as channel:
        stub = booking_service_pb2_grpc.BookingServiceStub(channel)
        async with row_locked(database_url, slot_id):
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.CreateBooking(book(slot_id, "dl-late"), timeout=DEADLINE)
            took = time.monotonic() - started
            assert failed.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            assert took < DEADLINE + MARGIN, took
            # Still inside the lock holder's transaction: the server's wait was cancelled, not granted.
            assert await no_orflow_backend_busy(db) == []
            # Both pooled connections serve the next callers (pool max 2: a leaked one would show).
            replies = await asyncio.gather(
                *(stub.CreateBooking(book(other, f"dl-next-{other}"), timeout=10) for other in others)
            )
        assert [r.booking.status for r in replies] == [booking_pb2.BOOKING_STATUS_PENDING] * 2
        assert await db.fetchval("SELECT count(*) FROM bookings WHERE slot_id = $1", slot_id) == 0
        # The lock is gone: the same request books now.
        reply = await stub.CreateBooking(book(slot_id, "dl-late"), timeout=10)
        assert reply.booking.slot_id == slot_id


async def test_the_server_answers_the_deadline_itself_with_error_info(
    db: asyncpg.Connection, database_url: str
) -> None:
    """The database work stops just before the deadline, so the caller reads the server's own status."""
    slot_id = await insert_slot(db)
    async with running(database_url) as (server, _), authorized_channel(f"127.0.0.1:{server.port}") as channel:
        stub = booking_service_pb2_grpc.BookingServiceStub(channel)
        async with row_locked(database_url, slot_id):
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.CreateBooking(book(slot_id, "dl-info"), timeout=2.0)
    raw = dict(failed.value.trailing_metadata() or ()).get("grpc-status-details-bin")
    assert failed.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert raw is not None, "grpc's own deadline answered first, not the server"
    info = error_details_pb2.ErrorInfo()
    assert status_pb2.Status.FromString(raw).details[0].Unpack(info)
    assert info.reason == "DEADLINE_EXCEEDED"


async def test_a_call_without_deadline_is_bounded_by_the_call_timeout(
    db: asyncpg.Connection, database_url: str
) -> None:
    """No deadline sent: ORFLOW_DB_CALL_TIMEOUT_SECONDS ends the wait, answered UNAVAILABLE with RetryInfo."""
    slot_id = await insert_slot(db)
    async with (
        running(database_url, db_call_timeout=0.5) as (server, _),
        authorized_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        stub = booking_service_pb2_grpc.BookingServiceStub(channel)
        async with row_locked(database_url, slot_id):
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.CreateBooking(book(slot_id, "dl-none"))
            took = time.monotonic() - started
            assert failed.value.code() is grpc.StatusCode.UNAVAILABLE
            assert took < 0.5 + MARGIN, took  # not the 30 s lock_timeout
            raw = dict(failed.value.trailing_metadata() or ()).get("grpc-status-details-bin")
            assert raw is not None
            details = status_pb2.Status.FromString(raw).details
            assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in details)
            assert await no_orflow_backend_busy(db) == []


async def test_a_cancelled_call_stops_its_transaction(db: asyncpg.Connection, database_url: str) -> None:
    """The caller gives up (no deadline at all): its statement is cancelled in PostgreSQL and rolls back."""
    slot_id = await insert_slot(db)
    async with running(database_url) as (server, _), authorized_channel(f"127.0.0.1:{server.port}") as channel:
        stub = booking_service_pb2_grpc.BookingServiceStub(channel)
        async with row_locked(database_url, slot_id):
            call = stub.CreateBooking(book(slot_id, "dl-cancelled"))
            for _ in range(100):  # until the booking is waiting on the row lock
                if any(r["wait_event_type"] == "Lock" for r in await orflow_backends(db)):
                    break
                await asyncio.sleep(0.02)
            else:
                pytest.fail("the booking never waited on the lock")
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            assert await no_orflow_backend_busy(db) == []
        assert await db.fetchval("SELECT count(*) FROM bookings WHERE slot_id = $1", slot_id) == 0


async def test_a_statement_past_the_pool_command_timeout_ends_and_the_connection_is_reused(
    database_url: str,
) -> None:
    """asyncpg's command timeout (ORFLOW_DB_COMMAND_TIMEOUT_SECONDS) cancels the statement in PostgreSQL."""
    pool = await create_pool(replace(SLOW_TIMEOUTS, db_pool_max=1, db_command_timeout=0.3), database_url)
    try:
        async with pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            with pytest.raises(TimeoutError):
                await conn.execute("SELECT pg_sleep(30)")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == pid  # the same connection, clean
            assert await conn.fetchval("SELECT 1") == 1
            assert not conn.is_in_transaction()
    finally:
        await pool.close()
