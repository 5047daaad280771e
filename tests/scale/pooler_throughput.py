"""Booking throughput through PgBouncer (transaction mode, asyncpg statement cache off) vs direct, in one run.

Run from the repository root (PgBouncer installed; a PostgreSQL whose role may create databases):

    python -m tests.scale.pooler_throughput postgresql://postgres@127.0.0.1:5432/postgres [bookings] [callers]

Each leg books the same number of fresh slots through ops.create_booking (the
real CreateBooking path: orflow_book() in one transaction) from `callers`
concurrent tasks on its own fresh database, and prints bookings/s.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import timedelta

import asyncpg
from orflow_server.domain.access import Actor, Role
from orflow_server.ops.bookings import create_booking
from orflow_server.ops.context import OpsContext
from orflow_server.ops.scheduling import NoQueueExpiryScheduler
from orflow_tools.testkit.databases import fresh_database, with_database
from orflow_tools.testkit.invariants import NO_VIOLATIONS, violations
from orflow_tools.testkit.pgbouncer import pgbouncer

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


async def compare(server_url: str, *, bookings: int, callers: int) -> dict[str, float]:
    results = {}
    legs = (
        ("direct, statement cache 100", False, 100),
        ("pgbouncer transaction mode, cache 0", True, 0),
        ("direct, statement cache 0", False, 0),
    )
    for name, through_pooler, cache in legs:
        async with fresh_database(server_url, prefix="orflow_pooler") as url:
            if through_pooler:
                with pgbouncer(url, pool_size=callers) as pooled:
                    results[name] = await book_all(pooled, url, bookings=bookings, callers=callers, cache=cache)
            else:
                results[name] = await book_all(url, url, bookings=bookings, callers=callers, cache=cache)
    return results


def main() -> None:
    server_url = sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/postgres"
    bookings = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    callers = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    where = with_database(server_url, "…")
    print(f"{bookings} bookings, {callers} concurrent callers, each leg on a fresh database ({where})")
    for name, rate in asyncio.run(compare(server_url, bookings=bookings, callers=callers)).items():
        print(f"  {name:40s} {rate:8.0f} bookings/s")


if __name__ == "__main__":
    main()
