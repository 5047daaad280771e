"""Measures CreateBooking through a real `orflow server` process: statements per booking, or latency under load.

    .venv/bin/python scripts/measure_bookings.py statements --server-url URL [-n 200]
    .venv/bin/python scripts/measure_bookings.py load --server-url URL --redis-url URL \
        [-n 2000] [--callers 32] [--runs 3]

`statements` needs a PostgreSQL with pg_stat_statements preloaded and
`pg_stat_statements.track_utility=on` (so BEGIN/COMMIT count), and
`pg_stat_statements.track=all` to also list the statements run inside functions.
Both modes create a fresh database on --server-url (dropped at the end),
migrate it, publish -n slots that each need one unit of an equipment type
(distinct times, so no booking conflicts with another), start `python -m
orflow_server server` on it and book every slot once over gRPC as an admin.

To measure another checkout's code (e.g. main's, "before"), run this file
with PYTHONPATH=<that checkout>/server: the server process and the migrations
come from there.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
from orflow.v1 import booking_service_pb2, booking_service_pb2_grpc
from orflow_server.db.migrate import apply_migrations
from orflow_server.domain.access import Role
from orflow_server.security.tokens import issue_token

SECRET = "measure-bookings-secret-0123456789-abcdef"
WARM_UP = 40  # bookings before counting: fills every pooled connection's statement cache


@dataclass(frozen=True)
class Stack:
    target: str
    database: str
    database_url: str
    slot_ids: list[int]
    queue_name: str


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _publish_slots(conn: asyncpg.Connection, count: int) -> list[int]:
    """`count` slots, 2 h apart, in 20 rooms with 20 surgeons, each needing one unit of one equipment type."""
    await conn.execute(
        "INSERT INTO rooms (name) SELECT 'room ' || g FROM generate_series(1, 20) g;"
        "INSERT INTO doctors (name, specialty) SELECT 'dr ' || g, 'general' FROM generate_series(1, 20) g;"
        "INSERT INTO equipment (name, quantity) VALUES ('monitor', 100000)"
    )
    rows = await conn.fetch(
        """
        INSERT INTO slots (doctor_id, room_id, procedure_type, start_time, end_time)
        SELECT 1 + g % 20, 1 + g % 20, 'procedure',
               date_trunc('hour', now()) + interval '2 days' + g * interval '2 hours',
               date_trunc('hour', now()) + interval '2 days' + g * interval '2 hours' + interval '1 hour'
        FROM generate_series(1, $1) g
        RETURNING id
        """,
        count,
    )
    ids = [int(r["id"]) for r in rows]
    await conn.execute(
        "INSERT INTO slot_equipment (slot_id, equipment_id, quantity) SELECT unnest($1::bigint[]), 1, 1", ids
    )
    return ids


@asynccontextmanager
async def running_stack(server_url: str, redis_url: str | None, slots: int) -> AsyncIterator[Stack]:
    """A fresh migrated database with `slots` slots, and a real server process on it."""
    name = f"orflow_measure_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(server_url, name)
    conn = await asyncpg.connect(url)
    try:
        await apply_migrations(conn)
        slot_ids = await _publish_slots(conn, slots)
    finally:
        await conn.close()
    port = _free_port()
    queue_name = f"orflow-measure-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORFLOW_")}
    env.update(
        ORFLOW_DATABASE_URL=url,
        ORFLOW_GRPC_ADDR=f"127.0.0.1:{port}",
        ORFLOW_METRICS_ADDR="127.0.0.1:0",
        ORFLOW_AUTH_SECRET=SECRET,
        ORFLOW_BOOKING_RATE_PER_MINUTE="1000000",
        ORFLOW_BOOKING_BURST="10000",
        ORFLOW_QUEUE_NAME=queue_name,
        **({"ORFLOW_REDIS_URL": redis_url} if redis_url else {}),
    )
    server = await asyncio.create_subprocess_exec(sys.executable, "-m", "orflow_server", "server", env=env)
    try:
        await _wait_for_port(port, server)
        yield Stack(f"127.0.0.1:{port}", name, url, slot_ids, queue_name)
    finally:
        server.send_signal(signal.SIGTERM)  # a graceful stop: the server flushes what it still has to enqueue
        await asyncio.wait_for(server.wait(), timeout=30)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _wait_for_port(port: int, server: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server.returncode is None:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError("the server did not start")


def _stub(target: str) -> tuple[grpc.aio.Channel, booking_service_pb2_grpc.BookingServiceStub]:
    channel = grpc.aio.insecure_channel(target)
    return channel, booking_service_pb2_grpc.BookingServiceStub(channel)


def _metadata() -> tuple[tuple[str, str], ...]:
    token = issue_token(
        SECRET, subject="measure", role=Role.ADMIN, ttl=timedelta(hours=1), issuer="orflow", audience="orflow"
    )
    return (("authorization", f"Bearer {token}"),)


async def _book(
    stub: booking_service_pb2_grpc.BookingServiceStub, slot_id: int, auth: Sequence[tuple[str, str]]
) -> int:
    request = booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id=f"p-{slot_id}")
    response = await stub.CreateBooking(request, metadata=auth)
    return int(response.booking.id)


async def _book_all(target: str, slot_ids: Sequence[int], callers: int) -> list[float]:
    """Books every slot once with `callers` concurrent callers; returns each call's latency in seconds."""
    channel, stub = _stub(target)
    auth = _metadata()
    todo = iter(slot_ids)
    latencies: list[float] = []

    async def caller() -> None:
        for slot_id in todo:
            began = time.perf_counter()
            await _book(stub, slot_id, auth)
            latencies.append(time.perf_counter() - began)

    try:
        await asyncio.gather(*(caller() for _ in range(callers)))
    finally:
        await channel.close()
    return latencies


