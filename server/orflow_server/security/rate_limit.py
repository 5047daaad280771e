"""Per-caller booking rate limits: one token bucket per caller, shared by every server process through Redis.

`SharedRateLimiter` keeps each caller's bucket in Redis and updates it with
one Lua script (read, refill, spend, write: atomic on the Redis server, timed
by Redis's own clock), so N server processes enforce ONE limit, not N.

When Redis cannot answer (down, or slower than `timeout_seconds`), the call
is limited by this process's own bucket (`RateLimiter`, the same rule in
memory) and Redis is left alone for `retry_seconds`; each fallback is logged
(once per outage) and counted (`on_fallback`, a metric). Why not refuse
instead: the limit bounds a runaway client, it does not guard the booking
rule (the database's constraints do), so a Redis outage must not become a
booking outage. Per-process buckets still bound a caller, to N times the rate.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..domain.access import Actor, Role
from ..domain.errors import RateLimitedError

_log = logging.getLogger(__name__)


def _refused(wait: float) -> RateLimitedError:
    return RateLimitedError(f"too many bookings; try again in {wait:.1f} s", retry_after_seconds=wait)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class Limiter(Protocol):
    async def acquire(self, caller: str) -> None: ...


class RateLimiter:
    """`rate_per_minute` calls per caller on average, with bursts of up to `burst`, in this process's memory."""

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
        self.rate_per_minute = rate_per_minute
        self.burst = burst
        self._per_second = rate_per_minute / 60
        self._max_callers = max_callers
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, caller: str) -> None:
        """Spends one token of `caller`'s bucket, or raises RateLimitedError with the wait."""
        now = self._clock()
        bucket = self._buckets.pop(caller, None) or _Bucket(tokens=self.burst, updated=now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self._per_second)
        bucket.updated = now
        self._buckets[caller] = bucket  # most recently used last
        while len(self._buckets) > self._max_callers:
            self._buckets.popitem(last=False)
        if bucket.tokens < 1:
            raise _refused((1 - bucket.tokens) / self._per_second)
        bucket.tokens -= 1

    async def acquire(self, caller: str) -> None:
        self.take(caller)


# KEYS[1] the caller's bucket; ARGV: tokens per second, burst. Returns the wait in seconds ("0": allowed).
# Numbers travel as strings: Redis truncates a Lua number reply to an integer.
_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or burst
local updated = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local wait = 0
if tokens < 1 then wait = (1 - tokens) / rate else tokens = tokens - 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class SharedRateLimiter:
    """The same token bucket as RateLimiter, kept in Redis so every server process spends from one bucket."""

    def __init__(
        self,
        redis: Redis,
        *,
        local: RateLimiter,
        key_prefix: str,
        on_fallback: Callable[[], None] = lambda: None,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._script = redis.register_script(_TOKEN_BUCKET)
        self._local = local
        self._prefix = key_prefix
        self._args = (local.rate_per_minute / 60, local.burst)
        self._on_fallback = on_fallback
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._down_until: float | None = None  # set while Redis is considered down

    async def acquire(self, caller: str) -> None:
        wait = await self._shared_wait(caller)
        if wait is None:
            self._on_fallback()
            self._local.take(caller)
        elif wait > 0:
            raise _refused(wait)

    async def _shared_wait(self, caller: str) -> float | None:
        """Seconds to wait per the shared bucket (0: spent one token), or None when Redis did not answer."""
        if self._down_until is not None and self._clock() < self._down_until:
            return None
        try:
            reply = await self._script(keys=[self._prefix + caller], args=list(self._args))
        except (RedisError, OSError) as exc:
            if self._down_until is None:
                _log.warning("booking rate limit: Redis unavailable (%s); limiting per process until it is back", exc)
            self._down_until = self._clock() + self._retry_seconds
            return None
        if self._down_until is not None:
            _log.info("booking rate limit: Redis is back; one limit across all servers again")
            self._down_until = None
        return float(reply.decode() if isinstance(reply, bytes) else reply)


class BookingRateLimits:
    """CreateBooking limits by role: patients share one rate, each service/admin token another (or none)."""

    def __init__(self, *, patient: Limiter, service: Limiter | None) -> None:
        self._patient = patient
        self._service = service

    async def take(self, actor: Actor) -> None:
        limiter = self._patient if actor.role is Role.PATIENT else self._service
        if limiter is not None:
            await limiter.acquire(f"{actor.role}:{actor.subject}")
