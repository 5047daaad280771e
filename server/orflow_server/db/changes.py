"""Slot-change notifications: the LISTEN connection, its payloads, and the snapshot watchers start from."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import asyncpg

from ..domain.changes import SlotChange, SlotChangeKind, SlotsReset
from ..domain.filters import SlotFilters
from ..domain.models import Slot
from . import slots as db_slots
from .clock import current_time
from .connection import Conn

CHANNEL = "orflow_slot_changes"
"""The channel the 0002 migration's triggers NOTIFY on."""

_KINDS = {kind.value: kind for kind in SlotChangeKind if kind.value not in ("SNAPSHOT", "SNAPSHOT_COMPLETE")}
"""What a notification may say; snapshots are this process's own, never announced."""

Notice = SlotChange | SlotsReset
"""What one notification says."""


async def connect_listener(dsn: str, on_notice: Callable[[Notice], None]) -> asyncpg.Connection:
    """A connection of its own (not the pool's: a pooled one is reset and lent out) that LISTENs."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn, server_settings={"application_name": "orflow-listen"})

    def deliver(_conn: Conn, _pid: int, _channel: str, payload: object) -> None:
        notice = parse_notice(str(payload))
        if notice is not None:
            on_notice(notice)

    try:
        await conn.add_listener(CHANNEL, deliver)
    except BaseException:
        await conn.close()
        raise
    return conn


def parse_notice(payload: str) -> Notice | None:
    """None for a payload this version does not understand (a newer migration's), which is then ignored."""
    try:
        data = json.loads(payload)
        if data.get("kind") == "RESET":
            return SlotsReset()
        return SlotChange(slot_id=int(data["slot_id"]), kind=_KINDS[data["kind"]])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


async def ping(conn: Conn) -> None:
    """A round trip, so a connection that died silently (no FIN) is noticed."""
    await conn.execute("SELECT 1")


async def list_snapshot(conn: Conn, filters: SlotFilters, *, limit: int, turnover: timedelta) -> list[Slot]:
    """The first `limit` matching slots that have not started, by start_time: one statement, so one snapshot."""
    now = await current_time(conn)
    upcoming = SlotFilters(
        procedure_type=filters.procedure_type,
        doctor_id=filters.doctor_id,
        room_id=filters.room_id,
        site_id=filters.site_id,
        window_start=now,
    )
    return await db_slots.list_slots(conn, upcoming, after=None, limit=limit, turnover=turnover)
