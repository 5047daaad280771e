"""The hold-expiry job on SAQ: its task name and key, the ExpiryScheduler that enqueues it, and its buffer.

Both processes import this one contract: the server (app.py) enqueues the
job, the worker (worker/main.py) runs it. It sits beside the layers, not in
worker/, so the server never imports the worker package.
"""

from __future__ import annotations

import asyncio
import logging
import math

from saq import Queue

from .domain.models import Booking
from .metrics import Metrics
from .ops.scheduling import ExpiryScheduler

_log = logging.getLogger(__name__)

EXPIRE_TASK = "expire_booking"


def expiry_job_key(booking: Booking) -> str:
    """One job per booking and deadline, so a retried CreateBooking never schedules a second one.

    The creation time is part of the key because ids restart after a reset
    (SeedDatabase): a stale job must never stand in for a new booking's. The
    deadline is part of it because ExtendHold moves it: the extended hold gets
    a job of its own at the new time (the first one, still due at the old
    time, finds the hold not yet overdue and does nothing).
    """
    return f"expire-booking:{booking.id}:{booking.create_time.timestamp():.6f}:{booking.expire_time.timestamp():.6f}"


class SaqExpiryScheduler:
    """Schedules expiry jobs; a Redis failure is logged and swallowed (the sweep covers it)."""

    def __init__(self, queue: Queue) -> None:
        self._queue = queue

    async def schedule(self, booking: Booking) -> None:
        try:
            await self._queue.enqueue(
                EXPIRE_TASK,
                key=expiry_job_key(booking),
                # SAQ schedules whole seconds and starts jobs 0-1 s after theirs:
                # the floor keeps the lag under a second (the job waits out
                # any remainder itself, see ops.expiry.expire_booking).
                scheduled=math.floor(booking.expire_time.timestamp()),
                retries=3,
                booking_id=booking.id,
            )
        except Exception:  # noqa: BLE001 - the queue must never fail a booking
            _log.warning("could not schedule expiry of booking %d; the sweep will expire it", booking.id, exc_info=True)

    async def cancel(self, booking: Booking) -> None:
        try:
            job = await self._queue.job(expiry_job_key(booking))
            if job is not None:
                await self._queue.abort(job, "hold no longer pending")
        except Exception:  # noqa: BLE001 - an unaborted job only finds nothing to do
            _log.warning("could not abort the expiry job of booking %d", booking.id, exc_info=True)


class BufferedExpiryScheduler:
    """Answers a booking without waiting for Redis: schedule() only buffers the job, a background task enqueues it.

    The sweep stays the guarantee, as it is for a Redis failure: a job that
    never reaches the queue only makes its hold's FAILED row wait for the
    next sweep (reads show it FAILED on time anyway). The buffer is bounded:
    when full, a job is dropped to the sweep with a log line and a metric.
    One drain task runs while the buffer is not empty; it takes up to
    `batch_size` jobs at a time and enqueues them concurrently, so under load
    many bookings share Redis's round trips. flush() waits for the buffer to
    empty (a server calls it on shutdown).
    """

    def __init__(
        self, inner: ExpiryScheduler, *, capacity: int = 10_000, batch_size: int = 100, metrics: Metrics | None = None
    ) -> None:
        self._inner = inner
        self._capacity = capacity
        self._batch_size = batch_size
        self._metrics = metrics or Metrics()
        self._pending: dict[str, Booking] = {}  # by job key, in arrival order
        self._in_flight: dict[str, Booking] = {}
        self._batch_done = asyncio.Event()
        self._drain: asyncio.Task[None] | None = None

    async def schedule(self, booking: Booking) -> None:
        key = expiry_job_key(booking)
        if key in self._pending or key in self._in_flight:
            return  # a replay: the same job
        if len(self._pending) >= self._capacity:
            self._metrics.expiry_jobs_dropped.inc()
            _log.warning("expiry buffer full: booking %d's hold is left to the sweep", booking.id)
            return
        self._pending[key] = booking
        if self._drain is None or self._drain.done():
            self._drain = asyncio.create_task(self._drain_pending(), name="orflow-expiry-enqueue")

    async def cancel(self, booking: Booking) -> None:
        key = expiry_job_key(booking)
        if self._pending.pop(key, None) is not None:
            return  # never reached the queue: nothing to abort
        while key in self._in_flight:  # let its enqueue land first, or the abort would miss it
            await self._batch_done.wait()
        await self._inner.cancel(booking)

    async def flush(self) -> None:
        """Waits until every buffered job has been handed to the queue (or failed to be)."""
        while self._drain is not None and not self._drain.done():
            await asyncio.shield(self._drain)

    async def _drain_pending(self) -> None:
        while self._pending:
            keys = list(self._pending)[: self._batch_size]
            self._in_flight = {key: self._pending.pop(key) for key in keys}
            self._batch_done.clear()
            try:
                # Each schedule() swallows and logs its own failure (the sweep covers it).
                await asyncio.gather(*(self._inner.schedule(b) for b in self._in_flight.values()))
            finally:
                self._in_flight = {}
                self._batch_done.set()
