"""Every refusal is an OperationOutcome that validates, with the HTTP status of the one table
(orflow_web/fhir/errors.py) and the gRPC server's own reason in issue[0].details."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp
import asyncpg
import grpc
import pytest
from orflow_web.fhir.errors import TABLE, Refusal, answer

from tests.auth import token_for
from tests.factories import future, insert_equipment, insert_room, insert_slot
from tests.fhir.conftest import reason_of, validated

SERVICE = {"Authorization": f"Bearer {token_for('service', 'ehr')}"}


@pytest.mark.parametrize(("key", "translation"), list(TABLE.items()), ids=lambda v: str(v))
def test_every_row_of_the_table_answers_a_valid_outcome(
    key: tuple[grpc.StatusCode, str | None], translation: Any
) -> None:
    code, reason = key
    reply = answer(Refusal(code, reason or "", "refused", fields=[("slot_id", "must be positive")]))
    assert reply.status == translation.http_status
    outcome = validated(reply.body)
    assert outcome["issue"][0]["code"] == translation.issue_code
    assert outcome["issue"][1]["expression"] == ["slot_id"]


def test_unknown_codes_are_a_500_and_401_asks_for_a_bearer_token() -> None:
    assert answer(Refusal(grpc.StatusCode.INTERNAL, "", "internal error")).status == 500
    assert answer(Refusal(grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING", "no")).headers["WWW-Authenticate"]


def hold(slot_id: int | str, patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "pending",
        "slot": [{"reference": f"Slot/{slot_id}"}],
        "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}],
    }


async def call(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    async with http.request(method, url, **kwargs) as reply:
        return reply.status, validated(await reply.json(content_type=None))


async def test_every_refusal_over_http(db: asyncpg.Connection, fhir_base: str, http: aiohttp.ClientSession) -> None:
    room = await insert_room(db)
    ventilator = await insert_equipment(db, quantity=1)
    start = future(30)
    first = await insert_slot(db, room_id=room, start=start, equipment=[(ventilator, 1)])
    same_room = await insert_slot(db, room_id=room, start=start + timedelta(hours=1))
    needs_ventilator = await insert_slot(db, start=start + timedelta(minutes=30), equipment=[(ventilator, 1)])
    patient_clash = await insert_slot(db, start=start + timedelta(minutes=10))
    started = await insert_slot(db, start=future(-3))
    status, held = await call(http, "POST", f"{fhir_base}/Appointment", json=hold(first, "P-1"), headers=SERVICE)
    assert status == 201
    other = await insert_slot(db, start=future(90))
    status, cancelled = await call(http, "POST", f"{fhir_base}/Appointment", json=hold(other, "P-8"), headers=SERVICE)
    assert status == 201
    await call(
        http, "PATCH", f"{fhir_base}/Appointment/{cancelled['id']}", json={"status": "cancelled"}, headers=SERVICE
    )

    patient = {"Authorization": f"Bearer {token_for('patient', 'P-2')}"}
    expired = {"Authorization": f"Bearer {token_for('patient', 'P-2', ttl=timedelta(seconds=-60))}"}
    post = f"{fhir_base}/Appointment"
    cases: list[tuple[str, str, dict[str, Any], int, str, str]] = [
        ("GET", f"{fhir_base}/Slot?bogus=1", {}, 400, "invalid", "INVALID_ARGUMENT"),
        ("GET", f"{fhir_base}/Slot?_count=0", {}, 400, "invalid", "INVALID_ARGUMENT"),
        ("GET", f"{fhir_base}/Slot?start=tomorrow", {}, 400, "invalid", "INVALID_ARGUMENT"),
        ("GET", f"{fhir_base}/Appointment", {"headers": SERVICE}, 400, "invalid", "INVALID_ARGUMENT"),  # the server's
        ("POST", post, {"json": hold("abc", "P-1"), "headers": SERVICE}, 400, "invalid", "INVALID_ARGUMENT"),
        ("POST", post, {"data": b"{", "headers": SERVICE}, 400, "invalid", "INVALID_ARGUMENT"),
        ("POST", post, {"json": hold(first, "P-1")}, 401, "login", "TOKEN_MISSING"),
        ("POST", post, {"json": hold(first, "P-2"), "headers": expired}, 401, "login", "TOKEN_EXPIRED"),
        ("GET", f"{fhir_base}/Location", {"headers": patient}, 403, "forbidden", "ROLE_FORBIDDEN"),
        ("POST", post, {"json": hold(first, "P-3"), "headers": patient}, 403, "forbidden", "NOT_YOUR_PATIENT_ID"),
        ("GET", f"{fhir_base}/Slot/999999", {}, 404, "not-found", "SLOT_NOT_FOUND"),
        ("GET", f"{fhir_base}/Appointment/999999", {"headers": SERVICE}, 404, "not-found", "BOOKING_NOT_FOUND"),
        ("GET", f"{fhir_base}/Schedule/nonsense", {}, 404, "not-found", "FHIR_RESOURCE_NOT_FOUND"),
        ("GET", f"{fhir_base}/Patient/P-1", {}, 404, "not-found", "FHIR_RESOURCE_NOT_FOUND"),
        ("POST", post, {"json": hold(999999, "P-1"), "headers": SERVICE}, 404, "not-found", "SLOT_NOT_FOUND"),
        ("DELETE", f"{post}/{held['id']}", {"headers": SERVICE}, 405, "not-supported", "FHIR_NOT_SUPPORTED"),
        ("POST", post, {"json": hold(first, "P-4"), "headers": SERVICE}, 409, "conflict", "SLOT_TAKEN"),
        ("POST", post, {"json": hold(same_room, "P-4"), "headers": SERVICE}, 409, "conflict", "ROOM_BUSY"),
        (
            "POST",
            post,
            {"json": hold(needs_ventilator, "P-4"), "headers": SERVICE},
            409,
            "conflict",
            "EQUIPMENT_UNAVAILABLE",
        ),
        ("POST", post, {"json": hold(patient_clash, "P-1"), "headers": SERVICE}, 409, "conflict", "PATIENT_BUSY"),
        (
            "PATCH",
            f"{post}/{cancelled['id']}",
            {"json": {"status": "booked"}, "headers": SERVICE},
            409,
            "conflict",
            "BOOKING_NOT_PENDING",
        ),
        (
            "PATCH",
            f"{post}/{held['id']}",
            {"json": {"status": "booked"}, "headers": {**SERVICE, "If-Match": 'W/"1-x"'}},
            412,
            "conflict",
            "FHIR_VERSION_MISMATCH",
        ),
        ("POST", post, {"json": hold(started, "P-5"), "headers": SERVICE}, 422, "business-rule", "SLOT_STARTED"),
    ]
    for method, url, kwargs, want_status, want_code, want_reason in cases:
        status, outcome = await call(http, method, url, **kwargs)
        assert (status, outcome["issue"][0]["code"], reason_of(outcome)) == (want_status, want_code, want_reason), (
            method,
            url,
            outcome,
        )
    # A refused call wrote nothing: the one hold and the one cancelled booking are all there is.
    assert await db.fetchval("SELECT count(*) FROM bookings") == 2
