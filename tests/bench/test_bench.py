"""The bench harness cannot rot: a tiny run of every scenario on a real stack.

Its invariant checks are the test kit's; tests/tools/test_invariants.py shows they can fail.

Only that it runs and that the invariants hold are asserted, never timings:
speed targets live in `orflow bench`, not in the test suite.
"""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
from orflow_server.settings import Settings
from orflow_tools.bench.config import SMOKE
from orflow_tools.bench.runner import run_bench


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
