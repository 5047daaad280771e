"""The bench harness cannot rot: a tiny run of every scenario on a real stack.

Its invariant checks are the test kit's; tests/tools/test_invariants.py shows they can fail.

Only that it runs and that the invariants hold are asserted (and that the multi-process
scenario's calls reached more than one server), never timings:
speed targets live in `orflow bench`, not in the test suite.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from orflow_server.settings import Settings
from orflow_tools.bench import report
from orflow_tools.bench.config import SMOKE
from orflow_tools.bench.results import Measure, ScenarioResult
from orflow_tools.bench.runner import run_bench
from orflow_tools.bench.scaleout import pooler_skip_reason
from orflow_tools.bench.scenarios import CEILING_FORMS
from orflow_tools.testkit import pgbouncer as bouncer
from orflow_tools.testkit.processes import orflow_command

BASELINE = Path(report.__file__).parent / "baselines" / "0.1.0.json"


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
        "8 proxy",
        "9 processes",
        "m multi-process",
        "o overload",
        *(() if pooler_skip_reason(server_url) else ("b pgbouncer",)),
    }
    assert run.violations == 0, [(r.scenario, r.violations) for r in run.results if r.violations]
    # Each load's bookings were checked before the table was emptied for the next (browsing writes nothing).
    checked = {r.scenario for r in run.results if r.extra.get("bookings_checked", 0) > 0}
    assert checked == {r.scenario for r in run.results}
    unchecked = [(r.scenario, r.variant) for r in run.results if r.extra.get("bookings_checked") == 0]
    assert unchecked == []
    assert run.errors == 0, [(r.scenario, r.errors) for r in run.results if r.errors]
    assert all(r.orflow.count > 0 for r in run.results)
    document = json.loads((tmp_path / "bench-results.json").read_text())
    for row in document["scenarios"]:
        assert {"throughput", "p50_ms", "p99_ms", "ratio_to_ceiling", "violations"} <= row.keys()
    assert any(row["ratio_to_ceiling"] is not None for row in document["scenarios"])
    assert (tmp_path / "bench-chart.png").read_bytes().startswith(b"\x89PNG")
    # The ceiling tried both raw forms of the rule at every spread level and says which one it is.
    for row in document["scenarios"]:
        if row["scenario"] == "1 spread" and row["variant"] != "half of peak":
            assert set(row["ceiling_forms_per_s"]) == set(CEILING_FORMS.values())
            assert row["ceiling_form"] in CEILING_FORMS.values()
    assert {row["variant"] for row in document["scenarios"] if row["scenario"] == "8 proxy"} == {
        "direct gRPC",
        "via gRPC-web proxy",
    }
    assert [row["variant"] for row in document["scenarios"] if row["scenario"] == "9 processes"] == [
        "1 server process",
        "2 server processes",
    ]
    # 3 servers behind client-side round robin: more than one answered, and every call is counted by one server.
    one, three = [r for r in run.results if r.scenario == "m multi-process"]
    assert (one.extra["servers"], three.extra["servers"]) == (1, 3)
    assert sum(1 for n in three.extra["calls_per_server"] if n > 0) >= 2
    for leg in (one, three):
        assert sum(leg.extra["calls_per_server"]) == leg.orflow.count
    pooled = [r for r in run.results if r.scenario == "b pgbouncer" and r.extra.get("pooler_pool_size")]
    assert all(r.extra["statement_cache_size"] == 0 for r in pooled)
    # The saved last-release results line up with this run's rows.
    compared = report.compare_to_baseline(run.results, json.loads(BASELINE.read_text()))
    assert "1 spread" in compared and "2 hot slot" in compared
    # The stack is gone: its database was dropped (other benches on a shared server may have their own).
    name = urlsplit(run.database_url).path.lstrip("/")
    assert name.startswith("orflow_bench_")
    admin = await asyncpg.connect(server_url)
    try:
        left = await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name)
    finally:
        await admin.close()
    assert left == 0


def test_the_saved_baseline_is_a_real_bench_run() -> None:
    document = json.loads(BASELINE.read_text())
    assert document["scenarios"] and all("throughput" in row for row in document["scenarios"])
    assert document["note"]  # where and how it was measured


def test_baseline_figures_are_printed_as_ratios() -> None:
    now = [ScenarioResult("1 spread", "4 callers", "4 callers", Measure(200.0, 5.0, 20.0, 100, {"OK": 100}))]
    then = {
        "scenarios": [
            {"scenario": "1 spread", "variant": "4 callers", "throughput": 100.0, "p50_ms": 10.0, "p99_ms": 10.0}
        ]
    }
    line = report.compare_to_baseline(now, then).splitlines()[2].split()
    assert line[-9:] == ["200", "100", "2.00", "5.0", "10.0", "0.50", "20.0", "10.0", "2.00"]
    missing = report.compare_to_baseline(now, {"scenarios": []})
    assert "new" in missing


def test_bench_command_prints_before_after_against_a_baseline(server_url: str, redis_url: str, tmp_path: Path) -> None:
    """`orflow bench --smoke --only 1 --baseline FILE`, end to end through the command."""
    environ = {
        **os.environ,
        "ORFLOW_DATABASE_URL": server_url,
        "ORFLOW_REDIS_URL": redis_url,
        "ORFLOW_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [*orflow_command("bench"), "--smoke", "--only", "1", "--out", str(tmp_path), "--baseline", str(BASELINE)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    printed = done.stdout
    assert done.returncode == 0, printed + done.stderr[-3000:]
    assert "Before/after" in printed and "1 spread" in printed.split("Before/after", 1)[1]
    assert "[met]" in printed or "[MISSED]" in printed


def test_scale_out_legs_are_printed_as_ratios_to_the_first() -> None:
    one = ScenarioResult(
        "m multi-process", "1 server", "24 callers", Measure(200.0, 10.0, 40.0, 400, {"OK": 400}), extra={}
    )
    three = ScenarioResult(
        "m multi-process", "3 servers", "24 callers", Measure(300.0, 8.0, 20.0, 600, {"OK": 600}), extra={}
    )
    three.extra["calls_per_server"] = [200, 200, 200]
    last = report.format_legs([one, three], "m multi-process").splitlines()[-1].split(None, 2)[2].split()
    assert last[:5] == ["300", "1.50", "8.0", "20.0", "0.50"]
    assert last[-3:] == ["[200,", "200,", "200]"]
    assert report.format_legs([one, three], "b pgbouncer") == ""  # a scenario that did not run prints nothing


def test_the_pgbouncer_scenario_says_why_it_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "TCP" in str(pooler_skip_reason("postgresql://postgres@/orflow?host=/tmp/pg"))
    monkeypatch.setattr(bouncer, "BINARY", None)
    assert "not installed" in str(pooler_skip_reason("postgresql://postgres@127.0.0.1:5432/orflow"))


def test_live_updates_are_met_only_when_no_subscriber_missed_one() -> None:
    """A p99 over the deliveries made hid 645 of 1,000 subscribers dropped (a real run, this session)."""

    def live(missed: int) -> report.Target:
        result = ScenarioResult(
            "6 live updates", "1000 subscribers", "20 bookings", Measure(1775.0, 18.8, 35.8, 7100, {}), extra={}
        )
        result.extra["missed"] = missed
        (target,) = report.evaluate_targets([result])
        return target

    assert live(0).is_met is True
    dropped = live(12_900)
    assert dropped.is_met is False
    assert dropped.measured == "35.8 ms, 12900 updates missed"
