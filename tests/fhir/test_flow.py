"""The seed's own flow through FHIR, driven by a real FHIR client (fhirpy, async): search a free Slot, hold it
(POST Appointment → pending), book it (PATCH status), read it, cancel it (PUT); the same slot again is a 409
OperationOutcome. Every body on the way validates with fhir.resources' R4B models."""

from __future__ import annotations

from typing import Any

import aiohttp
import grpc
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome
from orflow.v1 import admin_service_pb2, admin_service_pb2_grpc

from tests.auth import token_for
from tests.fhir.conftest import reason_of, validated

PATIENT = "MRN-FHIR-1"


async def seed(channel: grpc.aio.Channel) -> None:
    await admin_service_pb2_grpc.AdminServiceStub(channel).SeedDatabase(admin_service_pb2.SeedDatabaseRequest())


def hold_of(slot_id: str, patient_id: str = PATIENT) -> dict[str, Any]:
    return {
        "status": "pending",
        "slot": [{"reference": f"Slot/{slot_id}"}],
        "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}],
    }


async def test_seed_flow_search_hold_book_read_cancel(channel: grpc.aio.Channel, fhir_base: str) -> None:
    await seed(channel)
    client = AsyncFHIRClient(fhir_base, authorization=f"Bearer {token_for('patient', PATIENT)}")

    free = await client.resources("Slot").search(status="free").limit(5).fetch()
    assert free, "the demo data has free slots"
    slot = free[0]
    validated(slot.serialize())
    assert slot["status"] == "free"

    appointment = client.resource("Appointment", **hold_of(slot.id))
    await appointment.create()
    assert appointment["status"] == "pending"
    validated(appointment.serialize())

    await appointment.patch(status="booked")
    read = await client.reference("Appointment", appointment.id).to_resource()
    assert read["status"] == "booked"
    assert read["slot"][0]["reference"] == f"Slot/{slot.id}"
    validated(read.serialize())
    assert (await client.reference("Slot", slot.id).to_resource())["status"] == "busy"

    # The same slot again, by another patient: refused by the one booking rule, as a FHIR OperationOutcome.
    other = AsyncFHIRClient(fhir_base, authorization=f"Bearer {token_for('patient', 'MRN-FHIR-2')}")
    try:
        await other.resource("Appointment", **hold_of(slot.id, "MRN-FHIR-2")).create()
    except OperationOutcome as refused:
        outcome = validated(refused.resource)
    else:
        raise AssertionError("a second hold of a taken slot was accepted")
    assert outcome["issue"][0]["code"] == "conflict"
    assert reason_of(outcome) == "SLOT_TAKEN"

    read["status"] = "cancelled"
    await read.update()  # PUT
    cancelled = await client.reference("Appointment", appointment.id).to_resource()
    assert cancelled["status"] == "cancelled"
    validated(cancelled.serialize())
    mine = await client.resources("Appointment").search(patient=f"Patient/{PATIENT}", status="cancelled").fetch()
    assert [a.id for a in mine] == [appointment.id]


async def test_seed_flow_over_plain_http_statuses(
    channel: grpc.aio.Channel, fhir_base: str, http: aiohttp.ClientSession
) -> None:
    """The same flow with the HTTP details a client relies on: 201 + Location + ETag, JSON Patch with If-Match,
    the 409's reason, and a stale If-Match refused with 412."""
    await seed(channel)
    auth = {"Authorization": f"Bearer {token_for('patient', 'MRN-FHIR-3')}"}
    async with http.get(f"{fhir_base}/Slot", params={"status": "free", "_count": "1"}) as reply:
        bundle = validated(await reply.json(content_type=None))
    slot_id = bundle["entry"][0]["resource"]["id"]
    body = {"resourceType": "Appointment", **hold_of(slot_id, "MRN-FHIR-3")}
    headers = {**auth, "If-None-Exist": "identifier=urn:orflow:request-id|flow-3"}
    async with http.post(f"{fhir_base}/Appointment", json=body, headers=headers) as reply:
        assert reply.status == 201, await reply.text()
        held = validated(await reply.json(content_type=None))
        etag = reply.headers["ETag"]
        assert reply.headers["Location"].startswith(f"{fhir_base}/Appointment/{held['id']}/_history/")
    async with http.post(f"{fhir_base}/Appointment", json=body, headers=headers) as reply:  # a retry: same booking
        assert reply.status == 200, await reply.text()  # conditional create found its match: nothing created
        assert (await reply.json(content_type=None))["id"] == held["id"]

    patch = [
        {"op": "test", "path": "/status", "value": "pending"},
        {"op": "replace", "path": "/status", "value": "booked"},
    ]
    patch_headers = {**auth, "Content-Type": "application/json-patch+json", "If-Match": etag}
    async with http.patch(f"{fhir_base}/Appointment/{held['id']}", json=patch, headers=patch_headers) as reply:
        assert reply.status == 200, await reply.text()
        assert validated(await reply.json(content_type=None))["status"] == "booked"
        assert reply.headers["ETag"] != etag
    async with http.patch(f"{fhir_base}/Appointment/{held['id']}", json=patch, headers=patch_headers) as reply:
        assert reply.status == 412
        assert reason_of(validated(await reply.json(content_type=None))) == "FHIR_VERSION_MISMATCH"

    other = {**body, "participant": [{"actor": {"reference": "Patient/MRN-FHIR-4"}, "status": "accepted"}]}
    service = {"Authorization": f"Bearer {token_for('service', 'ehr')}"}
    async with http.post(f"{fhir_base}/Appointment", json=other, headers=service) as reply:
        assert reply.status == 409
        outcome = validated(await reply.json(content_type=None))
    assert outcome["issue"][0]["code"] == "conflict"
    assert reason_of(outcome) == "SLOT_TAKEN"
