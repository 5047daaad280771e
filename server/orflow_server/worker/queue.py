"""ExpiryScheduler over a SAQ queue on Redis."""

from __future__ import annotations

import logging
import math
from datetime import datetime

from saq import Queue

_log = logging.getLogger(__name__)

EXPIRE_TASK = "expire_booking"


def expiry_job_key(booking_id: int) -> str:
    """One job per booking, so a retried CreateBooking never schedules a second one."""
    return f"expire-booking:{booking_id}"


class SaqExpiryScheduler:
    """Schedules expiry jobs; a Redis failure is logged and swallowed (the sweep covers it)."""

    def __init__(self, queue: Queue) -> None:
        self._queue = queue

    async def schedule(self, booking_id: int, expire_time: datetime) -> None:
        try:
            await self._queue.enqueue(
                EXPIRE_TASK,
                key=expiry_job_key(booking_id),
                # SAQ schedules whole seconds and starts jobs 0-1 s after theirs:
                # the floor keeps the lag under a second (the job waits out
                # any remainder itself, see ops.expiry.expire_booking).
                scheduled=math.floor(expire_time.timestamp()),
                retries=3,
                booking_id=booking_id,
            )
        except Exception:  # noqa: BLE001 - the queue must never fail a booking
            _log.warning("could not schedule expiry of booking %d; the sweep will expire it", booking_id, exc_info=True)

    async def cancel(self, booking_id: int) -> None:
        try:
            job = await self._queue.job(expiry_job_key(booking_id))
            if job is not None:
                await self._queue.abort(job, "hold no longer pending")
        except Exception:  # noqa: BLE001 - an unaborted job only finds nothing to do
            _log.warning("could not abort the expiry job of booking %d", booking_id, exc_info=True)


class NoQueueExpiryScheduler:
    """Used when no Redis is configured: holds still read FAILED on time; a worker's sweep persists it."""

    async def schedule(self, booking_id: int, expire_time: datetime) -> None:
        return None

    async def cancel(self, booking_id: int) -> None:
        return None
