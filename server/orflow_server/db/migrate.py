"""Applies the numbered SQL files in db/migrations once each, in order; tells a server what is still missing."""

from __future__ import annotations

import asyncio
import logging
import time
from importlib import resources

from .connection import Conn

# Any constant works; it only has to be the same for every OR Flow process so
# two processes migrating at once take turns instead of racing.
_MIGRATION_LOCK_KEY = 7_406_115_001


_log = logging.getLogger(__name__)


class SchemaNotReadyError(RuntimeError):
    """The database lacks migrations this code needs, still after the wait."""


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) for every migration, sorted by version."""
    folder = resources.files("orflow_server.db.migrations")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text()) for f in files]


async def apply_migrations(conn: Conn) -> list[str]:
    """Applies what is missing and returns the versions it applied."""
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, apply_time timestamptz NOT NULL DEFAULT now())"
        )
        done = await _applied_versions(conn)
        applied: list[str] = []
        for version, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied.append(version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_KEY)


async def pending_migrations(conn: Conn) -> list[str]:
    """The versions this code ships that the database has not applied (every one on an empty database)."""
    if not await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        return [version for version, _ in migration_files()]
    done = await _applied_versions(conn)
    return [version for version, _ in migration_files() if version not in done]


async def _applied_versions(conn: Conn) -> set[str]:
    return {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}


async def wait_for_schema(conn: Conn, *, seconds: float, every: float = 1.0) -> None:
    """Returns once every migration is applied; SchemaNotReadyError after `seconds`.

    A server started against an older schema would answer INTERNAL ("relation does
    not exist") on the first call that needs the newer one. Under Kubernetes the
    migration Job and the servers start together, so a server waits for the Job
    rather than failing at once; alone, it stops naming what to run.
    """
    deadline = time.monotonic() + seconds
    pending = await pending_migrations(conn)
    if pending:
        _log.warning("database schema is behind: waiting for migrations %s (`orflow migrate`)", ", ".join(pending))
    while pending:
        if time.monotonic() >= deadline:
            raise SchemaNotReadyError(
                f"the database lacks migrations {', '.join(pending)}: run `orflow migrate` (waited {seconds:g} s)"
            )
        await asyncio.sleep(every)
        pending = await pending_migrations(conn)
