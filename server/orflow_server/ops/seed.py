"""Resetting the database to the demo data set."""

from __future__ import annotations

from ..db.clock import current_time
from ..db.seed import reset_to_demo
from .context import OpsContext


async def seed_database(ctx: OpsContext) -> tuple[int, int, int, int]:
    """A true reset: every table emptied and reloaded in one transaction."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        return await reset_to_demo(conn, await current_time(conn))
