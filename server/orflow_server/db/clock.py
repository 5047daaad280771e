"""The database's clock: the one clock every OR Flow process agrees on."""

from __future__ import annotations

from datetime import datetime

from .connection import Conn


async def current_time(conn: Conn) -> datetime:
    now: datetime = await conn.fetchval("SELECT clock_timestamp()")
    return now
