"""Logs, one trace from the proxy through the server to SQL, and metrics, from the REAL processes.

A server, a worker and a proxy run with tracing on (the standard OTEL_* variables) and export over
OTLP/HTTP to a collector stub here; a "browser" call through the proxy carries its own traceparent.
Takes about 10 s (three processes start): marked slow.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web
from orflow.v1 import booking_service_pb2, slot_service_pb2
from orflow_tools.testkit.ports import free_port, wait_for_port

from tests.auth import TEST_SECRET, token_for
from tests.factories import insert_slot
from tests.observability.stack import Collector, Span, json_lines, orflow_processes
from tests.web.grpcweb import call

pytestmark = pytest.mark.slow
BROWSER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "orflow.json"


async def _until(predicate: Callable[[], Any], what: str, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
    return result


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return str(reply.read().decode())


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def run(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Any]]:
    collector = Collector()
    runner = web.AppRunner(collector.app())
    await runner.setup()
    otlp_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", otlp_port).start()
    grpc_addr, web_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    metrics_addr, worker_metrics_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    env = {
        "ORFLOW_DATABASE_URL": database_url,
        "ORFLOW_REDIS_URL": redis_url,
        "ORFLOW_QUEUE_NAME": f"obs-{free_port()}",
        "ORFLOW_AUTH_SECRET": TEST_SECRET,
        "ORFLOW_GRPC_ADDR": grpc_addr,
        "ORFLOW_WEB_ADDR": web_addr,
        "ORFLOW_METRICS_ADDR": metrics_addr,
        "ORFLOW_WORKER_METRICS_ADDR": worker_metrics_addr,
        "ORFLOW_SWEEP_SECONDS": "1",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    commands = {"server": ["server"], "worker": ["worker"], "proxy": ["proxy"]}
    logs = tmp_path_factory.mktemp("logs")
    conn = await asyncpg.connect(database_url)
    try:
        slot_id = await insert_slot(conn)
        with orflow_processes(commands, env, logs) as files:
            for addr in (grpc_addr, web_addr, worker_metrics_addr):
                assert await asyncio.to_thread(wait_for_port, addr), f"nothing listens on {addr}: {files}"
            headers = {
                "traceparent": f"00-{BROWSER_TRACE}-00f067aa0ba902b7-01",
                "authorization": f"Bearer {token_for('patient', 'obs-patient')}",
            }
            async with aiohttp.ClientSession() as http:
                request = booking_service_pb2.CreateBookingRequest(slot_id=slot_id, request_id="obs-1")
                reply = await call(
                    http, f"http://{web_addr}/orflow.v1.BookingService/CreateBooking", request, headers=headers
                )
                assert reply.status == 0, reply.trailer
                booking_id = booking_service_pb2.CreateBookingResponse.FromString(reply.messages[0]).booking.id
                missing = slot_service_pb2.GetSlotRequest(slot_id=10**9)
                await call(http, f"http://{web_addr}/orflow.v1.SlotService/GetSlot", missing)
            # An overdue hold, so the worker's sweep does work and logs it.
            await conn.execute(
                "UPDATE bookings SET expire_time = now() - interval '1 second' WHERE id = $1", booking_id
            )
            await _until(lambda: '"task": "sweep"' in files["worker"].read_text(), "the worker's sweep line")
            traced = {s.service for s in collector.spans if s.trace_id == BROWSER_TRACE}
            await _until(
                lambda: (
                    {"orflow-proxy", "orflow-server"}
                    <= traced | {s.service for s in collector.spans if s.trace_id == BROWSER_TRACE}
                ),
                "spans from both processes",
            )
            await _until(lambda: any(s.attributes.get("db.system") == "postgresql" for s in collector.spans), "SQL")
            texts = {
                name: await asyncio.to_thread(_scrape, f"http://{addr}/metrics")
                for name, addr in (("server", metrics_addr), ("worker", worker_metrics_addr), ("proxy", web_addr))
            }
        yield {
            "spans": collector.spans,
            "logs": {name: json_lines(path) for name, path in files.items()},
            "metrics": texts,
            "booking_id": booking_id,
            "slot_id": slot_id,
        }
    finally:
        await conn.close()
        await runner.cleanup()


def _tree(spans: list[Span]) -> list[str]:
    """`service: name` per span, indented under its parent."""
    by_parent: dict[str, list[Span]] = {}
    for span in spans:
        by_parent.setdefault(span.parent_id, []).append(span)
    ids = {s.span_id for s in spans}
    lines: list[str] = []

    def walk(span: Span, depth: int) -> None:
        lines.append(f"{'  ' * depth}{span.service}: {span.name}")
        for child in by_parent.get(span.span_id, []):
            walk(child, depth + 1)

    for root in [s for s in spans if s.parent_id not in ids]:
        walk(root, 0)
    return lines


async def test_one_trace_spans_proxy_server_and_sql(run: dict[str, Any]) -> None:
    spans = [s for s in run["spans"] if s.trace_id == BROWSER_TRACE]
    print("\n".join(_tree(spans)))  # shown with -s: the trace as the collector received it
    by_id = {s.span_id: s for s in spans}

    def ancestors(span: Span) -> list[Span]:
        chain = []
        while span.parent_id in by_id:
            span = by_id[span.parent_id]
            chain.append(span)
        return chain

    sql = [
        s
        for s in spans
        if s.attributes.get("db.system") == "postgresql" and "orflow_book" in s.name + str(s.attributes)
    ]
    assert sql, f"no orflow_book() SQL span in the browser's trace: {_tree(spans)}"
    chain = [(s.service, s.kind) for s in ancestors(sql[0])]
    server, client, internal_or_server = 2, 3, (1, 2)
    assert chain[0] == ("orflow-server", server), chain  # the SQL span's parent is the gRPC server span
    assert chain[1] == ("orflow-proxy", client), chain  # whose parent is the proxy's gRPC client span
    assert chain[2][0] == "orflow-proxy" and chain[2][1] in internal_or_server, chain  # the aiohttp request span
    assert by_id[sql[0].parent_id].name == "/orflow.v1.BookingService/CreateBooking"
    assert all(s.trace_id == BROWSER_TRACE for s in ancestors(sql[0])), "the browser's trace id is kept throughout"


async def test_logs_are_json_lines_with_the_call_its_actor_ids_and_trace(run: dict[str, Any]) -> None:
    server, worker, proxy = (run["logs"][name] for name in ("server", "worker", "proxy"))
    created = next(r for r in server if r.get("event") == "rpc" and str(r["method"]).endswith("/CreateBooking"))
    print(json.dumps(created), json.dumps(next(r for r in proxy if r.get("event") == "request")), sep="\n")
    assert created["code"] == "OK" and created["level"] == "info"
    assert (created["actor"], created["role"]) == ("obs-patient", "patient")
    assert (created["booking_id"], created["slot_id"]) == (run["booking_id"], run["slot_id"])
    assert created["trace_id"] == BROWSER_TRACE and isinstance(created["duration_ms"], float)
    missing = next(r for r in server if r.get("event") == "rpc" and str(r["method"]).endswith("/GetSlot"))
    assert (missing["code"], missing["actor"], missing["role"]) == ("NOT_FOUND", "anonymous", "anonymous")
    forwarded = [r for r in proxy if r.get("event") == "request" and str(r["path"]).endswith("/CreateBooking")]
    assert forwarded and forwarded[0]["status"] == 200 and forwarded[0]["grpc_code"] == "0"
    assert forwarded[0]["trace_id"] == BROWSER_TRACE
    sweeps = [r for r in worker if r.get("event") == "job" and r.get("task") == "sweep"]
    print(json.dumps(sweeps[0]))
    assert sweeps and all(r["expired"] >= 1 for r in sweeps), "the sweep logs only when it did work"
    assert not any(r.get("logger", "").startswith("saq") and r.get("level") == "info" for r in worker)
    assert any(r.get("logger") == "orflow_server.app" for r in server), "stdlib logging goes through the same renderer"


def _exported_names(text: str) -> set[str]:
    """Every series name a /metrics page can carry, from its TYPE lines (with the suffixes they imply)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE):
        names.add(name)
        names.update(name + suffix for suffix in suffixes.get(kind, ()))
    return names


