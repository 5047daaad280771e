"""Overload: ten times the booking rate a server sustains, offered to it; what it sheds, what it keeps, what it costs.

`python -m orflow_tools.bench.overload [--size smoke|quick|full] [--out DIR]` starts the bench stack
(bench/stack.py) and one more `orflow server` of its own, whose process and /metrics it can watch:

1. sustained: `callers` closed-loop callers book free slots for `seconds`; what they complete per
   second (booked or refused by the rule) is the rate the server sustains;
2. overload: `factor` times that rate, offered open loop (each call due at its moment, latency
   counted from then) for `seconds`, every call with a `deadline_s` gRPC deadline;
   `rounds` times, one after the other;
3. after: the pool's connections in use once the load stops, the process's RSS after each round, and the
   invariants.

It reports calls shed by code (RESOURCE_EXHAUSTED / UNAVAILABLE, both sent with RetryInfo, decided by
the in-flight limit before a connection is acquired), the accepted calls' p50/p99, the calls whose
caller gave up (DEADLINE_EXCEEDED, or CANCELLED when the server's cancel beat a busy client's own timer:
their database work was stopped, ops/context.py), the server's CPU seconds, the most pool
connections ever in use, and RSS before, at its peak and after. Figures only: no speed is judged here.

The flood comes from a few processes, niced (`--client-nice`, 19 by default) so that the measured
server and PostgreSQL get the shared cores first, as they would with callers on other machines; their
own latencies include the time their calls waited at their own end. Beside them a probe process books
`probe_rate` calls a second at normal priority: its p50/p99 are what a caller that is not itself
flooding gets from the overloaded server, the figure `orflow bench` shows for scenario o.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from orflow_server.settings import Settings

from ..testkit import invariants
from ..testkit.ports import free_port
from ..testkit.processes import ChildStack
from . import sql
from .clients import run_clients
from .config import BenchConfig
from .results import Measure, ScenarioResult, percentile
from .scenarios import REFUSALS, Bench
from .stack import Stack, bench_stack

DECIDED = frozenset({"OK", *REFUSALS})
"""Answers the booking rule gave: booked, or refused for the slot's sake (not shed, not given up)."""
SHED = ("RESOURCE_EXHAUSTED", "UNAVAILABLE")
GAVE_UP = ("DEADLINE_EXCEEDED", "CANCELLED")
"""The caller's deadline passed: its own timer, or (a client too busy to fire it first) the server's RST_STREAM."""
SAMPLE_EVERY_S = 1.0  # /metrics is served by a thread of the measured server: sampled sparingly


@dataclass(frozen=True, kw_only=True)
class OverloadConfig:
    processes: int = 4  # load client processes
    callers: int = 32  # closed-loop callers that find the sustained rate
    seconds: float = 5.0  # each phase
    factor: float = 10.0  # offered = factor x sustained
    deadline_s: float = 2.0  # every overload call's gRPC deadline
    rounds: int = 2  # overload rounds, one after the other (RSS is read after each)
    rooms: int = 1000
    server_env: Mapping[str, str] = field(default_factory=dict)  # ORFLOW_* for the measured server
    client_nice: int = 0  # the load processes' niceness (0-19) in the overload rounds: >0 favours the server
    probe_rate: float = 20.0  # calls/s of one more load process, at normal priority, beside the flood


PRESETS = {
    "full": OverloadConfig(),
    "quick": OverloadConfig(seconds=3.0, rounds=3),
    "smoke": OverloadConfig(processes=2, callers=4, seconds=0.5, factor=3.0, rounds=1, rooms=50),
}


@dataclass
class Sample:
    """The most the server used while the load ran, from its /metrics and /proc."""

    pool_in_use_max: float = 0.0
    rss_max_mb: float = 0.0


