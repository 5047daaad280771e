"""The server through a real PgBouncer in transaction mode: bookings, invariants and WatchSlots (LISTEN direct)."""

from __future__ import annotations

import os

import asyncpg
import grpc
import pytest
from orflow.v1 import booking_service_pb2, booking_service_pb2_grpc, slot_service_pb2, slot_service_pb2_grpc
from orflow_tools.testkit.databases import fresh_database
from orflow_tools.testkit.invariants import NO_VIOLATIONS, violations
from orflow_tools.testkit.pgbouncer import BINARY, pgbouncer
from orflow_tools.testkit.ports import free_port
from orflow_tools.testkit.processes import ChildStack

from tests.auth import TEST_SECRET
from tests.scale.pooler_throughput import book_all
from tests.scale.test_multi_process import SERVICE, _insert_slots

pytestmark = [
    pytest.mark.skipif(
        BINARY is None and not os.environ.get("CI"),
        reason="pgbouncer is not installed (apt-get install -y pgbouncer; .ci/run installs it; CI never skips this)",
    ),
]


async def test_bookings_through_pgbouncer_transaction_mode(server_url: str) -> None:
    """orflow_book() and every other statement work with asyncpg's statement cache off; the rule still holds."""
    async with fresh_database(server_url, prefix="orflow_pgbouncer") as url:
        with pgbouncer(url, pool_size=4) as pooled:
            rate = await book_all(pooled, url, bookings=100, callers=8, cache=0)
    assert rate > 0


async def test_server_books_through_pgbouncer_and_watches_directly(server_url: str, redis_url: str) -> None:
    async with fresh_database(server_url, prefix="orflow_pgbouncer") as url:
        conn = await asyncpg.connect(url)
        try:
            (slot_id, *_) = await _insert_slots(conn, 3)
            with pgbouncer(url, pool_size=4) as pooled:
                addr = f"127.0.0.1:{free_port()}"
                env = {
                    **os.environ,
                    "ORFLOW_DATABASE_URL": pooled,
                    "ORFLOW_DATABASE_DIRECT_URL": url,
                    "ORFLOW_DB_STATEMENT_CACHE_SIZE": "0",
                    "ORFLOW_REDIS_URL": redis_url,
                    "ORFLOW_QUEUE_NAME": f"orflow-pgbouncer-{free_port()}",
                    "ORFLOW_AUTH_SECRET": TEST_SECRET,
                    "ORFLOW_GRPC_ADDR": addr,
                    "ORFLOW_METRICS_ADDR": "127.0.0.1:0",
                }
                stack = ChildStack.start(["server"], env, quiet=True)
                try:
                    assert stack.wait_for(addr, timeout=60)
                    await _book_and_watch(addr, slot_id)
                    listeners = await conn.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND query ILIKE 'LISTEN%'"
                    )
                    assert listeners >= 1  # the hub's LISTEN session is a direct one
                finally:
                    stack.stop()
            assert await violations(conn) == NO_VIOLATIONS
        finally:
            await conn.close()


async def _book_and_watch(addr: str, slot_id: int) -> None:
    async with grpc.aio.insecure_channel(addr) as channel:
        # A staff watcher sees BOOKED (anonymous ones see only AVAILABILITY_CHANGED, issue 17 F10).
        stream = slot_service_pb2_grpc.SlotServiceStub(channel).WatchSlots(
            slot_service_pb2.WatchSlotsRequest(), metadata=SERVICE, timeout=60
        )
        async for message in stream:
            if message.kind == slot_service_pb2.SLOT_CHANGE_KIND_SNAPSHOT_COMPLETE:
                break
        bookings = booking_service_pb2_grpc.BookingServiceStub(channel)
        request = booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id="p-pooled")
        booking = (await bookings.CreateBooking(request, metadata=SERVICE, timeout=30)).booking
        confirmed = await bookings.ConfirmBooking(
            booking_service_pb2.ConfirmBookingRequest(booking_id=booking.id), metadata=SERVICE, timeout=30
        )
        assert confirmed.booking.id == booking.id
        async for message in stream:
            if message.slot.id == slot_id and message.kind == slot_service_pb2.SLOT_CHANGE_KIND_BOOKED:
                break
        stream.cancel()
