"""The bench harness cannot rot: a tiny run of every scenario on a real stack, and invariant checks that can fail.

Only that it runs and that the invariants hold are asserted, never timings:
speed targets live in `orflow bench`, not in the test suite.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import asyncpg
from orflow_server.bench import sql
from orflow_server.bench.config import SMOKE
from orflow_server.bench.runner import run_bench
from orflow_server.settings import Settings

from tests.factories import future


async def test_smoke_run_covers_every_scenario_with_no_violation(
    server_url: str, redis_url: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=server_url, redis_url=redis_url, data_dir=tmp_path / "data")
    run = await run_bench(settings, SMOKE, out_dir=tmp_path)

    assert {r.scenario for r in run.results} == {
        "1 spread",
        "2 hot slot",
        "3 last ventilator",
        "4 browse",
        "5 history",
        "6 live updates",
        "7 expiry",
    }
    assert run.violations == 0, [(r.scenario, r.violations) for r in run.results if r.violations]
    assert run.errors == 0, [(r.scenario, r.errors) for r in run.results if r.errors]
    assert all(r.orflow.count > 0 for r in run.results)
    document = json.loads((tmp_path / "bench-results.json").read_text())
    for row in document["scenarios"]:
        assert {"throughput", "p50_ms", "p99_ms", "ratio_to_ceiling", "violations"} <= row.keys()
    assert any(row["ratio_to_ceiling"] is not None for row in document["scenarios"])
    assert (tmp_path / "bench-chart.png").read_bytes().startswith(b"\x89PNG")
    # The stack is gone: no bench database is left behind.
    admin = await asyncpg.connect(server_url)
    try:
        left = await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname LIKE 'orflow_bench_%'")
    finally:
        await admin.close()
    assert left == 0


async def _insert_clashing_pair(conn: asyncpg.Connection) -> None:
    """Two active holds of one ventilator slot for one patient: every rule broken at once, if nothing stops it."""
    await sql.reset(conn, rooms=1)
    ids = await sql.load_ventilator_slots(conn, count=1, start=future())
    block = sql.SlotBlock(ids[0], ids[0])
    for _ in range(2):
        await sql.insert_holds(conn, block, expire_time=future() + timedelta(hours=1))


GUARDS = (
    "DROP INDEX bookings_one_active_per_slot",
    "ALTER TABLE bookings DROP CONSTRAINT bookings_room_no_overlap",
    "ALTER TABLE bookings DROP CONSTRAINT bookings_surgeon_no_overlap",
    "ALTER TABLE bookings DROP CONSTRAINT bookings_patient_no_overlap",
    "DROP TRIGGER bookings_equipment_within_inventory ON bookings",
)


async def test_invariant_checks_find_what_the_database_guards_would_have_refused(db: asyncpg.Connection) -> None:
    """With every guard dropped (in a transaction rolled back after), the bench's own SQL reports each breach."""
    tx = db.transaction()
    await tx.start()
    try:
        for guard in GUARDS:
            await db.execute(guard)
        await _insert_clashing_pair(db)
        found = await sql.invariant_violations(db)
    finally:
        await tx.rollback()
    assert found == {
        "slot_double_booked": 1,
        "room_overlap": 1,
        "surgeon_overlap": 1,
        "patient_overlap": 1,
        "equipment_over_use": 1,
    }


async def test_invariant_checks_pass_on_sound_data(db: asyncpg.Connection) -> None:
    await sql.reset(db, rooms=3)
    block = await sql.load_slots(db, count=30, rooms=3, start=future())
    await sql.insert_holds(db, block, expire_time=future() + timedelta(hours=1))
    await sql.load_ventilator_slots(db, count=3, start=future(48))
    assert set((await sql.invariant_violations(db)).values()) == {0}
