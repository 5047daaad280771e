"""The scale-out scenarios: several servers balanced round robin beside one, and PgBouncer beside direct.

m. multi-process: the same booking load on 1 server, then on 3 servers and 2
   workers against the one PostgreSQL and Redis, spread by client-side round
   robin over the three addresses (what callers of a headless Kubernetes
   Service do); per-server call counts from each server's own /metrics.
b. pgbouncer: the same load on one server talking to PostgreSQL directly (asyncpg's
   statement cache on, then off) and through a private PgBouncer in
   transaction mode (cache off, as PgBouncer < 1.21 requires); the backends
   each leg opened on PostgreSQL.

Every leg is checked with the test kit's invariants before its bookings are cleared.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from ..testkit import pgbouncer as bouncer
from . import sql
from .clients import run_clients
from .results import Measure, ScenarioResult
from .scenarios import SERVER_POOL_SIZE, Bench
from .stack import Server, server_fleet

MULTI = "m multi-process"
POOLER = "b pgbouncer"
HANDLED = "grpc_server_handled_total{"  # labels in the text format are sorted by name, so match each one
CREATE_BOOKING = ('grpc_method="CreateBooking"', 'grpc_service="orflow.v1.BookingService"')


async def _load(b: Bench, servers: list[Server], slots: list[int], tag: str) -> Measure:
    """The closed loop of the spread scenario, each client process balancing round robin over `servers`."""
    cfg = b.config
    target = "ipv4:" + ",".join(s.addr for s in servers)
    per_process = max(1, cfg.scale_callers // cfg.processes)
    jobs = [
        b.book_job(
            "rpc",
            share,
            f"{tag}{p}",
            concurrency=per_process,
            seconds=cfg.spread_seconds,
            target=target,
            round_robin=True,
        )
        for p, share in enumerate(b.share(slots))
    ]
    return Measure.merge(await run_clients(jobs, wait_s=cfg.spread_seconds + 120))


async def _checked(b: Bench, result: ScenarioResult) -> ScenarioResult:
    """Invariants on the leg's own bookings, then a clean table for the next leg."""
    checked = await b.check(result)
    await sql.clear_bookings(b.conn)
    return checked


def _handled(server: Server) -> int:
    """CreateBooking calls this server completed (every code), from its /metrics."""
    with urllib.request.urlopen(f"http://{server.metrics_addr}/metrics", timeout=10) as response:
        text = response.read().decode()
    lines = [line for line in text.splitlines() if line.startswith(HANDLED) and all(x in line for x in CREATE_BOOKING)]
    return int(sum(float(line.rpartition(" ")[2]) for line in lines))


def _vs(result: ScenarioResult, first: ScenarioResult, name: str) -> None:
    """Throughput and p99 as ratios to the scenario's first leg, stored with the result."""
    if first.orflow.throughput:
        result.extra[f"throughput_vs_{name}"] = round(result.orflow.throughput / first.orflow.throughput, 3)
    if first.orflow.p99_ms and result.orflow.p99_ms:
        result.extra[f"p99_vs_{name}"] = round(result.orflow.p99_ms / first.orflow.p99_ms, 3)


async def multi_process(b: Bench) -> list[ScenarioResult]:
    """1 server, then 3 servers and 2 workers (the stack's worker and one more), the same load round robin."""
    cfg = b.config
    if b.stack.extra_env is None:
        b.progress("multi-process: skipped (the bench does not start servers in a --target run)")
        return []
    await sql.reset(b.conn, rooms=cfg.rooms)  # its own rooms and surgeons, whichever scenario ran before
    block = await sql.load_slots(
        b.conn, count=cfg.spread_slots // 2, rooms=cfg.rooms, start=b.now() + timedelta(days=1300)
    )
    results: list[ScenarioResult] = []
    for count, extra_workers in ((1, 0), (3, 1)):
        label = "1 server" if count == 1 else f"{count} servers, {1 + extra_workers} workers"
        b.progress(f"multi-process: {cfg.scale_callers} callers, round robin over {label}, {cfg.spread_seconds:g} s")
        with server_fleet(b.stack, count, workers=extra_workers) as servers:
            measure = await _load(b, servers, block.ids, f"mp{count}-")
            calls = [await asyncio.to_thread(_handled, s) for s in servers]
        result = ScenarioResult(
            MULTI,
            label,
            f"{cfg.scale_callers} callers",
            measure,
            extra={"servers": count, "calls_per_server": calls, "per_server_per_s": _per_server(measure, count)},
        )
        if results:
            _vs(result, results[0], "one_server")
        b.progress(f"  CreateBooking calls answered per server: {calls}")
        results.append(await _checked(b, result))
    return results


