"""Hold expiry: the use cases an expiry job and the sweep run (the scheduler port is ops/scheduling.py).

The database is the truth and the queue is only a timely trigger: scheduling
or cancelling a job never fails a booking, and the sweep fails every overdue
hold whatever happened to its job.
"""

from __future__ import annotations

import asyncio

from ..db import bookings as db
from ..db.audit import set_actor
from ..domain.access import EXPIRY_WORKER
from .context import OpsContext

# SAQ schedules whole seconds: a job scheduled at the second its hold expires
# in may start up to a second early; it waits out the rest rather than miss.
_MAX_EARLY_WAIT_SECONDS = 2.0


async def expire_booking(ctx: OpsContext, booking_id: int) -> bool:
    """Fails one hold if it is still PENDING and overdue, with every other overdue hold; True if it failed its own.

    Running twice changes nothing.
    """
    async with ctx.connection() as conn:
        remaining = await db.seconds_until_expiry(conn, booking_id)
    if remaining is None:
        return False  # confirmed, cancelled or already failed: nothing to do
    if 0 < remaining <= _MAX_EARLY_WAIT_SECONDS:
        await asyncio.sleep(remaining)
    async with ctx.connection() as conn, conn.transaction():
        await set_actor(conn, EXPIRY_WORKER)
        lag = await db.fail_overdue_hold(conn, booking_id)
    if lag is None:
        return False
    ctx.metrics.record_expired([lag], trigger="job")
    # Holds often expire together (thousands in one second): one job fails
    # every one now overdue, and the jobs of those find nothing to do. One
    # job at a time per hold would take tens of seconds for 10,000. It runs
    # in a transaction of its own, after this hold's has committed: holding
    # one hold's row lock while taking the others in id order could wait in
    # a cycle with a booking that takes them in id order too.
    async with ctx.connection() as conn, conn.transaction():
        await set_actor(conn, EXPIRY_WORKER)
        others = await db.fail_all_overdue_holds(conn, is_waiting=False)
    ctx.metrics.record_expired(others or [], trigger="job")
    return True


async def sweep_overdue_holds(ctx: OpsContext) -> list[float]:
    """Fails every overdue hold (the guarantee behind the jobs); returns their lags in seconds."""
    async with ctx.connection() as conn, conn.transaction():
        await set_actor(conn, EXPIRY_WORKER)
        lags = await db.fail_all_overdue_holds(conn) or []
    ctx.metrics.record_expired(lags, trigger="sweep")
    return lags
