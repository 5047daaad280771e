"""A real `orflow worker` drained by SIGTERM: running jobs finish within the grace, the rest go back to the queue.

Each test makes its expiry jobs run long on purpose: the holds' rows are
locked FOR UPDATE by a transaction of the test's own, so every job waits in
PostgreSQL at its UPDATE when the worker gets SIGTERM. Releasing the lock
within the grace lets them finish; keeping it makes the worker cancel them
(in PostgreSQL too) and re-queue them for the next worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import asyncpg
import pytest
import pytest_asyncio
from orflow.v1 import booking_service_pb2, booking_service_pb2_grpc
from orflow_server.jobs import expiry_job_key
from saq import Queue, Status

from tests.auth import authorized_channel
from tests.conftest import ServerFactory
from tests.factories import insert_slot
from tests.worker.test_expiry import booking_from_proto, until_worker_ready, wait_until_stored

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOLDS = 4
HOLD_SECONDS = 3
GRACE_SECONDS = 2.0
MARGIN_SECONDS = 3.0  # the machine is shared; what matters is the grace bounds the stop, not a lock wait


class WorkerProcess:
    """`python -m orflow_server worker` with its JSON log lines kept."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, object]] = []

    async def stop(self, signum: int = signal.SIGTERM, *, within: float = 30.0) -> tuple[int, float]:
        """Sends `signum`; the exit code and the seconds it took."""
        started = time.monotonic()
        self.proc.send_signal(signum)
        assert self.proc.stderr is not None
        output = await asyncio.wait_for(self.proc.stderr.read(), within)
        code = await asyncio.wait_for(self.proc.wait(), within)
        for line in output.decode().splitlines():
            if line.startswith("{"):
                self.lines.append(json.loads(line))
        return code, time.monotonic() - started

    def events(self, name: str) -> list[dict[str, object]]:
        return [line for line in self.lines if line.get("event") == name]


StartWorker = Callable[[], Awaitable[WorkerProcess]]


@pytest.fixture
def drain_queue_name() -> str:
    """A queue of each test's own: the session's may hold other tests' jobs, which a worker here would run too
    (and count in its drain line, and whose holds' ids the restarted identities may share)."""
    return f"orflow-drain-{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture(loop_scope="session")
async def drain_queue(redis_url: str, drain_queue_name: str) -> AsyncIterator[Queue]:
    queue = Queue.from_url(redis_url, name=drain_queue_name)
    yield queue
    await queue.disconnect()


