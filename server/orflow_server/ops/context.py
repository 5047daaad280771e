"""What every use case needs, handed in rather than found in globals, and the one call's deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Protocol

import asyncpg

from ..db.connection import Conn
from ..domain.errors import DeadlineExceededError, UnavailableError
from ..metrics import Metrics
from .scheduling import ExpiryScheduler

ANSWER_MARGIN_SECONDS = 0.25
"""The database work of a call with a deadline stops this much before it (at most a fifth of the time
left), so the server's own DEADLINE_EXCEEDED reaches the caller rather than a race with grpc's cancel.
Stopping takes time of its own: PostgreSQL's cancel round trip and the connection's rollback before the
answer is sent (50 ms lost that race in a clean-clone CI run)."""


class CallDeadline(Protocol):
    """What a call tells of its deadline (a grpc.aio ServicerContext is one)."""

    def time_remaining(self) -> float | None: ...


@dataclass(frozen=True, kw_only=True)
class OpsContext:
    pool: asyncpg.Pool
    hold_ttl: timedelta
    turnover: timedelta
    expiry: ExpiryScheduler
    metrics: Metrics = field(default_factory=Metrics)
    allow_reset: bool = False  # SeedDatabase wipes every table but the audit trail: a deployment must opt in
    # One call's database work (waiting for a pool connection, every statement) takes at most this long,
    # whatever the caller's deadline; ORFLOW_DB_CALL_TIMEOUT_SECONDS.
    db_call_timeout: float = 30.0
    deadline: float | None = None  # the event-loop time at which this call's caller gives up; None: none set

    def within(self, call: CallDeadline) -> OpsContext:
        """This context for one call, bounded by the deadline its caller sent."""
        seconds_left = call.time_remaining()
        if seconds_left is None:
            return self
        return replace(self, deadline=asyncio.get_running_loop().time() + seconds_left)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        """A pooled connection whose acquire and statements end by the caller's deadline (or db_call_timeout).

        When time runs out the statement waiting is cancelled, and asyncpg sends
        PostgreSQL a cancel request for it: the statement (and its implicit or
        explicit transaction) rolls back, its locks and lock waits end, and the
        pool takes the connection back only once PostgreSQL has answered the
        cancel, so the next caller gets a clean one. No round trip is added to
        a call that finishes in time. Leaving early: DeadlineExceededError
        (the caller's deadline) or UnavailableError with a retry delay (ours).
        """
        budget, is_callers = self._budget()
        if budget <= 0:
            raise self._ran_out(is_callers)
        timer = asyncio.timeout(budget)
        try:
            async with timer, self.pool.acquire() as conn:
                yield conn
        except TimeoutError as exc:
            if not timer.expired():
                raise  # a timeout of something else, translated where it is known
            raise self._ran_out(is_callers) from exc

    def _budget(self) -> tuple[float, bool]:
        """Seconds the database work may take, and whether the caller's deadline (not the cap) sets it."""
        if self.deadline is None:
            return self.db_call_timeout, False
        left = self.deadline - asyncio.get_running_loop().time()
        left -= min(ANSWER_MARGIN_SECONDS, left / 5)
        return (left, True) if left < self.db_call_timeout else (self.db_call_timeout, False)

    def _ran_out(self, is_callers: bool) -> Exception:
        if is_callers:
            return DeadlineExceededError("the call's deadline passed before the database answered")
        return UnavailableError(
            f"the database did not answer within {self.db_call_timeout:g} s; retry", retry_after_seconds=0.5
        )
