"""The port through which use cases trigger a hold's expiry after their commit, and its no-queue stand-in.

The SAQ implementation lives with the job it enqueues (orflow_server/jobs.py);
use cases see only this interface, so ops/ never imports a queue library.
"""

from __future__ import annotations

from typing import Protocol

from ..domain.models import Booking


class ExpiryScheduler(Protocol):
    """Triggers a hold's expiry at its expire_time; never fails a booking (the sweep is the guarantee)."""

    async def schedule(self, booking: Booking) -> None: ...

    async def cancel(self, booking: Booking) -> None: ...


class NoQueueExpiryScheduler:
    """Used when no Redis is configured: holds still read FAILED on time; a worker's sweep persists it."""

    async def schedule(self, booking: Booking) -> None:
        return None

    async def cancel(self, booking: Booking) -> None:
        return None
