"""Resetting the database to the demo data set."""

from __future__ import annotations

from ..db.audit import set_actor
from ..db.clock import current_time
from ..db.seed import reset_to_demo
from ..domain.access import Actor
from ..domain.errors import ResetDisabledError
from .context import OpsContext


async def seed_database(ctx: OpsContext, actor: Actor) -> tuple[int, int, int, int]:
    """A true reset: every table (but the audit trail) emptied and reloaded in one transaction.

    Refused unless the deployment allows resets: on a real hospital's data it
    would wipe every booking.
    """
    if not ctx.allow_reset:
        raise ResetDisabledError("this deployment does not allow resetting its data (ORFLOW_ALLOW_RESET is off)")
    async with ctx.connection() as conn, conn.transaction():
        await set_actor(conn, actor)
        return await reset_to_demo(conn, await current_time(conn))