def _kind(query: str) -> str:
    text = " ".join(query.split())
    return text if len(text) <= 110 else text[:107] + "..."


async def measure_statements(args: argparse.Namespace) -> None:
    async with running_stack(args.server_url, None, WARM_UP + 2 * args.n) as stack:
        warm, booked, confirmed = stack.slot_ids[:WARM_UP], stack.slot_ids[WARM_UP : -args.n], stack.slot_ids[-args.n :]
        await _book_all(stack.target, warm, callers=args.callers)
        stats = await asyncpg.connect(args.server_url)
        try:
            rows = await _counted(stats, stack.database, lambda: _book_all(stack.target, booked, args.callers))
            _report(f"CreateBooking x {args.n}", rows, args.n)
            channel, stub = _stub(stack.target)
            auth = _metadata()
            ids = [await _book(stub, slot_id, auth) for slot_id in confirmed]

            async def confirm_all() -> None:
                for booking_id in ids:
                    request = booking_service_pb2.ConfirmBookingRequest(booking_id=booking_id)
                    await stub.ConfirmBooking(request, metadata=auth)

            rows = await _counted(stats, stack.database, confirm_all)
            _report(f"ConfirmBooking x {args.n}", rows, args.n)
            await channel.close()
        finally:
            await stats.close()


async def _counted(stats: asyncpg.Connection, database: str, work: object) -> list[asyncpg.Record]:
    await stats.execute("SELECT pg_stat_statements_reset()")
    await work()  # type: ignore[operator]
    return await stats.fetch(
        """
        SELECT toplevel, calls, query FROM pg_stat_statements
        WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)
        ORDER BY toplevel DESC, calls DESC, query
        """,
        database,
    )


def _report(title: str, rows: Sequence[asyncpg.Record], n: int) -> None:
    top = Counter[str]()
    nested = Counter[str]()
    for r in rows:
        (top if r["toplevel"] else nested)[_kind(r["query"])] += r["calls"]
    print(f"\n== {title}: top-level statements per call (pg_stat_statements, track_utility=on)")
    for query, calls in top.most_common():
        print(f"  {calls / n:5.2f}  {query}")
    print(f"  {sum(top.values()) / n:5.2f}  TOTAL top-level")
    if nested:
        print(f"  ({sum(nested.values()) / n:.2f} statements per call ran inside functions and triggers)")


async def measure_load(args: argparse.Namespace) -> None:
    from saq import Queue

    async with running_stack(args.server_url, args.redis_url, args.runs * args.n + WARM_UP) as stack:
        await _book_all(stack.target, stack.slot_ids[:WARM_UP], callers=args.callers)
        print(f"\n== CreateBooking x {args.n}, {args.callers} concurrent callers, expiry jobs on Redis")
        for run in range(args.runs):
            share = stack.slot_ids[WARM_UP + run * args.n : WARM_UP + (run + 1) * args.n]
            began = time.perf_counter()
            latencies = sorted(await _book_all(stack.target, share, callers=args.callers))
            elapsed = time.perf_counter() - began
            p50 = statistics.median(latencies) * 1000
            p99 = latencies[int(0.99 * (len(latencies) - 1))] * 1000
            rate = len(latencies) / elapsed
            print(f"  run {run + 1}: {rate:7.1f} bookings/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")
        queue = Queue.from_url(args.redis_url, name=stack.queue_name)
        expected = args.runs * args.n + WARM_UP
        deadline = time.monotonic() + 10
        while (jobs := await queue.count("incomplete")) < expected and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        print(f"  expiry jobs enqueued: {jobs} of {expected}")
        await queue.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode, n in (("statements", 200), ("load", 2000)):
        p = sub.add_parser(mode)
        p.add_argument("--server-url", required=True, help="a PostgreSQL where this may create a database")
        p.add_argument("--redis-url", required=mode == "load")
        p.add_argument("-n", type=int, default=n, help="bookings (per run)")
        p.add_argument("--callers", type=int, default=1 if mode == "statements" else 32)
        p.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(measure_statements(args) if args.mode == "statements" else measure_load(args))


if __name__ == "__main__":
    main()
