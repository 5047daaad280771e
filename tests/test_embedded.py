"""Embedded PostgreSQL/Redis really start here, with btree_gist, and really stop."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import redis
from orflow_tools.embedded import (
    _alive,
    start_postgres,
    start_redis,
    stop_postgres,
    stop_redis,
)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _at(hour: int, minute: int = 0) -> datetime:
    return datetime(2030, 1, 1, hour, minute, tzinfo=UTC)


async def _exclusion_constraint_refuses_overlap(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        await conn.execute(
            """
            CREATE TABLE booking (
                room_id int NOT NULL,
                a timestamptz NOT NULL,
                b timestamptz NOT NULL,
                EXCLUDE USING gist (room_id WITH =, tstzrange(a, b, '[)') WITH &&)
            )
            """
        )
        insert = "INSERT INTO booking VALUES ($1, $2, $3)"
        await conn.execute(insert, 1, _at(8), _at(10))
        await conn.execute(insert, 1, _at(10), _at(11))  # touching '[)' ranges: allowed
        await conn.execute(insert, 2, _at(9), _at(10))  # same time, other room: allowed
        with pytest.raises(asyncpg.exceptions.ExclusionViolationError):
            await conn.execute(insert, 1, _at(9), _at(9, 30))
    finally:
        await conn.close()


async def _count_bookings(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM booking")
        return count
    finally:
        await conn.close()


def test_embedded_postgres(tmp_path: Path) -> None:
    data_dir = tmp_path / "pg"
    pg = start_postgres(data_dir)
    try:
        assert pg.url.endswith("/orflow")
        asyncio.run(_exclusion_constraint_refuses_overlap(pg.url))
        again = start_postgres(data_dir)  # already running: reused, not started twice
        assert (again.pid, again.url) == (pg.pid, pg.url)
    finally:
        stop_postgres(pg)
    assert not _alive(pg.pid)
    assert not _port_open(pg.port)

    pg = start_postgres(data_dir)  # existing data dir: no initdb, data kept
    try:
        assert asyncio.run(_count_bookings(pg.url)) == 3
    finally:
        stop_postgres(pg)
    assert not _alive(pg.pid)
    assert not _port_open(pg.port)


def test_embedded_redis(tmp_path: Path) -> None:
    r = start_redis(tmp_path / "redis")
    port = int(r.url.rsplit(":", 1)[1].split("/")[0])
    try:
        client = redis.Redis.from_url(r.url)
        assert client.ping() is True
        client.set("orflow:test", "hello")
        assert client.get("orflow:test") == b"hello"
        client.close()
    finally:
        stop_redis(r)
    assert r.process.poll() is not None
    assert not _port_open(port)
