"""The enqueue buffer on real Redis: jobs follow the booking, cancel wins, a full buffer drops to the sweep."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from orflow_server.domain.models import Booking
from orflow_server.jobs import BufferedExpiryScheduler, SaqExpiryScheduler, expiry_job_key
from orflow_server.metrics import Metrics
from saq import Queue, Status

from tests.factories import make_booking

_ids = itertools.count(9_000_000)


def new_booking() -> Booking:
    """A hold whose job key no other test uses (the queue is the session's)."""
    return make_booking(id=next(_ids), now=datetime.now(UTC), expire_time=datetime.now(UTC) + timedelta(hours=1))


async def jobs_present(queue: Queue, bookings: list[Booking], within: float = 5.0) -> bool:
    """Waits until every booking's job is in the queue; False if they did not all come in time."""
    keys = [expiry_job_key(b) for b in bookings]
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if all(job is not None for job in await queue.jobs(keys)):
            return True
        await asyncio.sleep(0.01)
    return False


class GatedScheduler:
    """The real SAQ scheduler behind a gate the test opens, to hold an enqueue in flight."""

    def __init__(self, inner: SaqExpiryScheduler) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def schedule(self, booking: Booking) -> None:
        self.waiting.set()
        await self.gate.wait()
        await self.inner.schedule(booking)

    async def cancel(self, booking: Booking) -> None:
        await self.inner.cancel(booking)


async def test_jobs_follow_in_batches_and_flush_waits_for_all(saq_queue: Queue) -> None:
    scheduler = BufferedExpiryScheduler(SaqExpiryScheduler(saq_queue), batch_size=50)
    holds = [new_booking() for _ in range(230)]
    for hold in holds:
        await scheduler.schedule(hold)
        await scheduler.schedule(hold)  # a replay buffers nothing more
    assert await jobs_present(saq_queue, holds)
    await scheduler.flush()
    late = new_booking()
    await scheduler.schedule(late)
    await scheduler.flush()
    job = await saq_queue.job(expiry_job_key(late))
    assert job is not None and job.status == Status.QUEUED


async def test_cancel_before_the_enqueue_means_no_job_at_all(saq_queue: Queue) -> None:
    scheduler = BufferedExpiryScheduler(SaqExpiryScheduler(saq_queue))
    cancelled, kept = new_booking(), new_booking()
    await scheduler.schedule(cancelled)
    await scheduler.schedule(kept)
    await scheduler.cancel(cancelled)  # nothing ran in between: still buffered
    await scheduler.flush()
    assert await jobs_present(saq_queue, [kept])
    assert await saq_queue.job(expiry_job_key(cancelled)) is None


async def test_cancel_during_the_enqueue_waits_for_it_then_aborts_the_job(saq_queue: Queue) -> None:
    gated = GatedScheduler(SaqExpiryScheduler(saq_queue))
    scheduler = BufferedExpiryScheduler(gated)
    hold = new_booking()
    await scheduler.schedule(hold)
    await asyncio.wait_for(gated.waiting.wait(), timeout=5)  # its batch is in flight
    cancel = asyncio.ensure_future(scheduler.cancel(hold))
    await asyncio.sleep(0.05)
    assert not cancel.done()  # an abort now would miss the job that is about to land
    gated.gate.set()
    await asyncio.wait_for(cancel, timeout=5)
    job = await saq_queue.job(expiry_job_key(hold))
    assert job is not None and job.status in (Status.ABORTING, Status.ABORTED)


async def test_a_full_buffer_drops_the_job_to_the_sweep_with_a_log_line_and_a_metric(
    saq_queue: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    scheduler = BufferedExpiryScheduler(SaqExpiryScheduler(saq_queue), capacity=2, metrics=metrics)
    first, second, dropped = new_booking(), new_booking(), new_booking()
    with caplog.at_level(logging.WARNING, logger="orflow_server.jobs"):
        for hold in (first, second, dropped):
            await scheduler.schedule(hold)  # nothing yields in between: the buffer fills
    assert metrics.registry.get_sample_value("orflow_expiry_jobs_dropped_total") == 1
    assert [r.getMessage() for r in caplog.records] == [
        f"expiry buffer full: booking {dropped.id}'s hold is left to the sweep"
    ]
    await scheduler.flush()
    assert await jobs_present(saq_queue, [first, second])
    assert await saq_queue.job(expiry_job_key(dropped)) is None
