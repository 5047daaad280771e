"""The token bucket, on a clock the test moves; the shared one in the real Redis, and its fallback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from orflow_server.domain.access import Actor, Role
from orflow_server.domain.errors import RateLimitedError
from orflow_server.security.rate_limit import BookingRateLimits, RateLimiter, SharedRateLimiter
from orflow_tools.testkit.ports import free_port
from redis.asyncio import Redis


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


async def test_services_are_unlimited_unless_configured() -> None:
    limits = BookingRateLimits(patient=RateLimiter(rate_per_minute=1, burst=1), service=None)
    for _ in range(100):
        await limits.take(Actor("ehr", Role.SERVICE))
    await limits.take(Actor("p-1", Role.PATIENT))
    with pytest.raises(RateLimitedError):
        await limits.take(Actor("p-1", Role.PATIENT))


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate_per_minute=0, burst=1)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def _shared(redis: Redis, prefix: str, **kwargs: object) -> SharedRateLimiter:
    local = RateLimiter(rate_per_minute=6, burst=3)
    return SharedRateLimiter(redis, local=local, key_prefix=prefix, **kwargs)  # type: ignore[arg-type]


async def test_shared_buckets_are_one_limit_across_limiters(redis: Redis) -> None:
    """Two limiters (two server processes) with one prefix spend from one bucket: 3 in all, not 3 each."""
    prefix = f"test-{uuid.uuid4().hex}:"
    first, second = _shared(redis, prefix), _shared(redis, prefix)
    await first.acquire("p-1")
    await second.acquire("p-1")
    await first.acquire("p-1")
    for limiter in (first, second):
        with pytest.raises(RateLimitedError) as caught:
            await limiter.acquire("p-1")
        assert 0 < caught.value.retry_after_seconds <= 10  # 6/min: a token every 10 s
    await second.acquire("p-2")  # another caller has a bucket of its own
    assert await redis.ttl(prefix + "p-1") > 0  # idle buckets expire from Redis by themselves


async def test_redis_down_falls_back_to_the_process_bucket_and_counts_it() -> None:
    """Nothing listens on the port: bookings are still limited (per process), never refused for Redis's sake."""
    port = free_port()
    down = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=0.25, socket_connect_timeout=0.25)
    fallbacks: list[int] = []
    limiter = _shared(down, "unused:", on_fallback=lambda: fallbacks.append(1))
    try:
        for _ in range(3):
            await limiter.acquire("p-1")
        with pytest.raises(RateLimitedError):
            await limiter.acquire("p-1")
    finally:
        await down.aclose()
    assert len(fallbacks) == 4
