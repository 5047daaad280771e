"""One definition of an active booking (db/active.py), and the partial-index plans it must keep."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import asyncpg
from orflow_server.db import bookings as db_bookings
from orflow_server.db.active import ACTIVE_STATUS_LIST, is_active
from orflow_server.domain.models import ACTIVE_STATUSES

from tests.factories import insert_equipment, insert_slot

# The partial indexes (and EXCLUDE constraints' indexes) of migration 0001 whose predicate is "active".
ACTIVE_INDEXES = {
    "bookings_one_active_per_slot",
    "bookings_room_no_overlap",
    "bookings_surgeon_no_overlap",
    "bookings_patient_no_overlap",
    "bookings_active_during_idx",
}


class RecordingConn:
    """Passes calls through to a real connection and keeps every statement with its arguments."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        self.statements.append((sql, args))
        return await self.conn.fetchrow(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> Any:
        self.statements.append((sql, args))
        return await self.conn.fetch(sql, *args)


def index_names(plan: Any) -> Iterator[str]:
    if isinstance(plan, dict):
        if "Index Name" in plan:
            yield plan["Index Name"]
        for value in plan.values():
            yield from index_names(value)
    elif isinstance(plan, list):
        for item in plan:
            yield from index_names(item)


def test_the_clause_reads_as_the_migrations_wrote_it() -> None:
    assert ACTIVE_STATUS_LIST == "'PENDING', 'CONFIRMED'"
    assert is_active() == "status IN ('PENDING', 'CONFIRMED')"
    assert is_active("b") == "b.status IN ('PENDING', 'CONFIRMED')"


async def test_every_active_partial_index_has_the_same_statuses(db: asyncpg.Connection) -> None:
    rows = await db.fetch(
        """
        SELECT c.relname AS name, pg_get_expr(i.indpred, i.indrelid) AS predicate
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = 'bookings'::regclass AND i.indpred IS NOT NULL
        """
    )
    predicates = {r["name"]: r["predicate"] for r in rows if "CONFIRMED" in r["predicate"]}
    assert set(predicates) == ACTIVE_INDEXES
    for name, predicate in predicates.items():
        assert set(re.findall(r"'(\w+)'::text", predicate)) == {s.value for s in ACTIVE_STATUSES}, name


async def test_the_booking_checks_read_through_the_active_partial_indexes(db: asyncpg.Connection) -> None:
    """With sequential scans priced out, each check must still find an index whose predicate its WHERE implies."""
    equipment = await insert_equipment(db, quantity=3)
    slot_id = await insert_slot(db, equipment=[(equipment, 1)])
    recording = RecordingConn(db)
    async with db.transaction():
        slot = await db_bookings.lock_slot(db, slot_id)
        assert slot is not None
        await db_bookings.find_conflicts(recording, slot, patient_id="p-1", turnover=timedelta(minutes=15))  # type: ignore[arg-type]
        await db_bookings.equipment_usage(recording, slot)  # type: ignore[arg-type]
        await db.execute("SET LOCAL enable_seqscan = off")
        used = set()
        for sql, args in recording.statements:
            [plan] = json.loads(await db.fetchval("EXPLAIN (FORMAT JSON, COSTS OFF) " + sql, *args))
            used |= set(index_names(plan))
    bookings_indexes = {name for name in used if name.startswith("bookings_")}
    assert bookings_indexes <= ACTIVE_INDEXES, f"a check read bookings through a non-active index: {used}"
    assert {"bookings_one_active_per_slot", "bookings_room_no_overlap"} <= bookings_indexes
