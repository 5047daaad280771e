"""Booking through ops.create_booking from many tasks over one pool, direct or through PgBouncer.

The comparison of booking throughput through PgBouncer and direct, in one run,
is `orflow bench --only b` (whole servers over gRPC); this is the ops-level
booking loop test_pgbouncer.py runs through the pooler.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import asyncpg
from orflow_server.domain.access import Actor, Role
from orflow_server.ops.bookings import create_booking
from orflow_server.ops.context import OpsContext
from orflow_server.ops.scheduling import NoQueueExpiryScheduler
from orflow_tools.testkit.invariants import NO_VIOLATIONS, violations

from tests.scale.test_multi_process import _insert_slots

ACTOR = Actor("pooler-bench", Role.SERVICE)


async def book_all(pool_url: str, direct_url: str, *, bookings: int, callers: int, cache: int) -> float:
    """Bookings per second for `bookings` slots booked by `callers` tasks through `pool_url`."""
    conn = await asyncpg.connect(direct_url)
    try:
        slot_ids = await _insert_slots(conn, bookings)
        pool = await asyncpg.create_pool(pool_url, min_size=callers, max_size=callers, statement_cache_size=cache)
        assert pool is not None
        ctx = OpsContext(
            pool=pool, hold_ttl=timedelta(minutes=5), turnover=timedelta(0), expiry=NoQueueExpiryScheduler()
        )
        queue = list(slot_ids)

        async def caller() -> None:
            while queue:
                slot_id = queue.pop()
                await create_booking(ctx, ACTOR, slot_id=slot_id, patient_id=f"p-{slot_id}", request_id="")

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(callers)))
        elapsed = time.perf_counter() - started
        await pool.close()
        assert await conn.fetchval("SELECT count(*) FROM bookings") == bookings
        assert await violations(conn) == NO_VIOLATIONS
        return bookings / elapsed
    finally:
        await conn.close()
