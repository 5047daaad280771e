"""Applies the numbered SQL files in db/migrations once each, in order."""

from __future__ import annotations

from importlib import resources

from .connection import Conn

# Any constant works; it only has to be the same for every OR Flow process so
# two processes migrating at once take turns instead of racing.
_MIGRATION_LOCK_KEY = 7_406_115_001


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
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
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