@dataclass
class OverloadResult:
    sustained_per_s: float
    offered_per_s: float
    calls: int
    codes: dict[str, int]
    shed: dict[str, int]
    gave_up: int
    accepted_p50_ms: float | None
    accepted_p99_ms: float | None
    shed_p99_ms: float | None
    sustained_p99_ms: float | None
    server_cpu_ms_per_sustained_call: float  # the server's CPU per call (booked or refused) at the sustained rate
    server_cpu_s: float  # CPU the measured server used during the overload rounds
    server_cpu_ms_per_overload_call: float
    rss_before_mb: float
    rss_peak_mb: float
    rss_after_rounds_mb: list[float]  # flat memory: the rounds after the first do not add to it
    probe_codes: dict[str, int]  # the probe caller's answers (see _overloaded)
    probe_p50_ms: float | None  # its decided calls (OK or refused by the rule)
    probe_p99_ms: float | None
    pool_max: float
    pool_in_use_max: float
    pool_in_use_after: float
    violations: dict[str, int]
    unexpected: dict[str, int]


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """The process's resident set (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def scrape(http: aiohttp.ClientSession, metrics_addr: str) -> dict[str, float]:
    """The unlabelled gauges of a /metrics page."""
    async with http.get(f"http://{metrics_addr}/metrics") as response:
        text = await response.text()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if line and not line.startswith("#") and "{" not in name:
            with contextlib.suppress(ValueError):
                values[name] = float(value)
    return values


async def watch(http: aiohttp.ClientSession, metrics_addr: str, pid: int, sample: Sample) -> None:
    while True:
        gauges = await scrape(http, metrics_addr)
        sample.pool_in_use_max = max(sample.pool_in_use_max, gauges.get("orflow_db_pool_in_use", 0.0))
        sample.rss_max_mb = max(sample.rss_max_mb, rss_mb(pid))
        await asyncio.sleep(SAMPLE_EVERY_S)


@asynccontextmanager
async def measured_server(stack: Stack, env: Mapping[str, str]) -> AsyncIterator[tuple[str, str, int]]:
    """One more `orflow server` on the stack: (gRPC addr, metrics addr, pid)."""
    assert stack.extra_env is not None, "the overload run starts its own server: not with --target"
    addr, metrics_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    children = ChildStack.start(
        ["server"],
        {
            **stack.extra_env,
            # The default stream limit (the bench stack raises it for its 1,000 watchers), so that gRPC's own
            # limit on concurrent calls, derived from it (Settings.concurrent_rpc_limit), is the default too.
            "ORFLOW_WATCH_STREAMS_TOTAL": str(Settings().watch_streams_total),
            **env,
            "ORFLOW_GRPC_ADDR": addr,
            "ORFLOW_METRICS_ADDR": metrics_addr,
        },
        quiet=True,
    )
    try:
        if not (children.wait_for(addr) and children.wait_for(metrics_addr)):
            raise RuntimeError(f"the measured server did not come up on {addr}")
        yield addr, metrics_addr, children.children[0].pid
    finally:
        children.stop()


def _phase_jobs(b: Bench, slots: list[int], target: str, tag: str, **more: Any) -> list[dict[str, Any]]:
    return [
        b.book_job("rpc", share, f"{tag}{p}", target=target, seconds=b.config.spread_seconds, **more)
        for p, share in enumerate(b.share(slots))
    ]


def _outcomes(results: list[dict[str, Any]]) -> list[tuple[float, str]]:
    return [(ms, code) for r in results for ms, code in zip(r["latencies_ms"], r["codes"], strict=True)]


async def _sustained(b: Bench, cfg: OverloadConfig, target: str, pid: int, slots: list[int]) -> tuple[float, Phase]:
    """The rate the server sustains: what closed-loop callers get decided per second."""
    b.progress(f"overload: sustained rate, {cfg.callers} closed-loop callers for {cfg.seconds:g} s")
    cpu = cpu_seconds(pid)
    jobs = _phase_jobs(b, slots, target, "os", concurrency=max(1, cfg.callers // cfg.processes))
    results = await run_clients(jobs, wait_s=cfg.seconds + 120)
    done = _outcomes(results)
    rate = sum(1 for _, code in done if code in DECIDED) / max(r["elapsed_s"] for r in results)
    return rate, Phase(done, cpu_seconds(pid) - cpu)


async def _overloaded(b: Bench, cfg: OverloadConfig, target: str, pid: int, slots: list[int], rate: float) -> Phase:
    """`rate` calls a second, open loop, each with the deadline; what came back and the server's CPU.

    Beside the flood, one more process (the probe) books `probe_rate` calls a second at normal priority: a
    caller that is not itself overloaded, so its latencies are the server's, whatever the flood's own
    processes (which may be niced, `client_nice`) add to theirs on the shared cores."""
    cpu = cpu_seconds(pid)
    tag = f"o{slots[0]}-"  # request ids of their own in every round
    probe_slots = slots[: int(cfg.probe_rate * cfg.seconds) + 1] if cfg.probe_rate else []
    flood = slots[len(probe_slots) :]
    jobs = _phase_jobs(b, flood, target, tag, rate=rate / cfg.processes, timeout_s=cfg.deadline_s, nice=cfg.client_nice)
    if probe_slots:
        jobs.append(
            b.book_job("rpc", probe_slots, f"{tag}probe", target=target, seconds=cfg.seconds,
                       rate=cfg.probe_rate, timeout_s=cfg.deadline_s)
        )  # fmt: skip
    results = await run_clients(jobs, wait_s=cfg.seconds + cfg.deadline_s + 120)
    probe = _outcomes(results[cfg.processes :])
    return Phase(_outcomes(results[: cfg.processes]), cpu_seconds(pid) - cpu, probe)


@dataclass
class Phase:
    outcomes: list[tuple[float, str]]
    cpu_s: float
    probe: list[tuple[float, str]] = field(default_factory=list)


async def _run(b: Bench, cfg: OverloadConfig, slots: list[int]) -> OverloadResult:
    chunk = len(slots) // (1 + cfg.rounds)
    async with measured_server(b.stack, cfg.server_env) as (target, metrics_addr, pid), aiohttp.ClientSession() as http:
        rate, sustained = await _sustained(b, cfg, target, pid, slots[:chunk])
        offered = cfg.factor * rate
        rss_before = rss_mb(pid)
        sample, rounds, rss_after_rounds = Sample(rss_max_mb=rss_before), [], []
        watcher = asyncio.create_task(watch(http, metrics_addr, pid, sample))
        try:
            for n in range(1, cfg.rounds + 1):
                say = f"overload: round {n}: {offered:.0f}/s ({cfg.factor:g} x {rate:.0f}/s) for {cfg.seconds:g} s"
                b.progress(f"{say} (server pid {pid})")
                rounds.append(await _overloaded(b, cfg, target, pid, slots[chunk * n : chunk * (n + 1)], offered))
                await asyncio.sleep(1.0)  # the last answers' connections go back to the pool
                rss_after_rounds.append(round(rss_mb(pid), 1))
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        after = await scrape(http, metrics_addr)
    overloaded = [outcome for phase in rounds for outcome in phase.outcomes]
    probe = [outcome for phase in rounds for outcome in phase.probe]
    probe_decided = [ms for ms, code in probe if code in DECIDED]
    cpu = sum(phase.cpu_s for phase in rounds)
    done = sustained.outcomes
    codes = Counter(code for _, code in overloaded)
    accepted = [ms for ms, code in overloaded if code in DECIDED]
    shed = [ms for ms, code in overloaded if code in SHED]
    expected = {*DECIDED, *SHED, *GAVE_UP}
    return OverloadResult(
        sustained_per_s=round(rate, 1),
        offered_per_s=round(offered, 1),
        calls=len(overloaded),
        codes=dict(codes),
        shed={code: codes[code] for code in SHED},
        gave_up=sum(codes[code] for code in GAVE_UP),
        accepted_p50_ms=percentile(accepted, 50),
        accepted_p99_ms=percentile(accepted, 99),
        shed_p99_ms=percentile(shed, 99),
        sustained_p99_ms=percentile([ms for ms, _ in done], 99),
        server_cpu_ms_per_sustained_call=round(1000 * sustained.cpu_s / max(1, len(done)), 3),
        server_cpu_s=round(cpu, 2),
        server_cpu_ms_per_overload_call=round(1000 * cpu / max(1, len(overloaded)), 3),
        rss_before_mb=round(rss_before, 1),
        rss_peak_mb=round(sample.rss_max_mb, 1),
        rss_after_rounds_mb=rss_after_rounds,
        probe_codes=dict(Counter(code for _, code in probe)),
        probe_p50_ms=percentile(probe_decided, 50),
        probe_p99_ms=percentile(probe_decided, 99),
        pool_max=after.get("orflow_db_pool_max", 0.0),
        pool_in_use_max=sample.pool_in_use_max,
        pool_in_use_after=after.get("orflow_db_pool_in_use", -1.0),
        violations={k: v for k, v in (await invariants.violations(b.conn)).items() if v},
        unexpected={code: n for code, n in codes.items() if code not in expected},
    )


async def _overload_on(b: Bench, cfg: OverloadConfig) -> OverloadResult:
    """The run on a bench's stack: rooms and surgeons of its own, and enough free slots that no phase runs out
    (every call may book one)."""
    await sql.reset(b.conn, rooms=cfg.rooms)
    count = max(1000, int(cfg.seconds * 4000 * (1 + cfg.factor * cfg.rounds)))
    block = await sql.load_slots(b.conn, count=count, rooms=cfg.rooms, start=b.now() + timedelta(days=1))
    return await _run(b, cfg, block.ids)


def _bench_for(stack: Stack, conn: asyncpg.Connection, cfg: OverloadConfig, say: Any) -> Bench:
    return Bench(stack, BenchConfig(processes=cfg.processes, spread_seconds=cfg.seconds, rooms=cfg.rooms), conn, say)


async def run_overload(
    settings: Settings, cfg: OverloadConfig, *, environ: Mapping[str, str], progress: Any = None
) -> OverloadResult:
    """The whole run on a stack of its own (removed afterwards)."""
    say = progress or (lambda message: print(message, file=sys.stderr, flush=True))
    async with bench_stack(settings, target=None, server_processes=1, environ=environ) as stack:
        conn = await asyncpg.connect(stack.database_url)
        try:
            return await _overload_on(_bench_for(stack, conn, cfg, say), cfg)
        finally:
            await conn.close()


async def overload(b: Bench) -> list[ScenarioResult]:
    """Scenario o of `orflow bench`: the overload run, sized by the bench's config, on the bench's stack.

    Two legs: the server's defaults, then with `overload_guard_streams` HTTP/2 streams per connection, so a
    flooding connection waits at its own end instead of filling the queue gRPC keeps before Python sees a
    call (README, Overload). The probe's figures are what a caller that is not itself flooding gets."""
    c = b.config
    if b.stack.extra_env is None:
        b.progress("overload: skipped (the bench does not start servers in a --target run)")
        return []
    legs = {
        f"{c.overload_factor:g}x sustained": {},
        f"{c.overload_factor:g}x sustained, {c.overload_guard_streams} streams per connection": {
            "ORFLOW_GRPC_MAX_STREAMS_PER_CONNECTION": str(c.overload_guard_streams)
        },
    }
    results = []
    for variant, server_env in legs.items():
        cfg = OverloadConfig(
            processes=c.processes,
            callers=c.overload_callers,
            seconds=c.overload_seconds,
            factor=c.overload_factor,
            rounds=c.overload_rounds,
            rooms=c.rooms,
            server_env=server_env,
            client_nice=c.overload_client_nice,
        )
        bench = _bench_for(b.stack, b.conn, cfg, b.progress)
        b.progress(f"overload: {variant}")
        found = await _overload_on(bench, cfg)
        accepted = sum(found.codes.get(code, 0) for code in DECIDED)
        measure = Measure(  # the rate is the flood's decided calls; the latencies are the probe's
            accepted / (cfg.seconds * cfg.rounds),
            found.probe_p50_ms,
            found.probe_p99_ms,
            found.calls,
            {code: n for code, n in found.codes.items() if code in DECIDED},
        )
        b.progress(
            f"  overload: offered {found.offered_per_s:.0f}/s against {found.sustained_per_s:.0f}/s sustained; "
            f"shed {found.shed}, gave up {found.gave_up}, RSS {found.rss_before_mb} -> {found.rss_after_rounds_mb} MiB"
        )
        b.progress(
            f"  overload: the probe caller (not flooding): {found.probe_codes}, "
            f"p50 {found.probe_p50_ms} ms, p99 {found.probe_p99_ms} ms"
        )
        result = ScenarioResult(
            "o overload",
            variant,
            f"{found.offered_per_s:.0f}/s",
            measure,
            errors=dict(found.unexpected),
            extra=asdict(found),
        )
        results.append(await bench.check(result))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orflow_tools.bench.overload", description=__doc__)
    parser.add_argument("--size", choices=sorted(PRESETS), default="full")
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--inflight", type=int, default=0, help="ORFLOW_MAX_INFLIGHT_CALLS of the measured server")
    parser.add_argument(
        "--max-concurrent-rpcs", type=int, default=0, help="ORFLOW_GRPC_MAX_CONCURRENT_RPCS of the measured server"
    )
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="NAME=VALUE", help="more ORFLOW_* for the measured server"
    )
    parser.add_argument(
        "--client-nice", type=int, default=19, help="niceness of the load processes in the overload rounds (0-19)"
    )
    args = parser.parse_args(argv)
    cfg = PRESETS[args.size]
    env = {
        **dict(item.split("=", 1) for item in args.server_env),
        **({"ORFLOW_MAX_INFLIGHT_CALLS": str(args.inflight)} if args.inflight else {}),
        **({"ORFLOW_GRPC_MAX_CONCURRENT_RPCS": str(args.max_concurrent_rpcs)} if args.max_concurrent_rpcs else {}),
    }
    cfg = OverloadConfig(**{**asdict(cfg), "server_env": env, "client_nice": args.client_nice})
    result = asyncio.run(run_overload(Settings.from_env(os.environ), cfg, environ=os.environ))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overload-results.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    print(json.dumps(asdict(result), indent=2))
    return 0 if not result.violations and not result.unexpected else 1


if __name__ == "__main__":
    sys.exit(main())
