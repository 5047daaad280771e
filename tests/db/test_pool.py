"""The server's pool (app.create_pool): no reset round trip on release, and still no transaction left open."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio
from orflow_server.app import create_pool
from orflow_server.settings import Settings


@pytest_asyncio.fixture(loop_scope="session")
async def server_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(Settings(db_pool_min=1, db_pool_max=1), database_url)
    yield pool
    await pool.close()


async def backend_state(db: asyncpg.Connection, pid: int) -> tuple[str, str]:
    row = await db.fetchrow("SELECT state, query FROM pg_stat_activity WHERE pid = $1", pid)
    assert row is not None
    return row["state"], row["query"]


async def test_release_sends_no_reset_statement(server_pool: asyncpg.Pool, db: asyncpg.Connection) -> None:
    """The last statement the backend saw is the caller's own: asyncpg's RESET ALL & co. were not sent."""
    async with server_pool.acquire() as conn:
        pid = await conn.fetchval("SELECT pg_backend_pid() /* the caller's last statement */")
    state, query = await backend_state(db, pid)
    assert state == "idle"
    assert "the caller's last statement" in query
    assert "RESET ALL" not in query


async def test_release_still_rolls_back_an_open_transaction(server_pool: asyncpg.Pool, db: asyncpg.Connection) -> None:
    """A call that gave up inside a transaction hands back a clean connection: its writes are gone."""
    conn = await server_pool.acquire()
    tx = conn.transaction()
    await tx.start()
    await conn.execute("INSERT INTO rooms (name) VALUES ('left in an open transaction')")
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    await server_pool.release(conn)

    state, _ = await backend_state(db, pid)
    assert state == "idle"  # not "idle in transaction"
    assert await db.fetchval("SELECT count(*) FROM rooms") == 0
    async with server_pool.acquire() as again:
        assert await again.fetchval("SELECT count(*) FROM rooms") == 0
