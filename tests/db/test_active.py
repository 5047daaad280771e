"""One definition of an active booking (db/active.py), and the partial-index plans it must keep."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import asyncpg
from orflow_server.db.active import ACTIVE_STATUS_LIST, is_active
from orflow_server.domain.models import ACTIVE_STATUSES

from tests.factories import insert_equipment, insert_slot

# The partial indexes (and EXCLUDE constraints' indexes) of migrations 0001/0007 whose predicate is "active".
ACTIVE_INDEXES = {
    "bookings_one_active_per_slot",
    "bookings_room_no_overlap",
    "bookings_surgeon_no_overlap",
    "bookings_patient_no_overlap",
    "bookings_active_during_idx",
}


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
    # As migration 0007 (running the day) wrote it; 0001 had only PENDING and CONFIRMED.
    statuses = "'PENDING', 'CONFIRMED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED'"
    assert statuses == ACTIVE_STATUS_LIST
    assert is_active() == f"status IN ({statuses})"
    assert is_active("b") == f"b.status IN ({statuses})"


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
    """With sequential scans priced out, each check inside orflow_book() must still find an active partial index.

    The checks run inside the PL/pgSQL function (migration 0006), so their
    plans are captured with auto_explain's nested-statement logging, sent to
    this connection as LOG notices.
    """
    equipment = await insert_equipment(db, quantity=3)
    slot_id = await insert_slot(db, equipment=[(equipment, 1)])
    plans: list[Any] = []

    def on_log(_conn: object, message: asyncpg.PostgresLogMessage) -> None:
        text = str(message.message)
        if text.startswith("duration:") and "{" in text:
            plans.append(json.loads(text[text.index("{") :]))

    db.add_log_listener(on_log)
    try:
        async with db.transaction():
            await db.execute("LOAD 'auto_explain'")
            for setting, value in (
                ("auto_explain.log_min_duration", "0"),
                ("auto_explain.log_nested_statements", "on"),
                ("auto_explain.log_format", "json"),
                ("client_min_messages", "log"),
                ("enable_seqscan", "off"),
            ):
                await db.execute("SELECT set_config($1, $2, true)", setting, value)
            await db.fetchrow(
                "SELECT * FROM orflow_book($1, 'p-1', NULL, 'test', 'ADMIN', $2, $3)",
                slot_id,
                timedelta(minutes=15),
                timedelta(minutes=2),
            )
            await db.execute("SET LOCAL client_min_messages = notice")
    finally:
        db.remove_log_listener(on_log)
    used = set(index_names(plans))
    bookings_indexes = {name for name in used if name.startswith("bookings_")}
    assert plans, "auto_explain reported no plans"
    # Failing overdue holds reads PENDING ones through their own partial index; every check reads active ones.
    # (found by a sub-select, then updated by primary key: migration 0008 locks them in id order).
    allowed = ACTIVE_INDEXES | {"bookings_pending_room_during_idx", "bookings_pkey"}
    assert bookings_indexes <= allowed, f"a check read bookings through a non-active index: {used}"
    assert {"bookings_one_active_per_slot", "bookings_room_no_overlap"} <= bookings_indexes
