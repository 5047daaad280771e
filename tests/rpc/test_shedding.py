"""Load shedding: past the in-flight limit a unary call is refused at once, UNAVAILABLE with RetryInfo."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from orflow.v1 import booking_service_pb2, booking_service_pb2_grpc, slot_service_pb2, slot_service_pb2_grpc
from orflow_server.app import build_server
from orflow_server.domain import errors
from orflow_server.metrics import Metrics
from orflow_server.ops.scheduling import NoQueueExpiryScheduler
from orflow_server.rpc.errors import status_for
from orflow_server.rpc.shedding import InFlightLimit
from orflow_server.settings import UNLIMITED_CALLS, Settings

from tests.auth import authorized_channel
from tests.conftest import TEST_SETTINGS
from tests.factories import insert_slot


def test_the_call_past_the_limit_is_shed_and_a_finished_one_frees_its_place() -> None:
    limit = InFlightLimit(2)
    limit.enter()
    limit.enter()
    with pytest.raises(errors.UnavailableError) as shed:
        limit.enter()
    assert (limit.running, limit.shed) == (2, 1)
    code, status = status_for(shed.value)
    assert code is grpc.StatusCode.UNAVAILABLE
    assert any(d.type_url.endswith("google.rpc.RetryInfo") for d in status.details)
    limit.leave()
    limit.enter()
    assert limit.running == 2


def test_a_call_already_past_its_deadline_is_answered_deadline_exceeded_without_taking_a_place() -> None:
    limit = InFlightLimit(1)
    with pytest.raises(errors.DeadlineExceededError) as late:
        limit.enter_unless_late(-0.01)
    assert (limit.running, limit.late, limit.shed) == (0, 1, 0)
    assert status_for(late.value)[0] is grpc.StatusCode.DEADLINE_EXCEEDED
    limit.enter_unless_late(None)  # no deadline: admitted
    limit.leave()
    limit.enter_unless_late(0.5)  # time left: admitted
    assert limit.running == 1


@pytest.mark.asyncio(loop_scope="session")
async def test_over_the_limit_a_real_server_refuses_at_once_with_retry_info_and_counts_it(
    pool: asyncpg.Pool, db: asyncpg.Connection, database_url: str
) -> None:
    """One call in flight (waiting on a row lock) fills a limit of 1: the next is shed, a stream still opens."""
    metrics = Metrics()
    settings = replace(TEST_SETTINGS, max_inflight_calls=1)
    server = build_server(
        settings, pool=pool, expiry=NoQueueExpiryScheduler(), metrics=metrics, listen_dsn=database_url
    )
    await server.start()
    slot_id = await insert_slot(db)
    holder = await asyncpg.connect(database_url)
    try:
        async with holder.transaction(), authorized_channel(f"127.0.0.1:{server.port}") as channel:
            await holder.execute("SELECT id FROM slots WHERE id = $1 FOR UPDATE", slot_id)
            bookings = booking_service_pb2_grpc.BookingServiceStub(channel)
            request = booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id="shed-1")
            waiting = asyncio.ensure_future(bookings.CreateBooking(request, timeout=5))
            for _ in range(200):  # until the first call waits on the lock, holding the one place
                if await db.fetchval(_LOCK_WAITERS):
                    break
                await asyncio.sleep(0.02)
            with pytest.raises(grpc.aio.AioRpcError) as shed:
                await bookings.GetBooking(booking_service_pb2.GetBookingRequest(booking_id=1), timeout=5)
            stream = slot_service_pb2_grpc.SlotServiceStub(channel).WatchSlots(slot_service_pb2.WatchSlotsRequest())
            first = await stream.read()  # streams are not counted against the limit
            stream.cancel()
            waiting.cancel()
    finally:
        await holder.close()
        await server.stop(grace=None)
    assert shed.value.code() is grpc.StatusCode.UNAVAILABLE
    raw = dict(shed.value.trailing_metadata() or ()).get("grpc-status-details-bin")
    assert isinstance(raw, bytes)
    details = status_pb2.Status.FromString(raw).details
    assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in details)
    info = error_details_pb2.ErrorInfo()
    assert details[0].Unpack(info) and info.reason == "UNAVAILABLE"
    assert isinstance(first, slot_service_pb2.WatchSlotsResponse)
    shed_calls = metrics.rpc_handled.labels("orflow.v1.BookingService", "GetBooking", "unary", "UNAVAILABLE")
    assert shed_calls._value.get() == 1  # counted in the per-RPC metrics like any answered call


_LOCK_WAITERS = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"


def test_grpcs_own_limit_is_what_the_shedder_and_the_stream_limits_admit_unless_set() -> None:
    derived = Settings()
    assert derived.concurrent_rpc_limit == derived.max_inflight_calls + derived.watch_streams_total + UNLIMITED_CALLS
    assert Settings.from_env({"ORFLOW_GRPC_MAX_CONCURRENT_RPCS": "40"}).concurrent_rpc_limit == 40


@pytest.mark.asyncio(loop_scope="session")
async def test_past_grpcs_own_limit_a_call_is_refused_resource_exhausted_before_any_handler(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """One open stream fills a limit of 1; the next call never reaches a handler; closing the stream frees it."""
    metrics = Metrics()
    settings = replace(TEST_SETTINGS, grpc_max_concurrent_rpcs=1)
    server = build_server(
        settings, pool=pool, expiry=NoQueueExpiryScheduler(), metrics=metrics, listen_dsn=database_url
    )
    await server.start()
    try:
        async with authorized_channel(f"127.0.0.1:{server.port}") as channel:
            slots = slot_service_pb2_grpc.SlotServiceStub(channel)
            stream = slots.WatchSlots(slot_service_pb2.WatchSlotsRequest())
            await asyncio.wait_for(stream.read(), 10)  # the stream is running: it holds the one place
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await slots.ListSlots(slot_service_pb2.ListSlotsRequest(), timeout=5)
            assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            seen = metrics.rpc_handled.labels("orflow.v1.SlotService", "ListSlots", "unary", "RESOURCE_EXHAUSTED")
            assert seen._value.get() == 0  # refused by gRPC: no interceptor (the metrics' own) ever saw it
            stream.cancel()
            for _ in range(100):  # the cancelled stream gives its place back
                try:
                    await slots.ListSlots(slot_service_pb2.ListSlotsRequest(), timeout=5)
                    break
                except grpc.aio.AioRpcError as error:
                    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("the limit's place was never given back")
    finally:
        await server.stop(grace=None)
