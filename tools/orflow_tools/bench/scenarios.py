"""The nine scenarios. Each loads its data in SQL, drives load from client processes, then checks the invariants."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
from orflow.v1 import booking_service_pb2, booking_service_pb2_grpc, slot_service_pb2, slot_service_pb2_grpc
from orflow_server.domain.models import Booking, BookingStatus
from orflow_server.jobs import SaqExpiryScheduler
from orflow_server.settings import Settings
from saq import Queue

from ..testkit import invariants
from . import sql
from .clients import ClientGroup, run_clients
from .config import BenchConfig
from .results import Measure, ScenarioResult, percentile
from .stack import Stack, extra_servers

# Codes that mean "the rules said no", as opposed to something breaking.
REFUSALS = frozenset({"ABORTED", "TAKEN"})
SERVER_POOL_SIZE = 20  # the server's default pool: the ceiling gets as many connections, no more
CEILING_FORMS = {"sqlfn": "orflow_book() in one statement", "sql": "multi-statement transaction"}
"""The raw forms of the same rule the ceiling tries (load.py's modes); the faster one in the run is the ceiling."""


@dataclass
class Bench:
    stack: Stack
    config: BenchConfig
    conn: asyncpg.Connection
    progress: Callable[[str], None]
    ceiling_wins: Counter[str] = dataclasses.field(default_factory=Counter)
    found: Counter[str] = dataclasses.field(default_factory=Counter)
    """Invariant violations found since the last check(), in loads already cleared away."""
    bookings_checked: int = 0
    """Bookings the invariants were checked on since the last check() (cleared loads included)."""

    @property
    def ceiling_mode(self) -> str:
        """The ceiling form that was faster at most spread levels in this run (orflow_book() before any ran)."""
        if not self.ceiling_wins:
            return "sqlfn"
        return max(CEILING_FORMS, key=lambda mode: self.ceiling_wins[mode])

    def now(self) -> datetime:
        return datetime.now(UTC)

    def share(self, items: Sequence[int]) -> list[list[int]]:
        """Round robin over the client processes."""
        n = self.config.processes
        return [list(items[p::n]) for p in range(n)]

    def book_job(self, mode: str, slots: list[int], tag: str, **more: Any) -> dict[str, Any]:
        pool_size = max(1, math.ceil(SERVER_POOL_SIZE / self.config.processes))
        if "concurrency" in more:
            pool_size = min(pool_size, int(more["concurrency"]))
        defaults = Settings()
        return {
            "kind": "book",
            "mode": mode,
            "turnover_s": defaults.turnover.total_seconds(),
            "hold_ttl_s": defaults.hold_ttl.total_seconds(),
            "web_target": self.stack.web_target,
            "target": self.stack.target,
            "token": self.stack.token,
            "dsn": self.stack.database_url,
            "pool_size": pool_size,
            "slots": slots,
            "tag": tag,
            **more,
        }

    async def check_invariants(self) -> None:
        """Checks the bookings the table holds now; what is found is reported by the next check()."""
        found = await invariants.violations(self.conn)
        self.found.update({k: v for k, v in found.items() if v})
        self.bookings_checked += await sql.count_bookings(self.conn)

    async def clear(self) -> None:
        """Empties the bookings a load left, after checking them: the check must see the load's own data."""
        await self.check_invariants()
        await sql.clear_bookings(self.conn)

    async def check(self, result: ScenarioResult, *, has_writes: bool = True) -> ScenarioResult:
        """Adds the invariant violations found in SQL (now, unless the load was read-only, and in the loads
        cleared since the last check), how many bookings they covered, and the unexpected outcomes."""
        if has_writes:
            await self.check_invariants()
            result.extra["bookings_checked"] = self.bookings_checked
        for key, n in self.found.items():
            result.violations[key] = result.violations.get(key, 0) + n
        self.found.clear()
        self.bookings_checked = 0
        for code, n in result.orflow.codes.items():
            if code not in REFUSALS and code not in ("OK", "SHORT_PAGE"):
                result.errors[code] = result.errors.get(code, 0) + n
        if result.ceiling is not None:
            for code, n in result.ceiling.codes.items():
                if code not in REFUSALS and code != "OK":
                    result.errors[f"ceiling:{code}"] = n
        return result


# --- 1. spread -------------------------------------------------------------------------------------------


async def _closed_loop(
    b: Bench, mode: str, slots: list[int], callers: int, seconds: float, tag: str, *, target: str | None = None
) -> Measure:
    per_process = max(1, callers // b.config.processes)
    jobs = [
        b.book_job(mode, share, f"{tag}{p}", concurrency=per_process, seconds=seconds)
        | ({"target": target} if target else {})
        for p, share in enumerate(b.share(slots))
    ]
    measure = Measure.merge(await run_clients(jobs, wait_s=seconds + 120))
    await b.clear()
    return measure


async def _ceiling_closed_loop(
    b: Bench, slots: list[int], callers: int, seconds: float, tag: str
) -> tuple[Measure, dict[str, Any]]:
    """Every raw form of the rule under the same load; the faster is the ceiling (and counts towards ceiling_mode)."""
    measures = {mode: await _closed_loop(b, mode, slots, callers, seconds, f"{tag}{mode}-") for mode in CEILING_FORMS}
    best = max(measures, key=lambda mode: measures[mode].throughput)
    b.ceiling_wins[best] += 1
    extra = {
        "ceiling_form": CEILING_FORMS[best],
        "ceiling_forms_per_s": {CEILING_FORMS[m]: round(x.throughput, 1) for m, x in measures.items()},
    }
    return measures[best], extra


async def _open_loop(b: Bench, mode: str, slots: list[int], rate: float, seconds: float, tag: str) -> Measure:
    jobs = [
        b.book_job(mode, share, f"{tag}{p}", rate=rate / b.config.processes, seconds=seconds)
        for p, share in enumerate(b.share(slots))
    ]
    results = await run_clients(jobs, wait_s=seconds + 120)
    await b.clear()
    latencies = [ms for r in results for ms in r["latencies_ms"]]
    codes = [c for r in results for c in r["codes"]]
    return Measure.of(latencies, codes, seconds)  # offered for `seconds`; throughput = what was asked and done


async def spread(b: Bench) -> list[ScenarioResult]:
    """Many patients booking different free slots: no two calls want the same room, surgeon or slot."""
    cfg = b.config
    await sql.clear_bookings(b.conn)
    block = await sql.load_slots(b.conn, count=cfg.spread_slots, rooms=cfg.rooms, start=b.now() + timedelta(days=1))
    results = []
    for callers in cfg.spread_levels:
        b.progress(f"spread: {callers} callers, both ceiling forms then OR Flow, {cfg.spread_seconds:g} s each")
        ceiling, extra = await _ceiling_closed_loop(b, block.ids, callers, cfg.spread_seconds, f"sc{callers}-")
        orflow = await _closed_loop(b, "rpc", block.ids, callers, cfg.spread_seconds, f"so{callers}-")
        b.progress(f"  ceiling at {callers} callers: {extra['ceiling_form']} ({extra['ceiling_forms_per_s']})")
        results.append(
            await b.check(
                ScenarioResult("1 spread", f"{callers} callers", f"{callers} callers", orflow, ceiling, extra=extra)
            )
        )
    peak = max(r.orflow.throughput for r in results)
    rate = max(1.0, peak / 2)
    mode = b.ceiling_mode
    b.progress(f"spread: open loop at half of OR Flow's peak ({rate:.0f}/s); ceiling: {CEILING_FORMS[mode]}")
    ceiling = await _open_loop(b, mode, block.ids, rate, cfg.spread_seconds, "shc-")
    orflow = await _open_loop(b, "rpc", block.ids, rate, cfg.spread_seconds, "sho-")
    half = ScenarioResult(
        "1 spread",
        "half of peak",
        f"{rate:.0f}/s",
        orflow,
        ceiling,
        extra={"rate_per_s": rate, "ceiling_form": CEILING_FORMS[mode]},
    )
    results.append(await b.check(half))
    return results


# --- 2. hot slot, 3. last ventilator -----------------------------------------------------------------------


async def _race(b: Bench, mode: str, calls: list[int], tag: str) -> tuple[Measure, float, Counter[int]]:
    """Fires every call at once from all processes; returns the measure, the time to decide all, and wins per slot."""
    jobs = [{**b.book_job(mode, share, f"{tag}{p}"), "kind": "race"} for p, share in enumerate(b.share(calls))]
    results = await run_clients(jobs, wait_s=180)
    decided = max(r["elapsed_s"] for r in results)
    wins: Counter[int] = Counter()
    for job, r in zip(jobs, results, strict=True):
        for slot_id, code in zip(job["slots"], r["codes"], strict=True):
            if code == "OK":
                wins[slot_id] += 1
    return Measure.merge(results), decided, wins


async def hot_slot(b: Bench) -> list[ScenarioResult]:
    """200 clients racing for a few slots: every slot gets exactly one winner, decided fast."""
    cfg = b.config
    await sql.clear_bookings(b.conn)
    block = await sql.load_slots(
        b.conn, count=cfg.hot_slots * cfg.hot_rounds * 2, rooms=cfg.rooms, start=b.now() + timedelta(days=200)
    )
    ids = block.ids
    results = []
    for round_no in range(cfg.hot_rounds):
        b.progress(
            f"hot slot: round {round_no + 1}/{cfg.hot_rounds}, {cfg.hot_clients} clients on {cfg.hot_slots} slots"
        )
        measures: dict[str, tuple[Measure, float]] = {}
        violations: dict[str, int] = {}
        for i, mode in enumerate((b.ceiling_mode, "rpc")):
            start = (round_no * 2 + i) * cfg.hot_slots
            hot = ids[start : start + cfg.hot_slots]
            calls = [hot[n % len(hot)] for n in range(cfg.hot_clients)]
            measure, decided, wins = await _race(b, mode, calls, f"h{round_no}{mode}-")
            measures[mode] = (measure, decided)
            per_slot = await sql.active_bookings_per_slot(b.conn, hot)
            bad = sum(1 for s in hot if wins[s] != 1 or per_slot[s] != 1)
            if bad:
                violations[f"{'orflow' if mode == 'rpc' else 'ceiling'}_slots_without_exactly_one_winner"] = bad
        orflow, ceiling = _decided(*measures["rpc"]), _decided(*measures[b.ceiling_mode])
        result = ScenarioResult(
            "2 hot slot",
            f"round {round_no + 1}",
            f"{cfg.hot_clients} racing",
            orflow,
            ceiling,
            violations=violations,
            extra={
                "decide_s": measures["rpc"][1],
                "ceiling_decide_s": measures[b.ceiling_mode][1],
                "ceiling_form": CEILING_FORMS[b.ceiling_mode],
            },
        )
        results.append(await b.check(result))
    return results


def _decided(measure: Measure, seconds: float) -> Measure:
    """A race's throughput is calls decided per second, from the release until the last answer."""
    return Measure(measure.count / seconds, measure.p50_ms, measure.p99_ms, measure.count, measure.codes)


async def last_ventilator(b: Bench) -> list[ScenarioResult]:
    """Slots in different rooms, overlapping in time, all needing the one ventilator: exactly one booking wins."""
    cfg = b.config
    measures: dict[str, tuple[Measure, float]] = {}
    violations: dict[str, int] = {}
    for day, mode in ((300, b.ceiling_mode), (301, "rpc")):
        slots = await sql.load_ventilator_slots(b.conn, count=cfg.vent_slots, start=b.now() + timedelta(days=day))
        b.progress(f"last ventilator: {cfg.hot_clients} clients on {len(slots)} slots sharing 1 ventilator ({mode})")
        calls = [slots[n % len(slots)] for n in range(cfg.hot_clients)]
        measure, decided, wins = await _race(b, mode, calls, f"v{mode}-")
        measures[mode] = (measure, decided)
        booked = sum((await sql.active_bookings_per_slot(b.conn, slots)).values())
        if sum(wins.values()) != 1 or booked != 1:
            violations[f"{'orflow' if mode == 'rpc' else 'ceiling'}_ventilator_winners_not_one"] = 1
    result = ScenarioResult(
        "3 last ventilator",
        f"{cfg.vent_slots} slots",
        f"{cfg.hot_clients} racing",
        _decided(*measures["rpc"]),
        _decided(*measures[b.ceiling_mode]),
        violations=violations,
        extra={
            "decide_s": measures["rpc"][1],
            "ceiling_decide_s": measures[b.ceiling_mode][1],
            "ceiling_form": CEILING_FORMS[b.ceiling_mode],
        },
    )
    return [await b.check(result)]


# --- 4. browse, 5. history -------------------------------------------------------------------------------

BROWSE_PAGE = 50


async def _deep_token(b: Bench, request: slot_service_pb2.ListSlotsRequest, key: tuple[datetime, int]) -> str:
    """A real page token from the server, with its key moved deep into the listing (the filters' fingerprint kept)."""
    async with grpc.aio.insecure_channel(b.stack.target) as channel:
        response = await slot_service_pb2_grpc.SlotServiceStub(channel).ListSlots(request, timeout=30)
    token = response.next_page_token
    payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    start, slot_id = key
    payload["k"] = [int(start.timestamp() * 1_000_000), slot_id]
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


async def browse(b: Bench, *, size_label: str) -> list[ScenarioResult]:
    """ListSlots with filters, first page and a page 90% deep: cost should not depend on the table's size."""
    cfg = b.config
    window = b.now()
    window_us = int(window.timestamp() * 1_000_000)
    variants: dict[str, dict[str, Any]] = {
        "procedure+available": {"procedure_type": "Neuro", "available_only": True},
        "room": {"room_id": min(7, cfg.browse_rooms)},
    }
    results = []
    for name, filters in variants.items():
        spec: dict[str, Any] = {"page_size": BROWSE_PAGE, "window_start_us": window_us, **filters}
        total = await sql.count_listing(
            b.conn,
            procedure=str(filters.get("procedure_type", "")),
            room_id=int(filters.get("room_id", 0)),
            window_start=window,
        )
        offset = max(0, min(int(total * 0.9), total - BROWSE_PAGE - 1))  # 90 % deep, or the last full page
        key = await sql.page_key_at(
            b.conn,
            procedure=str(filters.get("procedure_type", "")),
            room_id=int(filters.get("room_id", 0)),
            window_start=window,
            offset=offset,
        )
        from .load import _list_request  # the same request builder the load processes use

        deep = {**spec, "page_token": await _deep_token(b, _list_request(spec), key)}
        for page, request in (("first page", spec), ("deep page", deep)):
            b.progress(
                f"browse {size_label}: {name}, {page} (row {0 if page == 'first page' else offset:,} of {total:,})"
            )
            per_process = max(1, cfg.browse_callers // cfg.processes)
            jobs = [
                {
                    "kind": "list",
                    "target": b.stack.target,
                    "request": request,
                    "concurrency": per_process,
                    "seconds": cfg.browse_seconds,
                }
                for _ in range(cfg.processes)
            ]
            measure = Measure.merge(await run_clients(jobs, wait_s=cfg.browse_seconds + 120))
            result = ScenarioResult(
                "4 browse",
                f"{size_label} {name} {page}",
                f"{cfg.browse_callers} callers",
                measure,
                extra={
                    "slots_in_table": await sql.count_slots(b.conn),
                    "listing_rows": total,
                    "row": 0 if page == "first page" else offset,
                },
            )
            results.append(await b.check(result, has_writes=False))
    results[-1] = await b.check(results[-1])  # once per table size: browsing writes nothing
    return results


async def history(b: Bench, slots: list[int], *, label: str) -> ScenarioResult:
    """CreateBooking latency at a fixed moderate load, beside the ceiling, with the history the table has now."""
    cfg = b.config
    past = await sql.count_bookings(b.conn)
    b.progress(f"history {label}: {cfg.history_callers} callers, {past:,} bookings in the table")
    ceiling = await _closed_loop_keep(
        b, b.ceiling_mode, slots[0::2], cfg.history_callers, cfg.history_seconds, f"hc{label}-"
    )
    orflow = await _closed_loop_keep(b, "rpc", slots[1::2], cfg.history_callers, cfg.history_seconds, f"ho{label}-")
    result = ScenarioResult(
        "5 history",
        label,
        f"{cfg.history_callers} callers",
        orflow,
        ceiling,
        extra={"bookings_in_table": past, "ceiling_form": CEILING_FORMS[b.ceiling_mode]},
    )
    return await b.check(result)


async def _closed_loop_keep(b: Bench, mode: str, slots: list[int], callers: int, seconds: float, tag: str) -> Measure:
    """Like the spread's closed loop, but leaves the bookings (the history must not be wiped)."""
    per_process = max(1, callers // b.config.processes)
    jobs = [
        b.book_job(mode, share, f"{tag}{p}", concurrency=per_process, seconds=seconds)
        for p, share in enumerate(b.share(slots))
    ]
    return Measure.merge(await run_clients(jobs, wait_s=seconds + 120))


# --- 6. live updates -------------------------------------------------------------------------------------


async def live_updates(b: Bench) -> list[ScenarioResult]:
    """Many WatchSlots subscribers: how long from a booking's commit until every subscriber has seen it."""
    cfg = b.config
    await sql.clear_bookings(b.conn)
    block = await sql.load_slots(b.conn, count=cfg.rooms * 20, rooms=cfg.rooms, start=b.now() + timedelta(days=500))
    room_id = 1
    room_slots = [s for s in block.ids if (s - block.first_id) % cfg.rooms == 0]
    expected = room_slots[: cfg.watch_events]
    per_process = math.ceil(cfg.watchers / cfg.processes)
    jobs = [
        {
            "kind": "watch",
            "target": b.stack.target,
            "subscribers": min(per_process, cfg.watchers - p * per_process),
            "room_id": room_id,
            "expect_slots": expected,
            "seconds": 30 + cfg.watch_events,
        }
        for p in range(cfg.processes)
        if cfg.watchers - p * per_process > 0
    ]
    b.progress(f"live updates: {cfg.watchers} WatchSlots subscribers, then {len(expected)} bookings")
    group = ClientGroup(jobs)
    commits: dict[int, float] = {}
    try:
        await group.start()
        await group.go()
        async with grpc.aio.insecure_channel(b.stack.target) as channel:
            stub = booking_service_pb2_grpc.BookingServiceStub(channel)
            for n, slot_id in enumerate(expected):
                request = booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id=f"live-{n}")
                response = await stub.CreateBooking(request, timeout=30, metadata=b.stack.metadata)
                # create_time is stamped inside the transaction, just before the commit:
                # measuring from it slightly overstates the delay, never understates it.
                commits[slot_id] = response.booking.create_time.ToDatetime(UTC).timestamp()
                await asyncio.sleep(cfg.watch_gap_s)
        results = await group.results(wait_s=60 + cfg.watch_events)
    finally:
        group.kill()
    by_slot: dict[int, list[float]] = {slot_id: [] for slot_id in expected}  # seconds, commit to each receipt
    missed = 0
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r["errors"])
        for seen in r["seen"]:
            for slot_id in expected:
                if str(slot_id) in seen:
                    by_slot[slot_id].append(seen[str(slot_id)] - commits[slot_id])
                else:
                    missed += 1
    delays = [s * 1000.0 for slot_id in expected for s in by_slot[slot_id]]
    all_seen = [max(by_slot[s], default=math.nan) for s in expected]
    if missed:
        errors["MISSED_UPDATE"] = missed
    measure = Measure.of(delays, ["OK"] * len(delays), sum(1 for _ in expected) * cfg.watch_gap_s or 1)
    result = ScenarioResult(
        "6 live updates",
        f"{cfg.watchers} subscribers",
        f"{len(expected)} bookings",
        Measure(
            len(delays) / max(1e-9, cfg.watch_gap_s * len(expected)), measure.p50_ms, measure.p99_ms, len(delays), {}
        ),
        errors=dict(errors),
        extra={
            "deliveries": len(delays),
            "missed": missed,
            "all_subscribers_ms_p50": _ms(percentile(all_seen, 50)),
            "all_subscribers_ms_max": _ms(max(all_seen) if all_seen else None),
            # Per booking, in order: its deliveries' p50 and max (a slow booking for everyone is the server's).
            "per_booking_ms": [
                [_ms(percentile(ds, 50) if ds else None), _ms(max(ds) if ds else None)]
                for ds in (by_slot[s] for s in expected)
            ],
        },
    )
    return [await b.check(result)]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 1)


# --- 7. expiry -------------------------------------------------------------------------------------------


async def expiry(b: Bench) -> list[ScenarioResult]:
    """Many holds expiring at the same instant: seconds until every one is stored FAILED by the worker."""
    cfg = b.config
    await sql.clear_bookings(b.conn)
    block = await sql.load_slots(b.conn, count=cfg.expiry_holds, rooms=cfg.rooms, start=b.now() + timedelta(days=700))
    expire_at = b.now() + timedelta(seconds=cfg.expiry_lead_s)
    rows = await sql.insert_holds(b.conn, block, expire_time=expire_at)
    b.progress(f"expiry: {len(rows):,} holds expire at once in {cfg.expiry_lead_s:g} s; scheduling their jobs")
    queue = Queue.from_url(b.stack.redis_url, name=b.stack.queue_name)
    await queue.connect()
    try:
        scheduler = SaqExpiryScheduler(queue)
        bookings = [
            Booking(
                r["id"],
                r["slot_id"],
                r["patient_id"],
                BookingStatus.PENDING,
                None,
                r["create_time"],
                r["expire_time"],
                r["update_time"],
                "",
            )
            for r in rows
        ]
        started = time.monotonic()
        for chunk in range(0, len(bookings), 500):
            await asyncio.gather(*(scheduler.schedule(x) for x in bookings[chunk : chunk + 500]))
        scheduled_s = time.monotonic() - started
    finally:
        await queue.disconnect()
    first, last = rows[0]["id"], rows[-1]["id"]
    deadline = expire_at.timestamp() + cfg.expiry_timeout_s
    progress = await sql.expiry_progress(b.conn, first_id=first, last_id=last)
    while progress.failed < len(rows) and time.time() < deadline:
        await asyncio.sleep(0.2)
        progress = await sql.expiry_progress(b.conn, first_id=first, last_id=last)
    all_failed_s = progress.lag_max_s if progress.failed == len(rows) else None
    errors = {} if progress.failed == len(rows) else {"NOT_FAILED_IN_TIME": len(rows) - progress.failed}
    measure = Measure(
        len(rows) / all_failed_s if all_failed_s else 0.0,
        _ms(progress.lag_p50_s),
        _ms(progress.lag_p99_s),
        progress.failed,
        {"OK": progress.failed},
    )
    result = ScenarioResult(
        "7 expiry",
        f"{len(rows):,} holds",
        f"{len(rows):,} at once",
        measure,
        errors=errors,
        extra={
            "all_failed_s": all_failed_s,
            "schedule_jobs_s": round(scheduled_s, 2),
            "expiry_lead_s": cfg.expiry_lead_s,
        },
    )
    return [await b.check(result)]


# --- 8. through the gRPC-web proxy, 9. server processes ---------------------------------------------------


async def proxy(b: Bench) -> list[ScenarioResult]:
    """CreateBooking as the portal sends it (gRPC-web over HTTP/1.1 through the proxy) beside direct gRPC."""
    cfg = b.config
    if b.stack.web_target is None:
        b.progress("proxy: skipped (no proxy in a --target run)")
        return []
    await sql.clear_bookings(b.conn)
    block = await sql.load_slots(
        b.conn, count=cfg.spread_slots // 2, rooms=cfg.rooms, start=b.now() + timedelta(days=900)
    )
    callers = cfg.proxy_callers
    b.progress(f"proxy: {callers} callers, direct gRPC then through the gRPC-web proxy, {cfg.spread_seconds:g} s each")
    offered = f"{callers} callers"
    direct = await _closed_loop(b, "rpc", block.ids, callers, cfg.spread_seconds, "pd-")
    direct_result = await b.check(ScenarioResult("8 proxy", "direct gRPC", offered, direct))  # its own load's
    web = await _closed_loop(b, "web", block.ids, callers, cfg.spread_seconds, "pw-")
    web_result = ScenarioResult(
        "8 proxy",
        "via gRPC-web proxy",
        offered,
        web,
        extra={
            "vs_direct_throughput": round(web.throughput / direct.throughput, 3) if direct.throughput else None,
            "vs_direct_p50": round(web.p50_ms / direct.p50_ms, 3) if web.p50_ms and direct.p50_ms else None,
        },
    )
    return [direct_result, await b.check(web_result)]


async def processes(b: Bench) -> list[ScenarioResult]:
    """The same spread load on 1 server process and on 2 sharing the port (SO_REUSEPORT), in one run."""
    cfg = b.config
    if b.stack.extra_env is None:
        b.progress("processes: skipped (the bench does not start servers in a --target run)")
        return []
    await sql.clear_bookings(b.conn)
    block = await sql.load_slots(
        b.conn, count=cfg.spread_slots // 2, rooms=cfg.rooms, start=b.now() + timedelta(days=1100)
    )
    callers = cfg.proxy_callers
    results = []
    for count in (1, 2):
        b.progress(f"processes: {callers} callers on {count} server process(es), {cfg.spread_seconds:g} s")
        with extra_servers(b.stack, count) as target:
            measure = await _closed_loop(b, "rpc", block.ids, callers, cfg.spread_seconds, f"pp{count}-", target=target)
        results.append(
            await b.check(
                ScenarioResult(
                    "9 processes", f"{count} server process{'es' if count > 1 else ''}", f"{callers} callers", measure
                )
            )
        )
    if results[0].orflow.throughput:
        results[1].extra["vs_one_process"] = round(results[1].orflow.throughput / results[0].orflow.throughput, 3)
    return results
