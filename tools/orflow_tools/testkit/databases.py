"""A fresh, migrated database on a PostgreSQL server, dropped afterwards (tests and bench runs)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from orflow_server.db.migrate import apply_migrations


def with_database(url: str, name: str) -> str:
    """`url` with its database replaced by `name`."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@asynccontextmanager
async def fresh_database(server_url: str, *, prefix: str, migrate: bool = True) -> AsyncIterator[str]:
    """Creates `<prefix>_<random>` on the server `server_url` names, migrates it (unless not `migrate`),
    yields its URL, drops it.

    `server_url` may name any database on that server; its role must be allowed to create databases.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = with_database(server_url, name)
    try:
        if migrate:
            conn = await asyncpg.connect(url)
            try:
                await apply_migrations(conn)
            finally:
                await conn.close()
        yield url
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
