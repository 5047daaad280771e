"""A server or worker started before its migrations waits for them, then stops naming what to run."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import asyncpg
import pytest
from orflow_server.db.migrate import (
    SchemaNotReadyError,
    apply_migrations,
    migration_files,
    pending_migrations,
    wait_for_schema,
)
from orflow_tools.testkit.databases import fresh_database

from tests.auth import TEST_SECRET
from tests.cli.test_processes import _base_env

ALL_VERSIONS = [version for version, _ in migration_files()]


async def test_an_empty_database_lacks_every_migration_and_a_migrated_one_none(server_url: str) -> None:
    async with fresh_database(server_url, prefix="orflow_schema", migrate=False) as url:
        conn = await asyncpg.connect(url)
        try:
            assert await pending_migrations(conn) == ALL_VERSIONS
            await conn.execute(
                "CREATE TABLE schema_migrations (version text PRIMARY KEY, apply_time timestamptz DEFAULT now())"
            )
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", ALL_VERSIONS[0])
            assert await pending_migrations(conn) == ALL_VERSIONS[1:]
        finally:
            await conn.close()
    async with fresh_database(server_url, prefix="orflow_schema") as url:
        conn = await asyncpg.connect(url)
        try:
            assert await pending_migrations(conn) == []
            started = time.monotonic()
            await wait_for_schema(conn, seconds=0)  # nothing to wait for: returns at once, even with no time
            assert time.monotonic() - started < 1
        finally:
            await conn.close()


async def test_the_wait_ends_when_the_migrations_land_or_fails_naming_them(server_url: str) -> None:
    async with fresh_database(server_url, prefix="orflow_schema", migrate=False) as url:
        waiting, migrating = await asyncpg.connect(url), await asyncpg.connect(url)
        try:
            with pytest.raises(SchemaNotReadyError, match=f"lacks migrations {ALL_VERSIONS[0]}, .*orflow migrate"):
                await wait_for_schema(waiting, seconds=0.3, every=0.1)

            async def migrate_later() -> list[str]:
                await asyncio.sleep(0.5)
                return await apply_migrations(migrating)  # what the Kubernetes migration Job does meanwhile

            job = asyncio.create_task(migrate_later())
            await wait_for_schema(waiting, seconds=30, every=0.1)
            assert await job == ALL_VERSIONS
            assert await pending_migrations(waiting) == []
        finally:
            await waiting.close()
            await migrating.close()


@pytest.mark.parametrize("command", ["server", "worker"])
async def test_the_process_stops_with_a_clear_message_on_an_unmigrated_database(
    server_url: str, redis_url: str, command: str
) -> None:
    async with fresh_database(server_url, prefix="orflow_schema", migrate=False) as url:
        env = _base_env(
            ORFLOW_DATABASE_URL=url,
            ORFLOW_REDIS_URL=redis_url,
            ORFLOW_GRPC_ADDR="127.0.0.1:0",
            ORFLOW_AUTH_SECRET=TEST_SECRET,
            ORFLOW_SCHEMA_WAIT_SECONDS="1",
        )
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "orflow_server", command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 3, done.stderr
    assert f"orflow: the database lacks migrations {ALL_VERSIONS[0]}, " in done.stderr
    assert "run `orflow migrate` (waited 1 s)" in done.stderr
