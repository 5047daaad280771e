"""A filtered slot listing walks an index in (start_time, id) order and stops after one page, however big the table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from orflow_server.db import slots as db_slots
from orflow_server.domain.filters import SlotFilters

from tests.factories import future, insert_doctor, insert_equipment, insert_room, insert_slot

PROCEDURES = ["Neuro", "Cardiac", "Ortho", "Spine"]


def listing_node_types(plan: dict[str, Any]) -> list[str]:
    """The node types that produce the page's rows: a slot's own sub-plans (its equipment list, its
    availability) run once per row of the page and are left out. PostgreSQL 16 and later give an
    ordered aggregate such as a slot's equipment list a Sort node of its own; 15 sorts inside the Agg."""
    found = [plan["Node Type"]]
    for child in plan.get("Plans", []):
        if child.get("Parent Relationship") not in ("SubPlan", "InitPlan"):
            found += listing_node_types(child)
    return found


def index_names(plan: Any) -> set[str]:
    if isinstance(plan, dict):
        return {plan["Index Name"]} if "Index Name" in plan else set().union(*map(index_names, plan.values()))
    if isinstance(plan, list):
        return set().union(*map(index_names, plan))
    return set()


async def _load(db: asyncpg.Connection, *, count: int) -> None:
    rooms = [await insert_room(db) for _ in range(10)]
    doctors = [await insert_doctor(db) for _ in range(10)]
    await db.execute(
        """
        INSERT INTO slots (doctor_id, room_id, procedure_type, start_time, end_time)
        SELECT ($2::bigint[])[n % 10 + 1], ($3::bigint[])[n % 10 + 1], ($4::text[])[n % 4 + 1],
               $5::timestamptz + (n / 10) * interval '1 hour', $5::timestamptz + (n / 10 + 1) * interval '1 hour'
        FROM generate_series(0, $1 - 1) n
        """,
        count,
        doctors,
        rooms,
        PROCEDURES,
        datetime.now(UTC) + timedelta(days=1),
    )
    await db.execute("ANALYZE slots, rooms, doctors, sites, equipment, slot_equipment, bookings")


async def _plan_of_listing(db: asyncpg.Connection, filters: SlotFilters) -> Any:
    """The plan of the statement list_slots sends, as auto_explain reports it (sent here as a LOG notice)."""
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
                ("auto_explain.log_format", "json"),
                ("client_min_messages", "log"),
            ):
                await db.execute("SELECT set_config($1, $2, true)", setting, value)
            page = await db_slots.list_slots(db, filters, after=None, limit=21, turnover=timedelta(minutes=30))
            await db.execute("SET LOCAL client_min_messages = notice")
    finally:
        db.remove_log_listener(on_log)
    assert len(page) == 21
    listing = [plan for plan in plans if "FROM slots s" in plan.get("Query Text", "")]
    assert len(listing) == 1, f"expected the listing's plan once, got {len(listing)}"
    return listing[0]["Plan"]


async def test_procedure_and_available_reads_one_page_in_index_order(db: asyncpg.Connection) -> None:
    """Not every match sorted: the retired and availability tests must not hide how many rows they keep.

    A retired test the planner could not estimate (a sub-select inside LEAST) made it expect
    almost no rows, so it read and sorted all 125,000 matches of a 1 M slot table per page.
    """
    await _load(db, count=4000)
    plan = await _plan_of_listing(db, SlotFilters(procedure_type="neuro", is_available_only=True))
    assert "Sort" not in listing_node_types(plan)
    assert "slots_procedure_start_idx" in index_names(plan)


async def test_in_service_listing_reads_one_page_in_index_order(db: asyncpg.Connection) -> None:
    await _load(db, count=4000)
    plan = await _plan_of_listing(db, SlotFilters(procedure_type="neuro"))
    assert "Sort" not in listing_node_types(plan)
    assert "slots_procedure_start_idx" in index_names(plan)


async def test_the_in_service_test_agrees_with_the_retire_time_each_slot_shows(db: asyncpg.Connection) -> None:
    """The listing's in-service filter and the retire_time a slot reports are spelt apart; they must agree."""
    kept_equipment, retired_equipment = await insert_equipment(db), await insert_equipment(db)
    plain = await insert_slot(db, start=future(30))
    kept = await insert_slot(db, start=future(31), equipment=[(kept_equipment, 1)])
    retired = {
        "slot": await insert_slot(db, start=future(32)),
        "room": await insert_slot(db, start=future(33)),
        "doctor": await insert_slot(db, start=future(34)),
        "equipment": await insert_slot(db, start=future(35), equipment=[(kept_equipment, 1), (retired_equipment, 1)]),
    }
    await db.execute("UPDATE slots SET retire_time = now() WHERE id = $1", retired["slot"])
    await db.execute(
        "UPDATE rooms SET retire_time = now() FROM slots s WHERE s.id = $1 AND rooms.id = s.room_id", retired["room"]
    )
    await db.execute(
        "UPDATE doctors SET retire_time = now() FROM slots s WHERE s.id = $1 AND doctors.id = s.doctor_id",
        retired["doctor"],
    )
    await db.execute("UPDATE equipment SET retire_time = now() WHERE id = $1", retired_equipment)

    async def listed(**filters: Any) -> dict[int, Any]:
        page = await db_slots.list_slots(db, SlotFilters(**filters), after=None, limit=50, turnover=timedelta(0))
        return {slot.id: slot for slot in page}

    everything = await listed(is_retired_shown=True)
    assert set(everything) == {plain, kept, *retired.values()}
    assert {i for i, slot in everything.items() if slot.retire_time is None} == {plain, kept}
    assert set(await listed()) == {plain, kept}
    for is_retired_shown in (False, True):
        available = await listed(is_available_only=True, is_retired_shown=is_retired_shown)
        assert set(available) == {plain, kept}
        assert all(slot.is_available for slot in available.values())
    assert not any(everything[i].is_available for i in retired.values())