@pytest_asyncio.fixture(loop_scope="session")
async def start_worker(database_url: str, redis_url: str, drain_queue_name: str) -> AsyncIterator[StartWorker]:
    started: list[asyncio.subprocess.Process] = []

    async def start() -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORFLOW_")}
        env.update(
            ORFLOW_DATABASE_URL=database_url,
            ORFLOW_REDIS_URL=redis_url,
            ORFLOW_QUEUE_NAME=drain_queue_name,
            ORFLOW_SWEEP_SECONDS="59",  # the start-up sweep only: the jobs do the work here
            ORFLOW_WORKER_METRICS_ADDR="127.0.0.1:0",
            ORFLOW_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
            ORFLOW_LOG_FORMAT="json",
            # The jobs wait on the test's row locks on purpose, for longer than the default lock_timeout (3 s)
            # allows once the grace is added: a job whose wait ran out inside the grace counted as finished
            # (a CI run saw finished=1, requeued=3). These tests are about the grace, not the lock bound.
            ORFLOW_DB_LOCK_TIMEOUT_MS="60000",
            ORFLOW_DB_STATEMENT_TIMEOUT_MS="60000",
        )
        queue = Queue.from_url(redis_url, name=drain_queue_name)
        known = set((await queue.info())["workers"])
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "orflow_server", "worker", env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        started.append(proc)
        try:
            await until_worker_ready(queue, proc, known)
        finally:
            await queue.disconnect()
        return WorkerProcess(proc)

    yield start
    for proc in started:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def jobs_waiting_on_locks(db: asyncpg.Connection, saq_queue: Queue, keys: list[str]) -> None:
    """Until every job is ACTIVE in the worker and as many of the worker's backends wait on a row lock."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        jobs = [await saq_queue.job(key) for key in keys]
        waiting = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'orflow'"
            " AND datname = current_database() AND wait_event_type = 'Lock'"
        )
        if all(job is not None and job.status is Status.ACTIVE for job in jobs) and waiting == len(keys):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the expiry jobs never all waited on their holds' row locks")


async def lock_holds(locker: asyncpg.Connection, booking_ids: list[int]) -> None:
    """Locks the holds' rows (inside the caller's transaction), which must still be PENDING: their jobs not run yet."""
    rows = await locker.fetch("SELECT status FROM bookings WHERE id = ANY($1::bigint[]) FOR UPDATE", booking_ids)
    assert {r["status"] for r in rows} == {"PENDING"}, "the jobs ran before the test could lock their holds"


async def job_statuses(queue: Queue, keys: list[str]) -> list[Status | None]:
    return [job.status if (job := await queue.job(key)) is not None else None for key in keys]


async def holds_with_jobs(
    db: asyncpg.Connection, start_server: ServerFactory, queue: Queue
) -> tuple[list[int], list[str]]:
    """HOLDS holds of HOLD_SECONDS through a real server (which enqueues their expiry jobs).

    Long enough for the test to lock their rows before the jobs are due on a busy machine (one second was
    not, once, in a CI run beside other work); lock_holds() checks it was."""
    target = await start_server(queue=queue, hold_ttl=timedelta(seconds=HOLD_SECONDS))
    async with authorized_channel(target) as channel:
        stub = booking_service_pb2_grpc.BookingServiceStub(channel)
        replies = [
            await stub.CreateBooking(
                booking_service_pb2.CreateBookingRequest(slot_id=await insert_slot(db), patient_id=f"drain-{n}")
            )
            for n in range(HOLDS)
        ]
    return [r.booking.id for r in replies], [expiry_job_key(booking_from_proto(r.booking)) for r in replies]


async def test_sigterm_lets_running_jobs_finish_within_the_grace(
    db: asyncpg.Connection,
    database_url: str,
    drain_queue: Queue,
    start_server: ServerFactory,
    start_worker: StartWorker,
) -> None:
    worker = await start_worker()
    booking_ids, keys = await holds_with_jobs(db, start_server, drain_queue)
    locker = await asyncpg.connect(database_url)
    try:
        locking = locker.transaction()
        await locking.start()
        await lock_holds(locker, booking_ids)
        await jobs_waiting_on_locks(db, drain_queue, keys)
        stopping = asyncio.create_task(worker.stop())
        await asyncio.sleep(GRACE_SECONDS / 4)
        await locking.rollback()  # well within the grace: the waiting jobs go on
        code, took = await stopping
    finally:
        await locker.close()
    [drain] = worker.events("drain")
    print(f"\nworker drained: {drain} in {took:.2f} s")
    assert code == 0
    assert (drain["running"], drain["finished"], drain["requeued"]) == (HOLDS, HOLDS, 0)
    await wait_until_stored(db, booking_ids, "FAILED", within=0.1)  # done before the process exited
    assert await job_statuses(drain_queue, keys) == [Status.COMPLETE] * HOLDS


async def test_jobs_past_the_grace_are_cancelled_in_postgres_and_requeued_for_the_next_worker(
    db: asyncpg.Connection,
    database_url: str,
    drain_queue: Queue,
    start_server: ServerFactory,
    start_worker: StartWorker,
) -> None:
    worker = await start_worker()
    booking_ids, keys = await holds_with_jobs(db, start_server, drain_queue)
    locker = await asyncpg.connect(database_url)
    try:
        async with locker.transaction():
            await lock_holds(locker, booking_ids)
            await jobs_waiting_on_locks(db, drain_queue, keys)
            code, took = await worker.stop()
            # Still inside the lock holder's transaction: the worker's waits were cancelled, not granted.
            waiting = await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'orflow'"
                " AND datname = current_database() AND wait_event_type = 'Lock'"
            )
            requeued = await job_statuses(drain_queue, keys)
            statuses = await db.fetch("SELECT status FROM bookings WHERE id = ANY($1::bigint[])", booking_ids)
    finally:
        await locker.close()
    [drain] = worker.events("drain")
    print(f"\nworker drained: {drain} in {took:.2f} s")
    assert code == 0
    assert took < GRACE_SECONDS + MARGIN_SECONDS, took
    assert (drain["running"], drain["finished"], drain["requeued"]) == (HOLDS, 0, HOLDS)
    assert waiting == 0
    assert requeued == [Status.QUEUED] * HOLDS
    assert {r["status"] for r in statuses} == {"PENDING"}  # the cancelled jobs' transactions rolled back
    # The next worker runs the re-queued jobs (its start-up sweep may fail the holds first: either way they end).
    await start_worker()
    await wait_until_stored(db, booking_ids, "FAILED", within=10)
    deadline = time.monotonic() + 10
    while await job_statuses(drain_queue, keys) != [Status.COMPLETE] * HOLDS:
        assert time.monotonic() < deadline, "the re-queued jobs did not run on the next worker"
        await asyncio.sleep(0.05)
