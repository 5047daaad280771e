"""The worker's expiry jobs and sweeps as OpenTelemetry spans, from a REAL `orflow worker` exporting OTLP/HTTP.

Tracing is on by the standard OTEL_* variables only (as for the server); the
collector stub of tests/observability/stack.py receives what the process exports.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from orflow.v1 import booking_service_pb2, booking_service_pb2_grpc
from orflow_server.jobs import EXPIRE_TASK
from orflow_tools.testkit.ports import free_port, wait_for_port
from saq import Queue

from tests.auth import authorized_channel
from tests.conftest import ServerFactory
from tests.factories import insert_slot
from tests.observability.stack import Collector, Span, json_lines, orflow_processes

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]
CONSUMER = 5  # SpanKind.CONSUMER in OTLP


async def _until(predicate: Callable[[], Any], what: str, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
    return result


def is_job_of(span: Span, booking_id: int) -> bool:
    return span.name == EXPIRE_TASK and span.attributes.get("orflow.booking_id") == str(booking_id)


def children_of(spans: list[Span], parent: Span) -> list[Span]:
    return [s for s in spans if s.parent_id == parent.span_id and s.trace_id == parent.trace_id]


async def test_jobs_and_sweeps_are_spans_with_their_sql_below(
    db: asyncpg.Connection,
    database_url: str,
    redis_url: str,
    queue_name: str,
    saq_queue: Queue,
    start_server: ServerFactory,
    tmp_path: Path,
) -> None:
    target = await start_server()
    async with authorized_channel(target) as channel:
        stub = booking_service_pb2_grpc.BookingServiceStub(channel)
        overdue, live = [
            (
                await stub.CreateBooking(booking_service_pb2.CreateBookingRequest(slot_id=s, patient_id=f"wt-{s}"))
            ).booking
            for s in [await insert_slot(db), await insert_slot(db)]
        ]
    await db.execute("UPDATE bookings SET expire_time = now() - interval '1 second' WHERE id = $1", overdue.id)
    collector = Collector()
    runner = web.AppRunner(collector.app())
    await runner.setup()
    otlp_port, metrics_addr = free_port(), f"127.0.0.1:{free_port()}"
    await web.TCPSite(runner, "127.0.0.1", otlp_port).start()
    env = {
        "ORFLOW_DATABASE_URL": database_url,
        "ORFLOW_REDIS_URL": redis_url,
        "ORFLOW_QUEUE_NAME": queue_name,
        "ORFLOW_WORKER_METRICS_ADDR": metrics_addr,
        "ORFLOW_SWEEP_SECONDS": "59",  # the start-up sweep: it fails the overdue hold
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    try:
        with orflow_processes({"worker": ["worker"]}, env, tmp_path) as files:
            assert await asyncio.to_thread(wait_for_port, metrics_addr), files["worker"].read_text()
            # The live hold's job, run now: it finds the hold not yet due and does nothing.
            await saq_queue.enqueue(EXPIRE_TASK, key=f"trace-{live.id}", booking_id=live.id)
            # The session's queue may hold other tests' due jobs too: wait for, and check, this one's.
            await _until(lambda: any(is_job_of(s, live.id) for s in collector.spans), "the job's span")
            await _until(lambda: any(s.name == "sweep_overdue_holds" for s in collector.spans), "a sweep span")
            await _until(
                lambda: all(children_of(collector.spans, s) for s in collector.spans if s.service == "orflow-worker"
                            and s.name in (EXPIRE_TASK, "sweep_overdue_holds")),
                "the SQL spans below them",
            )  # fmt: skip
        logs = json_lines(files["worker"])
    finally:
        await runner.cleanup()
    spans = [s for s in collector.spans if s.service == "orflow-worker"]
    job = next(s for s in spans if is_job_of(s, live.id))
    assert job.kind == CONSUMER and job.parent_id == ""
    assert job.attributes["orflow.booking_id"] == str(live.id)
    assert job.attributes["messaging.system"] == "saq"
    sweeps = [s for s in spans if s.name == "sweep_overdue_holds"]
    assert any(s.attributes.get("orflow.expired") == "1" for s in sweeps)  # the overdue hold, at start-up
    for parent in (job, *sweeps):
        below = children_of(spans, parent)
        assert below and all(s.attributes.get("db.system") == "postgresql" for s in below), (parent, below)
    line = next(
        r for r in logs if r.get("event") == "job" and r.get("task") == EXPIRE_TASK and r.get("booking_id") == live.id
    )
    assert line["trace_id"] == job.trace_id  # the job's log line leads to its trace
    print("\n".join(f"{s.name} <- {p.name}" for p in (job, *sweeps) for s in children_of(spans, p)))
