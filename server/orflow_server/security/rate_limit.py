"""A token bucket per caller, in this process's memory.

Each server process limits on its own: with N processes a caller can make up
to N times the rate. That bounds a runaway client without a shared store on
the booking path; the database constraints, not this, prevent double booking.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ..domain.access import Actor, Role
from ..domain.errors import RateLimitedError


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`rate_per_minute` calls per caller on average, with bursts of up to `burst`."""

    def __init__(
        self,
        *,
        rate_per_minute: float,
        burst: int,
        max_callers: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_minute <= 0 or burst < 1:
            raise ValueError("rate_per_minute must be positive and burst at least 1")
        self._per_second = rate_per_minute / 60
        self._burst = burst
        self._max_callers = max_callers
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, caller: str) -> None:
        """Spends one token of `caller`'s bucket, or raises RateLimitedError with the wait."""
        now = self._clock()
        bucket = self._buckets.pop(caller, None) or _Bucket(tokens=self._burst, updated=now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._per_second)
        bucket.updated = now
        self._buckets[caller] = bucket  # most recently used last
        while len(self._buckets) > self._max_callers:
            self._buckets.popitem(last=False)
        if bucket.tokens < 1:
            wait = (1 - bucket.tokens) / self._per_second
            raise RateLimitedError(f"too many bookings; try again in {wait:.1f} s", retry_after_seconds=wait)
        bucket.tokens -= 1


class BookingRateLimits:
    """CreateBooking limits by role: patients share one rate, each service/admin token another (or none)."""

    def __init__(self, *, patient: RateLimiter, service: RateLimiter | None) -> None:
        self._patient = patient
        self._service = service

    def take(self, actor: Actor) -> None:
        limiter = self._patient if actor.role is Role.PATIENT else self._service
        if limiter is not None:
            limiter.take(f"{actor.role}:{actor.subject}")
