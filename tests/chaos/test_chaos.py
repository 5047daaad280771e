"""Faults an operator will meet, injected into real `orflow` processes under booking load from several processes.

Every scenario ends with the same checks (tests/chaos/harness.py `check`): THE
SQL invariants, every acknowledged booking present, no hold left PENDING past
its expiry + the sweep interval, no INTERNAL answer; and prints its counts
(`pytest -s tests/chaos` shows them). The load is the retrying Python client,
so what it reports failed is what an application would see failed.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiohttp
import asyncpg
import pytest
from orflow.v1 import slot_service_pb2
from orflow_client import OrFlowClient
from orflow_tools.testkit.databases import fresh_database
from orflow_tools.testkit.ports import free_port
from saq import Queue

from tests.auth import ADMIN_TOKEN
from tests.factories import future, insert_slot

from . import harness
from .harness import Children, PrivatePostgres, PrivateRedis, assert_sound, check, child_env, insert_world
from .load import Load, refusals

pytestmark = pytest.mark.slow

# Codes an application would see as a failed booking (the rest are the rule refusing: ABORTED and friends).
FAILED_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL", "UNKNOWN", "CANCELLED", "RESOURCE_EXHAUSTED")
PROGRESS = 15  # bookings the load must make between two steps of a scenario (proof it runs, or recovered)


@dataclass
class World:
    database_url: str
    slot_ids: list[int]

    async def bookings(self) -> int:
        conn = await asyncpg.connect(self.database_url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM bookings"))
        finally:
            await conn.close()

    async def progress(self, more: int = PROGRESS, limit_seconds: float = 30.0) -> None:
        """Waits until `more` bookings have been made from now on."""
        start = await self.bookings()

        async def grown() -> bool:
            return await self.bookings() >= start + more

        await harness.until(grown, limit_seconds, f"{more} more bookings")


@pytest.fixture
def children() -> Iterator[Children]:
    started = Children()
    yield started
    started.stop_all()


async def _world(server_url: str) -> AsyncIterator[World]:
    async with fresh_database(server_url, prefix="orflow_chaos") as url:
        conn = await asyncpg.connect(url)
        try:
            slot_ids = await insert_world(conn)
        finally:
            await conn.close()
        yield World(url, slot_ids)


@pytest.fixture
async def world(server_url: str) -> AsyncIterator[World]:
    async for w in _world(server_url):
        yield w


def _env(world: World, redis_url: str) -> dict[str, str]:
    return child_env(
        ORFLOW_DATABASE_URL=world.database_url,
        ORFLOW_REDIS_URL=redis_url,
        ORFLOW_QUEUE_NAME=f"orflow-chaos-{uuid.uuid4().hex[:12]}",
    )


def _failed(outcomes: list[dict[str, object]]) -> int:
    counts = refusals(outcomes)  # type: ignore[arg-type]
    return sum(counts[code] for code in FAILED_CODES)


async def test_all_server_connections_terminated_under_load(world: World, redis_url: str, children: Children) -> None:
    env = _env(world, redis_url)
    server = children.add(harness.server(env).start())
    children.add(harness.worker(env).start())
    load = Load.start(server.ready_addr or "", ADMIN_TOKEN, world.slot_ids, label="a")
    terminated = 0
    try:
        await world.progress()
        admin = await asyncpg.connect(world.database_url)
        try:
            for _ in range(3):  # again and again, so some land mid-statement and some on idle pooled connections
                terminated += await admin.fetchval(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                await asyncio.sleep(0.3)
        finally:
            await admin.close()
        await world.progress()
    finally:
        outcomes = load.finish()
    assert terminated > 0
    assert_sound(await check(world.database_url, "(a) all connections terminated", outcomes, terminated=terminated))


async def test_postgres_restarted_under_booking_load(redis_url: str, children: Children) -> None:
    pg = PrivatePostgres.create()
    try:
        pg.start()
        async for world in _world(pg.url):
            env = _env(world, redis_url)
            server = children.add(harness.server(env).start())
            children.add(harness.worker(env).start())
            load = Load.start(server.ready_addr or "", ADMIN_TOKEN, world.slot_ids, label="b")
            try:
                await world.progress()
                started = time.monotonic()
                pg.stop("fast")
                pg.start()
                down = time.monotonic() - started
                await world.progress()
            finally:
                outcomes = load.finish()
            report = await check(world.database_url, "(b) PostgreSQL restarted", outcomes, down_seconds=f"{down:.1f}")
            children.stop_all()  # after the check: the worker's sweep is part of what it checks
            assert_sound(report)
    finally:
        children.stop_all()
        pg.remove()


async def test_redis_stopped_and_restarted(world: World, children: Children) -> None:
    redis = PrivateRedis()
    redis.start()
    try:
        env = _env(world, redis.url)
        server = children.add(harness.server(env).start())
        worker = children.add(harness.worker(env).start())
        queue = Queue.from_url(redis.url, name=env["ORFLOW_QUEUE_NAME"])
        load = Load.start(server.ready_addr or "", ADMIN_TOKEN, world.slot_ids, label="c")
        try:
            await world.progress()
            redis.stop()
            await world.progress()  # bookings go on without Redis
            redis.start()
            await world.progress()
        finally:
            outcomes = load.finish()
        # The holds made while Redis was down never had a job: the sweep expired them (checked below).
        # Jobs enqueued after the restart run: the queue drains to the sweep's own cron job.
        await queue.connect()
        try:

            async def drained() -> bool:
                return await queue.count("incomplete") <= 1

            await harness.until(drained, 15, "the expiry jobs queued after Redis came back to run")
        finally:
            await queue.disconnect()
        assert worker.process.poll() is None, "the worker must outlive a Redis outage"
        assert_sound(await check(world.database_url, "(c) Redis stopped and restarted", outcomes))
    finally:
        children.stop_all()
        redis.stop()


async def test_worker_killed_then_restarted(world: World, redis_url: str, children: Children) -> None:
    env = _env(world, redis_url)
    server = children.add(harness.server(env).start())
    worker = children.add(harness.worker(env).start())
    load = Load.start(server.ready_addr or "", ADMIN_TOKEN, world.slot_ids, label="d")
    try:
        await world.progress()
        worker.signal(signal.SIGKILL)
        worker.wait()
        await world.progress()  # holds made now expire only once a worker is back
        worker.start()
        await world.progress()
    finally:
        outcomes = load.finish()
    assert_sound(await check(world.database_url, "(d) worker SIGKILL + restart", outcomes))


def _two_servers(world: World, env: dict[str, str], children: Children) -> tuple[harness.Child, str]:
    first = children.add(harness.server(env).start())
    second = children.add(harness.server(env).start())
    return first, f"ipv4:{first.ready_addr},{second.ready_addr}"


async def test_server_killed_under_load_behind_round_robin(world: World, redis_url: str, children: Children) -> None:
    env = _env(world, redis_url)
    children.add(harness.worker(env).start())
    first, target = _two_servers(world, env, children)
    load = Load.start(target, ADMIN_TOKEN, world.slot_ids, label="e")
    try:
        await world.progress()
        in_flight = load.calls_in_flight
        first.signal(signal.SIGKILL)
        first.wait()
        await world.progress()
        first.start()
        await world.progress()
    finally:
        outcomes = load.finish()
    report = await check(
        world.database_url, "(e) server SIGKILL", outcomes, in_flight_at_kill=in_flight, failed=_failed(outcomes)
    )
    assert_sound(report)
    assert _failed(outcomes) == 0


async def test_server_drained_by_sigterm_under_load(world: World, redis_url: str, children: Children) -> None:
    env = _env(world, redis_url)
    children.add(harness.worker(env).start())
    first, target = _two_servers(world, env, children)
    load = Load.start(target, ADMIN_TOKEN, world.slot_ids, label="f")
    try:
        await world.progress()
        in_flight = load.calls_in_flight
        started = time.monotonic()
        first.signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(first.wait)
        drained = time.monotonic() - started
        await world.progress()
    finally:
        outcomes = load.finish()
    report = await check(
        world.database_url,
        "(f) server SIGTERM (drain)",
        outcomes,
        in_flight_at_sigterm=in_flight,
        drain_seconds=f"{drained:.2f}",
        failed=_failed(outcomes),
    )
    assert_sound(report)
    assert exit_code == 0
    assert drained < float(env["ORFLOW_SHUTDOWN_GRACE_SECONDS"]) + 5
    assert _failed(outcomes) == 0


async def _watch(http: aiohttp.ClientSession, url: str) -> AsyncIterator[slot_service_pb2.WatchSlotsResponse]:
    body = slot_service_pb2.WatchSlotsRequest().SerializeToString()
    request = len(body).to_bytes(5, "big") + body  # flag 0, then the length: one gRPC-web frame
    headers = {"Content-Type": "application/grpc-web+proto", "Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with http.post(url + "/orflow.v1.SlotService/WatchSlots", data=request, headers=headers) as response:
        assert response.status == 200
        while True:
            header = await response.content.readexactly(5)
            payload = await response.content.readexactly(int.from_bytes(header[1:], "big"))
            if header[0] & 0x80:
                return  # the trailer: the stream ended
            yield slot_service_pb2.WatchSlotsResponse.FromString(payload)


async def _snapshot(http: aiohttp.ClientSession, url: str) -> tuple[dict[int, bool], AsyncIterator[object]]:
    """Slot id → available, from a fresh WatchSlots snapshot; and the still open stream."""
    stream = _watch(http, url)
    slots: dict[int, bool] = {}
    async for change in stream:
        if change.kind == slot_service_pb2.SLOT_CHANGE_KIND_SNAPSHOT_COMPLETE:
            return slots, stream
        slots[change.slot.id] = change.slot.available
    raise AssertionError("the stream ended before its snapshot was complete")


async def test_proxy_restarted_under_an_open_watch_stream(world: World, redis_url: str, children: Children) -> None:
    conn = await asyncpg.connect(world.database_url)
    try:
        watched = await insert_slot(conn, start=future(200))
    finally:
        await conn.close()
    env = _env(world, redis_url)
    server = children.add(harness.server(env).start())
    children.add(harness.worker(env).start())
    web_addr = f"127.0.0.1:{free_port()}"
    proxy = children.add(harness.proxy(env, upstream=server.ready_addr or "", web_addr=web_addr).start())
    url = f"http://{web_addr}"
    load = Load.start(server.ready_addr or "", ADMIN_TOKEN, world.slot_ids, label="g")
    failed_reconnects = 0  # attempts to resubscribe through the restarted proxy that failed before one worked
    try:
        async with aiohttp.ClientSession() as http:
            before, stream = await _snapshot(http, url)
            assert before[watched] is True
            proxy.signal(signal.SIGTERM)
            with pytest.raises((aiohttp.ClientError, asyncio.IncompleteReadError)):
                async for _ in stream:
                    pass  # live changes from the load, until the proxy goes away
            async with OrFlowClient(server.ready_addr or "", token=ADMIN_TOKEN) as client:
                held = await client.create_booking(slot_id=watched, patient_id="watched-patient")
                await client.confirm_booking(held.id)  # confirmed: it outlives the 2 s hold
            proxy.wait()
            proxy.start()
            while True:  # the portal's reconnect loop: retry until the proxy answers, then resynchronise
                try:
                    after, stream = await _snapshot(http, url)
                    break
                except (aiohttp.ClientError, AssertionError):
                    failed_reconnects += 1
                    await asyncio.sleep(0.2)
            await stream.aclose()  # type: ignore[attr-defined]
        assert after[watched] is False, "the fresh snapshot shows the booking made while the proxy was away"
        await world.progress(5)
    finally:
        outcomes = load.finish()
    report = await check(
        world.database_url, "(g) proxy restarted under WatchSlots", outcomes, failed_reconnects=failed_reconnects
    )
    assert_sound(report)
