"""BlockingOrFlowClient: against the real server (from a thread), and against grpcio-testing's
channel where the test plays a server that misbehaves on cue."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import asyncpg
import grpc
import grpc_testing
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from orflow.v1 import booking_pb2, booking_service_pb2, slot_service_pb2
from orflow_client import (
    BlockingOrFlowClient,
    Internal,
    OrFlowError,
    PermissionDenied,
    ResourceExhausted,
    RetryPolicy,
    Unauthenticated,
    Unavailable,
)
from orflow_client._channel import SERVICES

from ..auth import ADMIN_TOKEN
from ..factories import future, insert_slot

FAST = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05)
CREATE = SERVICES[1].methods_by_name["CreateBooking"]


def _run_blocking(target: str, slot_id: int) -> tuple[list[int], booking_pb2.Booking, list[int]]:
    with BlockingOrFlowClient(target, token=ADMIN_TOKEN) as client:
        listed = [s.id for s in client.list_slots(page_size=1)]
        hold = client.create_booking(slot_id=slot_id, patient_id="p-blocking")
        confirmed = client.confirm_booking(hold.id)
        mine = [b.id for b in client.list_bookings(patient_id="p-blocking", page_size=1)]
        return listed, confirmed, mine


async def test_blocking_client_books_on_the_real_server(target: str, db: asyncpg.Connection) -> None:
    slot_ids = [await insert_slot(db, start=future(24 + 3 * i)) for i in range(3)]

    listed, confirmed, mine = await asyncio.to_thread(_run_blocking, target, slot_ids[1])

    assert listed == slot_ids
    assert confirmed.status == booking_pb2.BOOKING_STATUS_CONFIRMED and mine == [confirmed.id]
    assert await db.fetchval("SELECT status FROM bookings WHERE id = $1", confirmed.id) == "CONFIRMED"


def _first_watch_message(target: str) -> slot_service_pb2.WatchSlotsResponse:
    with BlockingOrFlowClient(target, token=ADMIN_TOKEN) as client:
        stream = client.watch_slots()
        try:
            return next(stream)
        finally:
            stream.close()  # type: ignore[attr-defined]


async def test_blocking_watch_starts_with_a_snapshot(target: str, db: asyncpg.Connection) -> None:
    slot_id = await insert_slot(db)
    first = await asyncio.to_thread(_first_watch_message, target)
    assert (first.kind, first.slot.id) == (slot_service_pb2.SLOT_CHANGE_KIND_SNAPSHOT, slot_id)


@pytest.fixture
def fake() -> Iterator[tuple[grpc_testing.Channel, BlockingOrFlowClient, ThreadPoolExecutor]]:
    channel = grpc_testing.channel(SERVICES, grpc_testing.strict_real_time())
    client = BlockingOrFlowClient("unused:0", channel=channel, token="t0ken", retry=FAST, timeout=5)
    with ThreadPoolExecutor(max_workers=1) as caller:
        yield channel, client, caller


def _details(*details: object) -> tuple[tuple[str, bytes], ...]:
    packed = []
    for message in details:
        holder = any_pb2.Any()
        holder.Pack(message)  # type: ignore[arg-type]
        packed.append(holder)
    return (("grpc-status-details-bin", status_pb2.Status(details=packed).SerializeToString()),)


def test_unavailable_then_success_keeps_the_request_id_and_the_token(fake: tuple) -> None:  # type: ignore[type-arg]
    channel, client, caller = fake
    pending = caller.submit(client.create_booking, slot_id=5, patient_id="p-1")

    metadata, first, rpc = channel.take_unary_unary(CREATE)
    rpc.terminate(booking_service_pb2.CreateBookingResponse(), (), grpc.StatusCode.UNAVAILABLE, "restarting")
    _, second, rpc = channel.take_unary_unary(CREATE)
    made = booking_pb2.Booking(id=7, slot_id=5, patient_id="p-1", request_id=second.request_id)
    rpc.terminate(booking_service_pb2.CreateBookingResponse(booking=made), (), grpc.StatusCode.OK, "")

    assert pending.result(timeout=5) == made
    assert first.request_id == second.request_id and len(first.request_id) == 36
    assert ("authorization", "Bearer t0ken") in metadata


def test_non_retryable_codes_are_raised_at_once(fake: tuple) -> None:  # type: ignore[type-arg]
    channel, client, caller = fake
    pending = caller.submit(client.create_booking, slot_id=5, patient_id="p-1")
    _, _, rpc = channel.take_unary_unary(CREATE)
    rpc.terminate(booking_service_pb2.CreateBookingResponse(), (), grpc.StatusCode.INTERNAL, "internal error")

    with pytest.raises(Internal):
        pending.result(timeout=5)


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED", Unauthenticated),
        (grpc.StatusCode.PERMISSION_DENIED, "ROLE_FORBIDDEN", PermissionDenied),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED", ResourceExhausted),
        (grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE", Unavailable),
        (grpc.StatusCode.DATA_LOSS, "", OrFlowError),
    ],
)
def test_status_codes_become_typed_errors(
    fake: tuple,  # type: ignore[type-arg]
    code: grpc.StatusCode,
    reason: str,
    expected: type[OrFlowError],
) -> None:
    channel, client, caller = fake
    pending = caller.submit(client.get_booking, 3)
    details = _details(
        error_details_pb2.ErrorInfo(reason=reason, domain="orflow", metadata={"role": "patient"}),
        error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=2)),
    )
    # A read is retried by gRPC's service config, which this test channel doesn't run: one attempt.
    _, _, rpc = channel.take_unary_unary(SERVICES[1].methods_by_name["GetBooking"])
    rpc.terminate(booking_service_pb2.GetBookingResponse(), details, code, "told to fail")

    with pytest.raises(expected) as caught:
        pending.result(timeout=5)
    assert type(caught.value) is expected
    assert (caught.value.code, caught.value.message, caught.value.reason) == (code, "told to fail", reason)
    assert caught.value.retry_delay == timedelta(seconds=2)
    assert caught.value.metadata == {"role": "patient"}