def _gauge(text: str, name: str) -> float:
    [value] = re.findall(rf"^{name} (\S+)$", text, flags=re.MULTILINE)
    return float(value)


async def test_the_server_and_the_proxy_froze_their_start_up_heap(run: dict[str, Any]) -> None:
    """gc.freeze at start-up: the collector's full passes no longer walk it while streams wait (app.py)."""
    metrics = run["metrics"]
    assert _gauge(metrics["server"], "orflow_gc_frozen_objects") > 10_000
    assert _gauge(metrics["proxy"], "orflow_gc_frozen_objects") > 10_000
    assert _gauge(metrics["worker"], "orflow_gc_frozen_objects") == 0  # not frozen: nothing waits on its pauses


def _dashboard_names(dashboard: dict[str, Any]) -> set[str]:
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert exprs, "the dashboard has queries"
    # Drop label matchers, strings, ranges, Grafana variables and by/without label lists: what remains
    # with an underscore is a metric name (PromQL's own functions here have none, but histogram_quantile).
    noise = r'\{[^}]*\}|"[^"]*"|\[[^\]]*\]|\$\w+|\b(?:by|without)\s*\([^)]*\)'
    words = {w for expr in exprs for w in re.findall(r"\b[a-z_:][a-z0-9_:]*\b", re.sub(noise, "", expr))}
    return {w for w in words if "_" in w} - {"histogram_quantile"}


async def test_dashboard_uses_only_metrics_the_processes_export(run: dict[str, Any]) -> None:
    exported = set().union(*(_exported_names(text) for text in run["metrics"].values()))
    for required in ("grpc_server_handled_total", "orflow_db_pool_in_use", "orflow_web_requests_total"):
        assert required in exported
    used = _dashboard_names(json.loads(DASHBOARD.read_text()))
    assert used, "the dashboard names metrics"
    assert used <= exported, f"the dashboard uses metrics no process exports: {sorted(used - exported)}"
