"""The proxy's development-only sign-in, over HTTP, with its tokens checked by the real server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import grpc
import jwt
import pytest
import pytest_asyncio
from orflow.v1 import admin_service_pb2, booking_service_pb2

from tests.auth import TEST_SECRET
from tests.factories import insert_slot
from tests.web.conftest import ProxyFactory
from tests.web.grpcweb import call

SIGN_IN = "/dev/sign-in"
BOOKING = "/orflow.v1.BookingService/"


async def sign_in(http: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, dict[str, Any]]:
    async with http.post(url + SIGN_IN, json=body) as reply:
        assert reply.content_type == "application/json"
        assert reply.headers["Cache-Control"] == "no-store"
        return reply.status, await reply.json()


async def test_off_unless_enabled(http: aiohttp.ClientSession, proxy: str) -> None:
    async with http.get(proxy + SIGN_IN) as reply:
        assert reply.status == 200
        assert await reply.json() == {"enabled": False}
    status, body = await sign_in(http, proxy, {"patient_id": "MRN-1"})
    assert status == 404
    assert "ORFLOW_WEB_DEV_SIGN_IN" in body["error"] and "token" not in body


async def test_on_without_a_secret_stays_off(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory, target: str
) -> None:
    """Only RS256 keys configured: nothing to sign with, so no endpoint (`orflow proxy` refuses to start)."""
    url = await start_proxy(target, web_dev_sign_in=True, auth_secret=None)
    async with http.get(url + SIGN_IN) as reply:
        assert await reply.json() == {"enabled": False}
    assert (await sign_in(http, url, {"patient_id": "MRN-1"}))[0] == 404


@pytest_asyncio.fixture(loop_scope="session")
async def dev_proxy(start_proxy: ProxyFactory, target: str, tmp_path: Path) -> str:
    return await start_proxy(target, web_dev_sign_in=True, web_portal_dir=tmp_path / "no-portal")


async def test_issues_a_patient_token_for_a_few_hours(http: aiohttp.ClientSession, dev_proxy: str) -> None:
    async with http.get(dev_proxy + SIGN_IN) as reply:
        assert await reply.json() == {"enabled": True}
    status, body = await sign_in(http, dev_proxy, {"patient_id": "  MRN-DEV-1 "})
    assert status == 200
    assert body["patient_id"] == "MRN-DEV-1", "surrounding spaces are trimmed"
    claims = jwt.decode(body["token"], TEST_SECRET, algorithms=["HS256"], audience="orflow", issuer="orflow")
    assert (claims["sub"], claims["role"]) == ("MRN-DEV-1", "patient")
    expire = datetime.fromisoformat(body["expire_time"])
    assert body["expire_time"].endswith("Z") and expire.tzinfo is not None
    assert abs(expire - (datetime.now(UTC) + timedelta(hours=4))) < timedelta(minutes=1)
    assert claims["exp"] == int(expire.timestamp())


async def test_the_token_books_as_that_patient_and_nothing_more(
    db: asyncpg.Connection, http: aiohttp.ClientSession, dev_proxy: str
) -> None:
    """The real server takes the token as patient MRN-DEV-2: it books as itself, only for itself, never as admin."""
    status, body = await sign_in(http, dev_proxy, {"patient_id": "MRN-DEV-2"})
    assert status == 200
    auth = {"Authorization": f"Bearer {body['token']}"}
    slot_id = await insert_slot(db)

    request = booking_service_pb2.CreateBookingRequest(slot_id=slot_id, request_id="dev-sign-in")
    created = await call(http, dev_proxy + BOOKING + "CreateBooking", request, headers=auth)
    assert created.status == 0
    booking = booking_service_pb2.CreateBookingResponse.FromString(created.messages[0]).booking
    assert booking.patient_id == "MRN-DEV-2"
    assert await db.fetchval("SELECT patient_id FROM bookings WHERE id = $1", booking.id) == "MRN-DEV-2"

    listed = await call(
        http,
        dev_proxy + BOOKING + "ListPatientBookings",
        booking_service_pb2.ListPatientBookingsRequest(),
        headers=auth,
    )
    mine = booking_service_pb2.ListPatientBookingsResponse.FromString(listed.messages[0]).bookings
    assert [b.id for b in mine] == [booking.id]

    other = booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id="MRN-SOMEONE-ELSE")
    refused = await call(http, dev_proxy + BOOKING + "CreateBooking", other, headers=auth)
    assert refused.status == grpc.StatusCode.PERMISSION_DENIED.value[0]

    for method, message in [
        ("ListBookings", admin_service_pb2.ListBookingsRequest()),
        ("SeedDatabase", admin_service_pb2.SeedDatabaseRequest()),
        ("ListAuditEvents", admin_service_pb2.ListAuditEventsRequest()),
    ]:
        reply = await call(http, dev_proxy + "/orflow.v1.AdminService/" + method, message, headers=auth)
        assert reply.status == grpc.StatusCode.PERMISSION_DENIED.value[0], method
        info, _ = reply.details()
        assert info is not None and info.reason == "ROLE_FORBIDDEN"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"patient_id": ""}, "required"),
        ({"patient_id": "   "}, "required"),
        ({"patient_id": "M" * 65}, "at most 64"),
        ({"patient_id": "MRN\n1"}, "control characters"),
        ({"patient_id": "MRN\x001"}, "control characters"),
        ({"patient_id": 1001}, "required"),
        ({}, "exactly one field"),
        ({"patient_id": "MRN-1", "role": "admin"}, "exactly one field"),
        (["MRN-1"], "exactly one field"),
    ],
)
async def test_bad_input_is_a_400_with_a_json_error(
    http: aiohttp.ClientSession, dev_proxy: str, body: Any, problem: str
) -> None:
    status, reply = await sign_in(http, dev_proxy, body)
    assert status == 400
    assert problem in reply["error"] and "token" not in reply


async def test_the_longest_id_is_accepted_and_non_json_is_refused(http: aiohttp.ClientSession, dev_proxy: str) -> None:
    status, body = await sign_in(http, dev_proxy, {"patient_id": "M" * 64})
    assert status == 200 and body["patient_id"] == "M" * 64
    headers = {"Content-Type": "application/json"}
    async with http.post(dev_proxy + SIGN_IN, data=b'{"patient_id": ', headers=headers) as reply:
        assert reply.status == 400 and (await reply.json())["error"] == "the body is not JSON"
    async with http.post(dev_proxy + SIGN_IN, data=b"patient_id=MRN-1", headers={"Content-Type": "text/plain"}) as r:
        assert r.status == 415 and "JSON" in (await r.json())["error"]
    async with http.post(dev_proxy + SIGN_IN, data=b" " * 5000, headers=headers) as reply:
        assert reply.status == 413
