"""Session fixtures on REAL services: the machine's PostgreSQL/Redis or embedded ones.

ORFLOW_TEST_DATABASE_URL (a server where we may create databases) and
ORFLOW_TEST_REDIS_URL select running services; without them the embedded
PostgreSQL and Redis start in a temporary folder. Every session gets a fresh
database, dropped at the end.
"""

from __future__ import annotations

import faulthandler
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
import pytest_asyncio
from orflow.v1 import admin_service_pb2_grpc, booking_service_pb2_grpc, slot_service_pb2_grpc
from orflow_server.app import OrFlowServer, build_server
from orflow_server.jobs import BufferedExpiryScheduler, SaqExpiryScheduler
from orflow_server.settings import Settings
from orflow_tools import embedded
from orflow_tools.testkit.databases import fresh_database
from saq import Queue

from .auth import TEST_SECRET, authorized_channel

# A test whose set-up, call and teardown run longer than this is hung: see _hang_watchdog.
TEST_HANG_SECONDS = 900


@pytest.fixture(autouse=True)
def _hang_watchdog() -> Iterator[None]:
    """Turns a hung test into a failure within minutes: every thread's stack is dumped and the run ends.

    Autouse, so it is set up before the test's other fixtures and torn down after them: a hang in their
    teardown is caught too. Without it a hang would keep CI waiting for its 90-minute limit.
    """
    faulthandler.dump_traceback_later(TEST_HANG_SECONDS, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server URL (any database on it) where tests may create databases."""
    configured = os.environ.get("ORFLOW_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    pg = embedded.start_postgres(tmp_path_factory.mktemp("pg"))
    try:
        yield pg.url
    finally:
        embedded.stop_postgres(pg)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("ORFLOW_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    server = embedded.start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server.url
    finally:
        embedded.stop_redis(server)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test session."""
    async with fresh_database(server_url, prefix="orflow_test") as url:
        yield url


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(database_url, min_size=2, max_size=30)
    assert created is not None
    yield created
    await created.close()


@pytest_asyncio.fixture(loop_scope="session")
async def db(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection to an EMPTY database (every table truncated before the test)."""
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE bookings, slot_equipment, slots, equipment, doctors, rooms RESTART IDENTITY")
        yield conn


# The shared test server's booking rate limit is out of the way; tests/rpc/test_limits.py starts its own.
TEST_SETTINGS = Settings(
    grpc_addr="127.0.0.1:0",
    auth_secret=TEST_SECRET,
    allow_reset=True,
    booking_rate_per_minute=1_000_000,
    booking_burst=10_000,
)


@pytest.fixture(scope="session")
def queue_name() -> str:
    """A SAQ queue of this session's own, so no other run's jobs can reach it."""
    return f"orflow-test-{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def saq_queue(redis_url: str, queue_name: str) -> AsyncIterator[Queue]:
    queue = Queue.from_url(redis_url, name=queue_name)
    await queue.connect()
    yield queue
    await queue.disconnect()


@pytest.fixture(scope="session")
def settings() -> Settings:
    return TEST_SETTINGS


ServerFactory = Callable[..., Any]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def start_server(pool: asyncpg.Pool, saq_queue: Queue, database_url: str) -> AsyncIterator[ServerFactory]:
    """Starts a real aio server on port 0 with settings overrides; returns its target."""
    servers: list[OrFlowServer] = []
    schedulers: list[BufferedExpiryScheduler] = []

    async def start(queue: Queue | None = None, **overrides: Any) -> str:
        """`queue`: the SAQ queue its expiry jobs go to (default: the session's)."""
        schedulers.append(BufferedExpiryScheduler(SaqExpiryScheduler(queue or saq_queue)))  # as `orflow server` runs it
        server = build_server(
            replace(TEST_SETTINGS, **overrides),
            pool=pool,
            expiry=schedulers[-1],
            listen_dsn=database_url,
        )
        await server.start()
        servers.append(server)
        return f"127.0.0.1:{server.port}"

    yield start
    for server in servers:
        await server.stop(grace=None)
    for scheduler in schedulers:
        await scheduler.flush()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def target(start_server: ServerFactory) -> str:
    """The shared test server (default settings: 120 s holds, no turnover)."""
    return str(await start_server())


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def channel(target: str) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to the shared test server whose calls carry an admin token (tests/auth.py)."""
    async with authorized_channel(target) as chan:
        yield chan


@pytest.fixture
def slots(channel: grpc.aio.Channel) -> slot_service_pb2_grpc.SlotServiceStub:
    return slot_service_pb2_grpc.SlotServiceStub(channel)


@pytest.fixture
def bookings(channel: grpc.aio.Channel) -> booking_service_pb2_grpc.BookingServiceStub:
    return booking_service_pb2_grpc.BookingServiceStub(channel)


@pytest.fixture
def admin(channel: grpc.aio.Channel) -> admin_service_pb2_grpc.AdminServiceStub:
    return admin_service_pb2_grpc.AdminServiceStub(channel)


REPO_ROOT = Path(__file__).resolve().parents[1]
