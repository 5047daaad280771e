"""The hold-expiry job on SAQ: its task name and key, and the ExpiryScheduler that enqueues it.

Both processes import this one contract: the server (app.py) enqueues the
job, the worker (worker/main.py) runs it. It sits beside the layers, not in
worker/, so the server never imports the worker package.
"""

from __future__ import annotations

import logging
import math

from saq import Queue

from .domain.models import Booking

_log = logging.getLogger(__name__)

EXPIRE_TASK = "expire_booking"


def expiry_job_key(booking: Booking) -> str:
    """One job per booking, so a retried CreateBooking never schedules a second one.

    The creation time is part of the key because ids restart after a reset
    (SeedDatabase): a stale job must never stand in for a new booking's.
    """
    return f"expire-booking:{booking.id}:{booking.create_time.timestamp():.6f}"


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
