"""Passing faults are UNAVAILABLE with RetryInfo, never INTERNAL: the translation table, then real lost connections.

The load test builds the server exactly as `orflow server` does (create_pool from
settings, so its connections carry application_name=orflow), terminates every one
of its connections to this session's database again and again while bookings and
short-deadline calls (cancelled mid-statement) run, and checks every answer's code
and then the invariants in SQL.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from orflow.v1 import booking_service_pb2, booking_service_pb2_grpc
from orflow_server.app import build_server, create_pool
from orflow_server.db.errors import translate_transient
from orflow_server.domain import errors
from orflow_server.ops.scheduling import NoQueueExpiryScheduler
from orflow_server.rpc.errors import status_for
from orflow_tools.testkit import invariants

from tests.auth import authorized_channel
from tests.conftest import TEST_SETTINGS
from tests.factories import insert_slot

TRANSIENT = [
    asyncpg.SerializationError("could not serialize access"),
    asyncpg.DeadlockDetectedError("deadlock detected"),
    asyncpg.LockNotAvailableError("canceling statement due to lock timeout"),
    asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
    asyncpg.TooManyConnectionsError("too many connections"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.InterfaceError("cannot perform operation: connection is closed"),
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError(),
    asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
    asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
]
NOT_TRANSIENT = [
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    asyncpg.UndefinedColumnError("column x does not exist"),
    asyncpg.InternalClientError("cannot switch to state 12; another operation (11) is in progress"),
    asyncpg.InternalClientError("unknown error in protocol implementation"),
    ValueError("a bug"),
    KeyError("a bug"),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_passing_faults_are_unavailable_with_retry_info(exc: BaseException) -> None:
    translated = translate_transient(exc)
    assert isinstance(translated, errors.UnavailableError)
    code, status = status_for(translated)
    assert code is grpc.StatusCode.UNAVAILABLE
    retry = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    assert len(retry) == 1


@pytest.mark.parametrize("exc", NOT_TRANSIENT, ids=lambda e: type(e).__name__)
def test_bugs_stay_bugs(exc: BaseException) -> None:
    assert translate_transient(exc) is None


CALLS = 240
DEADLINED_EVERY = 4  # every 4th call has a deadline shorter than the booking takes under this load


async def _terminate_forever(admin: asyncpg.Connection, counts: Counter[str]) -> None:
    while True:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'orflow' AND datname = current_database() AND pid <> pg_backend_pid()"
        )
        counts["terminated"] += killed
        await asyncio.sleep(0.02)


async def _book(stub: booking_service_pb2_grpc.BookingServiceStub, slot_id: int, n: int) -> tuple[str, int]:
    request = booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id=f"tf-{n}", request_id=f"tf-{n}")
    timeout = 0.01 if n % DEADLINED_EVERY == 0 else 30.0
    try:
        reply = await stub.CreateBooking(request, timeout=timeout)
    except grpc.aio.AioRpcError as error:
        raw = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
        if error.code() is grpc.StatusCode.UNAVAILABLE and raw is not None:
            status = status_pb2.Status.FromString(raw)
            assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details), status
        return error.code().name, 0
    return "OK", reply.booking.id


@pytest.mark.slow  # about 15 s: 240 calls while every server connection is terminated every 20 ms
@pytest.mark.asyncio(loop_scope="session")
async def test_connections_terminated_under_load_answer_no_internal(db: asyncpg.Connection, database_url: str) -> None:
    slot_ids = [await insert_slot(db) for _ in range(CALLS // 2)]  # two callers per slot: conflicts too
    settings = replace(TEST_SETTINGS, db_pool_min=4, db_pool_max=8, max_inflight_calls=10_000)
    pool = await create_pool(settings, database_url)
    server = build_server(settings, pool=pool, expiry=NoQueueExpiryScheduler())
    await server.start()
    killer_conn = await asyncpg.connect(database_url)
    counts: Counter[str] = Counter()
    killer = asyncio.create_task(_terminate_forever(killer_conn, counts))
    try:
        async with authorized_channel(f"127.0.0.1:{server.port}") as channel:
            stub = booking_service_pb2_grpc.BookingServiceStub(channel)
            outcomes = await asyncio.gather(*(_book(stub, slot_ids[n % len(slot_ids)], n) for n in range(CALLS)))
            killer.cancel()
            # After the storm the pool has refilled: a plain call succeeds.
            after = await _book(stub, await insert_slot(db), 1)
    finally:
        killer.cancel()
        await asyncio.gather(killer, return_exceptions=True)
        await killer_conn.close()
        await server.stop(grace=None)
        await pool.close()
    codes = Counter(code for code, _ in outcomes)
    print(f"\nconnections terminated under load: {dict(codes)}, backends terminated {counts['terminated']}")
    assert counts["terminated"] > 0
    assert codes["INTERNAL"] == 0 and codes["UNKNOWN"] == 0, codes
    assert set(codes) <= {"OK", "ABORTED", "UNAVAILABLE", "DEADLINE_EXCEEDED"}, codes
    assert after[0] == "OK"
    assert await invariants.violations(db) == invariants.NO_VIOLATIONS
    acknowledged = [booking_id for code, booking_id in outcomes if code == "OK"]
    present = await db.fetchval("SELECT count(*) FROM bookings WHERE id = ANY($1::bigint[])", acknowledged)
    assert present == len(acknowledged)
