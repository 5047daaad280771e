"""The token bucket, on a clock the test moves."""

from __future__ import annotations

import pytest
from orflow_server.domain.access import Actor, Role
from orflow_server.domain.errors import RateLimitedError
from orflow_server.security.rate_limit import BookingRateLimits, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_minute=60, burst=3, clock=clock)
    for _ in range(3):
        limiter.take("p-1")
    with pytest.raises(RateLimitedError) as caught:
        limiter.take("p-1")
    assert caught.value.retry_after_seconds == pytest.approx(1.0)

    clock.now += 1.0
    limiter.take("p-1")  # one token back after a second at 60/min
    with pytest.raises(RateLimitedError):
        limiter.take("p-1")


def test_callers_have_their_own_buckets_and_old_ones_are_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_minute=1, burst=1, max_callers=2, clock=clock)
    limiter.take("a")
    limiter.take("b")
    limiter.take("c")  # evicts "a", the least recently seen
    limiter.take("a")  # a fresh bucket
    with pytest.raises(RateLimitedError):
        limiter.take("c")


def test_services_are_unlimited_unless_configured() -> None:
    limits = BookingRateLimits(patient=RateLimiter(rate_per_minute=1, burst=1), service=None)
    for _ in range(100):
        limits.take(Actor("ehr", Role.SERVICE))
    limits.take(Actor("p-1", Role.PATIENT))
    with pytest.raises(RateLimitedError):
        limits.take(Actor("p-1", Role.PATIENT))


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate_per_minute=0, burst=1)
