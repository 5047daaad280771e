"""Runs the scenarios in order against one stack and writes what they measured."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import asyncpg
from orflow_server.settings import Settings

from . import overload, report, scaleout, scenarios, sql
from .config import BenchConfig
from .results import ScenarioResult
from .stack import bench_stack

HISTORY_SLOTS = 40_000  # free slots offered to the history runs (plenty for their seconds of load)


@dataclass
class BenchRun:
    results: list[ScenarioResult] = field(default_factory=list)
    targets: list[report.Target] = field(default_factory=list)
    seconds: float = 0.0
    database_url: str = ""  # the database the run loaded (its own, dropped at the end, unless --target)

    @property
    def violations(self) -> int:
        return sum(r.violation_count for r in self.results)

    @property
    def errors(self) -> int:
        return sum(sum(r.errors.values()) for r in self.results)


def _progress(started: float) -> Callable[[str], None]:
    def say(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    return say


async def _browse_and_history(b: scenarios.Bench) -> list[ScenarioResult]:
    """Small table first (browse, then booking with no history), then grown to the large size and history added."""
    cfg = b.config
    small, large = cfg.browse_sizes
    rooms = cfg.browse_rooms
    await sql.reset(b.conn, rooms=rooms)
    start = b.now() + timedelta(days=1)
    b.progress(f"loading {small:,} slots (1 in 10 booked)")
    first = await sql.load_slots(b.conn, count=small, rooms=rooms, start=start)
    await sql.book_every(b.conn, first, nth=10, status="CONFIRMED", tag="seen-")
    await sql.vacuum_analyze(b.conn)
    results = await scenarios.browse(b, size_label=f"{small:,}")
    # Book from the far end of the block, so the large table's first page still
    # browses the same, lightly booked slots the small table's did.
    results.append(await scenarios.history(b, [s for s in reversed(first.ids) if s % 10], label="0 past"))
    b.progress(f"loading {large - small:,} more slots (1 in 10 booked) and {cfg.history_size:,} past bookings")
    loaded = time.monotonic()
    grown = await sql.load_slots(
        b.conn, count=large - small, rooms=rooms, start=start + timedelta(hours=small // rooms + 2)
    )
    await sql.book_every(b.conn, grown, nth=10, status="CONFIRMED", tag="seen-")
    extra = await asyncpg.connect(b.stack.database_url)
    try:
        await sql.load_history([b.conn, extra], count=cfg.history_size, rooms=rooms, now=b.now())
    finally:
        await extra.close()
    await sql.vacuum_analyze(b.conn)
    b.progress(f"loaded in {time.monotonic() - loaded:.1f} s")
    results += await scenarios.browse(b, size_label=f"{large:,}")
    free = [s for s in grown.ids[: HISTORY_SLOTS * 2] if s % 10]
    results.append(await scenarios.history(b, free, label=f"{cfg.history_size:,} past"))
    return results


SCENARIOS: tuple[tuple[frozenset[str], Callable[[scenarios.Bench], Awaitable[list[ScenarioResult]]]], ...] = (
    (frozenset("1"), scenarios.spread),
    (frozenset("2"), scenarios.hot_slot),
    (frozenset("3"), scenarios.last_ventilator),
    (frozenset("6"), scenarios.live_updates),
    (frozenset("7"), scenarios.expiry),
    (frozenset("8"), scenarios.proxy),
    (frozenset("9"), scenarios.processes),
    (frozenset("45"), _browse_and_history),  # one data set grown from small to large serves both (resets the rooms)
    (frozenset("m"), scaleout.multi_process),  # 1 vs 3 servers + 2 workers, round robin
    (frozenset("b"), scaleout.pgbouncer),  # PgBouncer transaction mode vs direct
    (frozenset("o"), overload.overload),  # 10x the sustained booking rate on a server of its own
)


async def run_bench(
    settings: Settings,
    config: BenchConfig,
    *,
    out_dir: Path,
    target: str | None = None,
    server_processes: int = 1,
    only: frozenset[str] = frozenset(),
    environ: Mapping[str, str] | None = None,
    note: str = "",
) -> BenchRun:
    """Runs every scenario (or those whose number is in `only`) and writes bench-results.json and the chart.

    `environ` is what the stack's child processes inherit (default: this process's environment).
    """
    started = time.monotonic()
    say = _progress(started)
    run = BenchRun()
    say("starting the stack" if target is None else f"targeting {target}")
    async with bench_stack(
        settings,
        target=target,
        server_processes=server_processes,
        environ=os.environ if environ is None else environ,
    ) as stack:
        say(f"stack: gRPC {stack.target}, {server_processes} server process(es), {config.processes} client processes")
        run.database_url = stack.database_url
        conn = await asyncpg.connect(stack.database_url)
        try:
            b = scenarios.Bench(stack, config, conn, say)
            await sql.reset(conn, rooms=config.rooms)  # every scenario but browse/history shares these rooms
            for numbers, scenario in SCENARIOS:
                if only and not only & numbers:
                    continue
                for result in await scenario(b):
                    run.results.append(result)
                    say(
                        f"  {result.scenario} / {result.variant}: {result.orflow.throughput:,.0f}/s, "
                        f"p50 {result.orflow.p50_ms or 0:.1f} ms, p99 {result.orflow.p99_ms or 0:.1f} ms"
                        + (f", ratio {result.ratio_to_ceiling:.2f}" if result.ratio_to_ceiling is not None else "")
                        + (f", VIOLATIONS {result.violations}" if result.violation_count else "")
                        + (f", errors {result.errors}" if result.errors else "")
                    )
        finally:
            await conn.close()
    run.seconds = time.monotonic() - started
    run.targets = report.evaluate_targets(run.results)
    out_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, after the load
    meta = {
        **({"note": note} if note else {}),
        "seconds": round(run.seconds, 1),
        "server_processes": server_processes,
        "client_processes": config.processes,
    }
    report.write_json(out_dir / "bench-results.json", run.results, run.targets, meta)
    (out_dir / "bench-chart.png").unlink(missing_ok=True)
    why_not = report.draw_chart(out_dir / "bench-chart.png", run.results)
    if why_not:
        say(why_not)
    return run
