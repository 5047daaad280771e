"""Holds expire on time through a real `orflow worker` process on real Redis; the sweep is the guarantee."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, timedelta

import asyncpg
import grpc
import pytest
import pytest_asyncio
from orflow.v1 import booking_pb2, booking_service_pb2, booking_service_pb2_grpc
from orflow_server.app import build_server
from orflow_server.domain.models import Booking
from orflow_server.jobs import SaqExpiryScheduler, expiry_job_key
from orflow_server.ops.context import OpsContext
from orflow_server.ops.expiry import expire_booking
from orflow_server.ops.scheduling import NoQueueExpiryScheduler
from orflow_tools.testkit.ports import free_port
from saq import Job, Queue, Status

from tests.auth import authorized_channel
from tests.conftest import TEST_SETTINGS, ServerFactory
from tests.factories import error_details, insert_slot, make_booking, snapshot
from tests.rpc.test_watch_slots import BOOKED, CONFIRMED, RELEASED, Watcher, barrier
from tests.test_metrics import scrape

TTL = timedelta(seconds=2)
Book = booking_service_pb2.CreateBookingRequest
WorkerFactory = Callable[..., Awaitable[asyncio.subprocess.Process]]


async def until_worker_ready(queue: Queue, proc: asyncio.subprocess.Process, known: set[str]) -> None:
    """Until the new worker announces itself in Redis: SAQ does that after the start-up sweep, as it starts polling."""
    deadline = time.monotonic() + 15
    while not set((await queue.info())["workers"]) - known:
        assert proc.returncode is None, "the worker exited at start-up"
        assert time.monotonic() < deadline, "the worker did not start within 15 s"
        await asyncio.sleep(0.05)


async def make_overdue(db: asyncpg.Connection, booking_ids: list[int]) -> None:
    """Moves holds' expire_time into the past by the database clock, as if their TTL had passed."""
    await db.execute(
        "UPDATE bookings SET expire_time = clock_timestamp() - interval '1 second' WHERE id = ANY($1::bigint[])",
        booking_ids,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def start_worker(database_url: str, redis_url: str, queue_name: str) -> AsyncIterator[WorkerFactory]:
    """Starts real worker processes; every one still running is stopped after the test."""
    started: list[asyncio.subprocess.Process] = []

    async def start(
        *, queue: str = queue_name, sweep_seconds: int = 59, metrics_addr: str = "127.0.0.1:0"
    ) -> asyncio.subprocess.Process:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORFLOW_")}
        env.update(
            ORFLOW_DATABASE_URL=database_url,
            ORFLOW_REDIS_URL=redis_url,
            ORFLOW_QUEUE_NAME=queue,
            ORFLOW_SWEEP_SECONDS=str(sweep_seconds),
            ORFLOW_WORKER_METRICS_ADDR=metrics_addr,
        )
        queue_of_worker = Queue.from_url(redis_url, name=queue)
        known = set((await queue_of_worker.info())["workers"])
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "orflow_server",
            "worker",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        started.append(proc)
        try:
            await until_worker_ready(queue_of_worker, proc, known)
        finally:
            await queue_of_worker.disconnect()
        return proc

    yield start
    for proc in started:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


@pytest_asyncio.fixture(loop_scope="session")
async def short_holds(start_server: ServerFactory) -> booking_service_pb2_grpc.BookingServiceStub:
    target = await start_server(hold_ttl=TTL)
    return booking_service_pb2_grpc.BookingServiceStub(authorized_channel(target))


def booking_from_proto(booking: booking_pb2.Booking) -> Booking:
    """Only the fields the job key uses."""
    return make_booking(
        id=booking.id,
        create_time=booking.create_time.ToDatetime(tzinfo=UTC),
        expire_time=booking.expire_time.ToDatetime(tzinfo=UTC),
    )


async def stored_status(db: asyncpg.Connection, booking_id: int) -> str:
    """The row itself, not the read model (which shows an overdue hold FAILED before any job runs)."""
    return str(await db.fetchval("SELECT status FROM bookings WHERE id = $1", booking_id))


async def wait_until_stored(db: asyncpg.Connection, booking_ids: list[int], status: str, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        rows = await db.fetch("SELECT status FROM bookings WHERE id = ANY($1::bigint[])", booking_ids)
        if len(rows) == len(booking_ids) and all(r["status"] == status for r in rows):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"bookings {booking_ids} did not all become {status} within {within} s")


async def wait_for_job(queue: Queue, key: str, within: float = 5.0) -> Job | None:
    """The job once it is in the queue (None if it never came)."""
    deadline = time.monotonic() + within
    while (job := await queue.job(key)) is None and time.monotonic() < deadline:  # noqa: ASYNC110 - polling Redis
        await asyncio.sleep(0.01)
    return job


async def test_hold_expires_within_ttl_plus_one_second(db, short_holds, start_worker) -> None:  # type: ignore[no-untyped-def]
    metrics_port = free_port()
    await start_worker(metrics_addr=f"127.0.0.1:{metrics_port}")
    slot_id = await insert_slot(db)
    booking = (await short_holds.CreateBooking(Book(slot_id=slot_id, patient_id="p-1"))).booking
    await wait_until_stored(db, [booking.id], "FAILED", within=TTL.total_seconds() + 3)
    lag = await db.fetchval(
        "SELECT extract(epoch FROM update_time - expire_time) FROM bookings WHERE id = $1", booking.id
    )
    assert 0 <= lag < 1.0, f"expired {lag:.3f} s after expire_time"
    reason = await db.fetchval("SELECT failure_reason FROM bookings WHERE id = $1", booking.id)
    assert reason == "HOLD_EXPIRED"
    # The worker counts after its commit: wait for the count rather than race it.
    for _ in range(100):
        samples = await asyncio.to_thread(scrape, metrics_port)
        if "orflow_holds_expired_total{trigger=job}" in samples:
            break
        await asyncio.sleep(0.05)
    assert samples["orflow_holds_expired_total{trigger=job}"] == 1
    assert samples["orflow_hold_expiry_lag_seconds_count"] == 1
    assert "orflow_expiry_queue_depth" in samples


async def test_confirm_just_before_ttl_wins_and_stays_confirmed(  # type: ignore[no-untyped-def]
    db, short_holds, start_worker, saq_queue: Queue
) -> None:
    await start_worker()
    slot_id = await insert_slot(db)
    booking = (await short_holds.CreateBooking(Book(slot_id=slot_id, patient_id="p-1"))).booking
    # 0.3 s of the hold left by the database clock: "just before the TTL", without sleeping towards it.
    await db.execute(
        "UPDATE bookings SET expire_time = clock_timestamp() + interval '0.3 seconds' WHERE id = $1", booking.id
    )
    confirmed = await short_holds.ConfirmBooking(booking_service_pb2.ConfirmBookingRequest(booking_id=booking.id))
    assert confirmed.booking.status == booking_pb2.BOOKING_STATUS_CONFIRMED
    # Past the hold's expire_time, and past its expiry job: taken off the schedule (ABORTING, for a job not yet
    # due), aborted, or (had the abort failed) run to completion.
    key = expiry_job_key(booking_from_proto(booking))
    deadline = time.monotonic() + TTL.total_seconds() + 3
    while time.monotonic() < deadline:
        job = await saq_queue.job(key)
        is_job_done = job is None or job.status in (Status.ABORTING, Status.ABORTED, Status.COMPLETE)
        if is_job_done and await db.fetchval(
            "SELECT clock_timestamp() > expire_time FROM bookings WHERE id = $1", booking.id
        ):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the hold's expire_time did not pass, or its expiry job neither ran nor was aborted")
    assert await stored_status(db, booking.id) == "CONFIRMED"


async def test_confirm_after_ttl_fails_and_changes_nothing(db, short_holds, start_worker) -> None:  # type: ignore[no-untyped-def]
    await start_worker()
    slot_id = await insert_slot(db)
    booking = (await short_holds.CreateBooking(Book(slot_id=slot_id, patient_id="p-1"))).booking
    await wait_until_stored(db, [booking.id], "FAILED", within=TTL.total_seconds() + 3)
    before = await snapshot(db)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await short_holds.ConfirmBooking(booking_service_pb2.ConfirmBookingRequest(booking_id=booking.id))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info, _ = error_details(refused.value)
    assert info is not None and info.reason == "HOLD_EXPIRED"
    assert await snapshot(db) == before
    rebooked = await short_holds.CreateBooking(Book(slot_id=slot_id, patient_id="p-2"))
    assert rebooked.booking.status == booking_pb2.BOOKING_STATUS_PENDING


async def test_an_extended_hold_outlives_its_first_deadline_and_its_own_job_expires_it(  # type: ignore[no-untyped-def]
    db, short_holds, start_worker, saq_queue: Queue
) -> None:
    """ExtendHold schedules a second job at the new deadline; the first one, at the old deadline, does nothing."""
    await start_worker()  # sweeps only every 59 s: any expiry within this test is a job's
    slot_id = await insert_slot(db)
    held = (await short_holds.CreateBooking(Book(slot_id=slot_id, patient_id="p-1"))).booking
    extended = (
        await short_holds.ExtendHold(booking_service_pb2.ExtendHoldRequest(booking_id=held.id, request_id="ext-1"))
    ).booking
    first_deadline, new_deadline = held.expire_time.ToDatetime(tzinfo=UTC), extended.expire_time.ToDatetime(tzinfo=UTC)
    assert new_deadline - first_deadline == TTL
    assert await wait_for_job(saq_queue, expiry_job_key(booking_from_proto(extended))) is not None

    # Until half a second past the first deadline by the database clock (its job ran by then).
    await db.execute(
        "SELECT pg_sleep(greatest(0, extract(epoch FROM $1::timestamptz - clock_timestamp()) + 0.5))",
        first_deadline,
    )
    assert await stored_status(db, held.id) == "PENDING"  # past the first deadline, still held
    await wait_until_stored(db, [held.id], "FAILED", within=TTL.total_seconds() + 3)
    lag = await db.fetchval("SELECT extract(epoch FROM update_time - expire_time) FROM bookings WHERE id = $1", held.id)
    assert 0 <= lag < 1.0, f"expired {lag:.3f} s after the extended expire_time"


async def test_cancel_frees_the_slot_at_once_and_aborts_the_job(db, short_holds, saq_queue: Queue) -> None:  # type: ignore[no-untyped-def]
    slot_id = await insert_slot(db)
    booking = (await short_holds.CreateBooking(Book(slot_id=slot_id, patient_id="p-1"))).booking
    key = expiry_job_key(booking_from_proto(booking))
    job = await wait_for_job(saq_queue, key)  # enqueued off the booking's critical path, moments later
    assert job is not None and job.status == Status.QUEUED
    await short_holds.CancelBooking(booking_service_pb2.CancelBookingRequest(booking_id=booking.id))
    next_patient = await short_holds.CreateBooking(Book(slot_id=slot_id, patient_id="p-2"))
    assert next_patient.booking.status == booking_pb2.BOOKING_STATUS_PENDING
    job = await saq_queue.job(key)
    assert job is None or job.status in (Status.ABORTING, Status.ABORTED)


async def test_bookings_succeed_with_redis_unreachable_and_the_sweep_expires_them(  # type: ignore[no-untyped-def]
    db, pool, start_worker, saq_queue: Queue
) -> None:
    unreachable = Queue.from_url("redis://127.0.0.1:1/0", name="unreachable")
    server = build_server(
        replace(TEST_SETTINGS, hold_ttl=timedelta(seconds=1)), pool=pool, expiry=SaqExpiryScheduler(unreachable)
    )
    await server.start()
    try:
        async with authorized_channel(f"127.0.0.1:{server.port}") as channel:
            stub = booking_service_pb2_grpc.BookingServiceStub(channel)
            ids = [
                (await stub.CreateBooking(Book(slot_id=await insert_slot(db), patient_id=f"p-{i}"))).booking.id
                for i in range(5)
            ]
            made = [(await stub.GetBooking(booking_service_pb2.GetBookingRequest(booking_id=i))).booking for i in ids]
    finally:
        await server.stop(grace=None)
    await make_overdue(db, ids)
    assert {await stored_status(db, i) for i in ids} == {"PENDING"}
    assert [await saq_queue.job(expiry_job_key(booking_from_proto(b))) for b in made] == [None] * len(ids)
    await start_worker(sweep_seconds=1)
    await wait_until_stored(db, ids, "FAILED", within=5)


async def test_worker_down_then_restarted_fails_every_overdue_hold_on_its_first_sweep(  # type: ignore[no-untyped-def]
    db, short_holds, start_worker
) -> None:
    worker = await start_worker()
    ids = [
        (await short_holds.CreateBooking(Book(slot_id=await insert_slot(db), patient_id=f"p-{i}"))).booking.id
        for i in range(10)
    ]
    worker.kill()
    await worker.wait()
    await make_overdue(db, ids)
    assert {await stored_status(db, i) for i in ids} == {"PENDING"}
    # A fresh queue: the jobs are as good as lost, so only the start-up sweep can fail them.
    await start_worker(queue=f"orflow-test-lost-{uuid.uuid4().hex[:8]}", sweep_seconds=59)
    await wait_until_stored(db, ids, "FAILED", within=3)


async def test_an_expiry_job_that_runs_twice_changes_nothing_the_second_time(db, pool) -> None:  # type: ignore[no-untyped-def]
    slot_id = await insert_slot(db)
    booking_id = await db.fetchval(
        "INSERT INTO bookings (slot_id, room_id, doctor_id, start_time, end_time, room_free_time, patient_id,"
        " status, create_time, expire_time, update_time)"
        " SELECT id, room_id, doctor_id, start_time, end_time, end_time, 'p-1', 'PENDING', now(),"
        " now() - interval '1 second', now() FROM slots WHERE id = $1 RETURNING id",
        slot_id,
    )
    ops = OpsContext(pool=pool, hold_ttl=TTL, turnover=timedelta(0), expiry=NoQueueExpiryScheduler())
    assert await expire_booking(ops, booking_id) is True
    after_first = await snapshot(db)
    assert await expire_booking(ops, booking_id) is False
    assert await snapshot(db) == after_first


async def test_one_expiry_job_fails_every_hold_overdue_with_it_and_leaves_live_ones(db, pool) -> None:  # type: ignore[no-untyped-def]
    """Thousands of holds expiring in one second must not wait for thousands of jobs."""
    ids = []
    for n, overdue in enumerate((True, True, True, False)):
        slot_id = await insert_slot(db)  # a room and a surgeon of its own
        ids.append(
            await db.fetchval(
                "INSERT INTO bookings (slot_id, room_id, doctor_id, start_time, end_time, room_free_time, patient_id,"
                " status, create_time, expire_time, update_time)"
                " SELECT id, room_id, doctor_id, start_time, end_time, end_time, $2, 'PENDING', now(),"
                " now() + $3 * interval '1 second', now() FROM slots WHERE id = $1 RETURNING id",
                slot_id,
                f"p-{n}",
                -1 if overdue else 60,
            )
        )
    ops = OpsContext(pool=pool, hold_ttl=TTL, turnover=timedelta(0), expiry=NoQueueExpiryScheduler())
    assert await expire_booking(ops, ids[0]) is True
    statuses = dict(await db.fetch("SELECT id, status FROM bookings"))
    assert [statuses[i] for i in ids] == ["FAILED", "FAILED", "FAILED", "PENDING"]
    assert await expire_booking(ops, ids[1]) is False  # its job comes later and finds nothing to do


async def test_two_watchers_see_a_booking_a_confirm_and_a_real_expiry_in_order(  # type: ignore[no-untyped-def]
    db, start_server, start_worker
) -> None:
    target = await start_server(hold_ttl=TTL)
    await start_worker()
    kept, lapsed = await insert_slot(db), await insert_slot(db)
    async with authorized_channel(target) as channel:
        watchers = [Watcher(channel), Watcher(channel)]
        for watcher in watchers:
            assert sorted(await watcher.snapshot()) == sorted([kept, lapsed])
        await barrier(db, *watchers)
        stub = booking_service_pb2_grpc.BookingServiceStub(channel)
        first = (await stub.CreateBooking(Book(slot_id=kept, patient_id="p-1"))).booking
        await stub.CreateBooking(Book(slot_id=lapsed, patient_id="p-2"))
        await stub.ConfirmBooking(booking_service_pb2.ConfirmBookingRequest(booking_id=first.id))
        for watcher in watchers:
            assert (await watcher.change())[:2] == (BOOKED, kept)
            assert (await watcher.change())[:2] == (BOOKED, lapsed)
            assert (await watcher.change())[:2] == (CONFIRMED, kept)
            # Nothing but the worker's expiry job can produce this one.
            assert await watcher.change() == (RELEASED, lapsed, True)
            watcher.call.cancel()
