"""The fuzz targets: a server of their own on a fresh database holding a small world, and the thread bridge.

Hypothesis runs its examples synchronously in a worker thread (`asyncio.to_thread`); each example hands its
coroutines back to the session loop, where the server, the pool and the channels live (`Bridge.run`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, TypeVar

import asyncpg
import pytest_asyncio
from hypothesis import HealthCheck, settings
from orflow_server.app import build_server
from orflow_server.jobs import BufferedExpiryScheduler, SaqExpiryScheduler
from orflow_tools.testkit.databases import fresh_database
from saq import Queue

from tests.conftest import TEST_SETTINGS
from tests.factories import future, insert_equipment, insert_slot
from tests.web.conftest import http, start_proxy  # noqa: F401 (fixtures the web fuzz tests use)

T = TypeVar("T")

# CI runs "orflow-ci" (the default); ORFLOW_HYPOTHESIS_PROFILE=orflow-long for a long hunt.
settings.register_profile(
    "orflow-ci",
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
settings.register_profile("orflow-long", parent=settings.get_profile("orflow-ci"), max_examples=1_000)
PROFILE = settings.get_profile(os.environ.get("ORFLOW_HYPOTHESIS_PROFILE", "orflow-ci"))


@dataclass(frozen=True)
class Bridge:
    """Runs coroutines on the session loop from hypothesis's worker thread."""

    loop: asyncio.AbstractEventLoop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


async def fingerprint(conn: asyncpg.Connection) -> dict[str, tuple[int, str]]:
    """(row count, md5 of every row) per table, audit_events included: equal before and after = nothing written."""
    tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename")
    result: dict[str, tuple[int, str]] = {}
    for (table,) in tables:
        row = await conn.fetchrow(
            f"SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM \"{table}\" t"
        )
        assert row is not None
        result[table] = (row[0], row[1])
    return result


@dataclass(frozen=True)
class FuzzStack:
    target: str
    pool: asyncpg.Pool


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def fuzz_stack(server_url: str, saq_queue: Queue) -> AsyncIterator[FuzzStack]:
    """A server on a database of its own (fuzzed writes never reach the shared one), resets off, no rate limit."""
    async with fresh_database(server_url, prefix="orflow_fuzz") as url:
        pool = await asyncpg.create_pool(url, min_size=2, max_size=10)
        assert pool is not None
        async with pool.acquire() as conn:
            item = await insert_equipment(conn, quantity=1)
            start = future(48)
            for i in range(4):  # ids 1..4: small ids the strategies draw often hit real rows
                await insert_slot(conn, start=start + timedelta(hours=i), hours=2, equipment=[(item, 1)])
        scheduler = BufferedExpiryScheduler(SaqExpiryScheduler(saq_queue))
        server = build_server(replace(TEST_SETTINGS, allow_reset=False), pool=pool, expiry=scheduler, listen_dsn=url)
        await server.start()
        try:
            yield FuzzStack(f"127.0.0.1:{server.port}", pool)
        finally:
            await server.stop(grace=None)
            await scheduler.flush()
            await pool.close()
