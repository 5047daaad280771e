"""The audit trail: naming the actor of a transaction, and reading the events.

The events themselves are written by triggers (migration 0003) in the same
transaction as each change, so nothing here can forget one.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from ..domain.access import Actor
from ..domain.filters import AuditFilters
from ..domain.models import AuditEvent
from .connection import Conn
from .where import Where


async def set_actor(conn: Conn, actor: Actor) -> None:
    """Names who makes this transaction's changes; must run inside the transaction."""
    await conn.execute(
        "SELECT set_config('orflow.actor', $1, true), set_config('orflow.actor_role', $2, true)",
        actor.subject,
        actor.role.value,
    )


def _event(row: asyncpg.Record) -> AuditEvent:
    def doc(raw: str | None) -> dict[str, Any] | None:
        return None if raw is None else dict(json.loads(raw))

    return AuditEvent(
        row["id"],
        row["event_time"],
        row["actor"],
        row["actor_role"],
        row["action"],
        row["resource_type"],
        row["resource_id"],
        doc(row["before"]),
        doc(row["after"]),
    )


async def list_events(conn: Conn, filters: AuditFilters, *, before_id: int | None, limit: int) -> list[AuditEvent]:
    """One keyset page of events, newest (highest id) first."""
    where = Where()
    for column in ("action", "actor", "resource_type", "resource_id"):
        value = getattr(filters, column)
        if value:
            where.add(f"{column} = {where.bind(value)}")
    if filters.start_time is not None:
        where.add(f"event_time >= {where.bind(filters.start_time)}")
    if filters.end_time is not None:
        where.add(f"event_time < {where.bind(filters.end_time)}")
    if before_id is not None:
        where.add(f"id < {where.bind(before_id)}")
    sql = (
        "SELECT id, event_time, actor, actor_role, action, resource_type, resource_id, before::text, after::text"
        f" FROM audit_events {where.sql()} ORDER BY id DESC LIMIT {where.bind(limit)}"
    )
    return [_event(row) for row in await conn.fetch(sql, *where.params)]