def _per_server(measure: Measure, count: int) -> float:
    return round(measure.throughput / count, 1)


# --- PgBouncer vs direct ---------------------------------------------------------------------------------


def pooler_skip_reason(database_url: str) -> str | None:
    """Why the PgBouncer legs cannot run here, or None."""
    if bouncer.BINARY is None:
        return "pgbouncer is not installed (apt-get install -y pgbouncer)"
    host = urlsplit(database_url).hostname
    if not host or host.startswith("/"):
        return "PgBouncer fronts a PostgreSQL on TCP: set ORFLOW_DATABASE_URL (the embedded one listens on a socket)"
    return None


async def _backends(b: Bench) -> int:
    return int(await b.conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"))


@contextlib.asynccontextmanager
async def _peak_backends(b: Bench, into: dict[str, int]) -> AsyncIterator[None]:
    """Samples the database's backends every 50 ms; `into["peak"]` is the most seen above those before."""
    before = await _backends(b)
    into["peak"] = 0
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            into["peak"] = max(into["peak"], await _backends(b) - before)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.05)

    task = asyncio.create_task(sample())
    try:
        yield
    finally:
        done.set()
        await task


async def _pooler_leg(
    b: Bench, name: str, slots: list[int], env: Mapping[str, str], tag: str
) -> tuple[ScenarioResult, dict[str, Any]]:
    cfg = b.config
    b.progress(f"pgbouncer: {cfg.scale_callers} callers, {name}, {cfg.spread_seconds:g} s")
    backends: dict[str, int] = {}
    async with _peak_backends(b, backends):
        with server_fleet(b.stack, 1, env=env) as servers:
            measure = await _load(b, servers, slots, tag)
    extra: dict[str, Any] = {
        "statement_cache_size": int(env["ORFLOW_DB_STATEMENT_CACHE_SIZE"]),
        "server_pool_max": SERVER_POOL_SIZE,
        "db_backends_peak": backends["peak"],
    }
    return ScenarioResult(POOLER, name, f"{cfg.scale_callers} callers", measure, extra=extra), extra


_POOLER_LEGS = (
    ("direct, statement cache 100", 0, 100),
    # As many server connections as the server's pool (the pooler's own cost), then a quarter of them
    # (what multiplexing buys: how few PostgreSQL backends carry the same load).
    (f"PgBouncer pool {SERVER_POOL_SIZE}, cache 0", SERVER_POOL_SIZE, 0),
    (f"PgBouncer pool {SERVER_POOL_SIZE // 4}, cache 0", SERVER_POOL_SIZE // 4, 0),
    ("direct, cache 0", 0, 0),
)
"""(name, PgBouncer default_pool_size or 0 for direct, asyncpg statement cache size); the first is the reference."""


async def pgbouncer(b: Bench) -> list[ScenarioResult]:
    """Direct with the statement cache, through PgBouncer (transaction mode, cache off), direct without it."""
    cfg = b.config
    if b.stack.extra_env is None:
        b.progress("pgbouncer: skipped (the bench does not start servers in a --target run)")
        return []
    why_not = pooler_skip_reason(b.stack.database_url)
    if why_not:
        b.progress(f"pgbouncer: skipped ({why_not})")
        return []
    await sql.reset(b.conn, rooms=cfg.rooms)  # its own rooms and surgeons, whichever scenario ran before
    block = await sql.load_slots(
        b.conn, count=cfg.spread_slots // 2, rooms=cfg.rooms, start=b.now() + timedelta(days=1500)
    )
    direct = b.stack.database_url
    results: list[ScenarioResult] = []
    for n, (name, pooler_size, cache) in enumerate(_POOLER_LEGS):
        env = {"ORFLOW_DATABASE_DIRECT_URL": direct, "ORFLOW_DB_STATEMENT_CACHE_SIZE": str(cache)}
        if pooler_size:
            with bouncer.pgbouncer(direct, pool_size=pooler_size) as pooled:
                result, extra = await _pooler_leg(b, name, block.ids, {**env, "ORFLOW_DATABASE_URL": pooled}, f"pb{n}-")
            extra["pooler_pool_size"] = pooler_size
        else:
            result, _ = await _pooler_leg(b, name, block.ids, {**env, "ORFLOW_DATABASE_URL": direct}, f"pb{n}-")
        if results:
            _vs(result, results[0], "direct_cached")
        results.append(await _checked(b, result))
    return results
