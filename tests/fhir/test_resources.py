"""Every resource type the FHIR edge serves, read and searched, validates with fhir.resources' R4B models; the
mappings follow the gRPC messages; search parameters map to the gRPC filters, and paging to next links."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp
import asyncpg

from tests.auth import ADMIN_TOKEN, token_for
from tests.factories import future, insert_doctor, insert_equipment, insert_room, insert_slot
from tests.fhir.conftest import validated

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def get(http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None, **params: str) -> Any:
    async with http.get(url, params=params, headers=headers or ADMIN) as reply:
        assert reply.status == 200, await reply.text()
        assert reply.content_type == "application/fhir+json"
        return validated(await reply.json(content_type=None))


async def test_every_resource_type_reads_and_searches_valid(
    db: asyncpg.Connection, fhir_base: str, http: aiohttp.ClientSession
) -> None:
    room = await insert_room(db, name="Apollo 1")
    doctor = await insert_doctor(db, name="Dr. Meera Iyer", specialty="Cardiothoracic Surgery")
    ventilator = await insert_equipment(db, name="Ventilator", quantity=2)
    slot = await insert_slot(
        db, room_id=room, doctor_id=doctor, procedure_type="Cardiac Bypass", equipment=[(ventilator, 1)]
    )
    async with http.post(
        f"{fhir_base}/Appointment",
        json={
            "resourceType": "Appointment",
            "status": "pending",
            "slot": [{"reference": f"Slot/{slot}"}],
            "participant": [{"actor": {"reference": "Patient/MRN-7"}, "status": "accepted"}],
        },
        headers=ADMIN,
    ) as reply:
        assert reply.status == 201, await reply.text()
        appointment_id = (await reply.json(content_type=None))["id"]

    read = {
        "Slot": str(slot),
        "Appointment": appointment_id,
        "Schedule": f"room-{room}-surgeon-{doctor}",
        "Practitioner": str(doctor),
        "PractitionerRole": str(doctor),
        "Location": str(room),
        "Device": str(ventilator),
        "Organization": "hospital",
    }
    resources = {kind: await get(http, f"{fhir_base}/{kind}/{ident}") for kind, ident in read.items()}
    assert {r["resourceType"] for r in resources.values()} == set(read)

    appointment = resources["Appointment"]
    assert appointment["status"] == "pending"
    actors = {p["actor"].get("reference") for p in appointment["participant"]}
    assert actors == {"Patient/MRN-7", f"Practitioner/{doctor}", f"Location/{room}", f"Device/{ventilator}"}
    assert resources["Slot"]["status"] == "busy"
    assert resources["Slot"]["serviceType"][0]["coding"][0]["code"] == "Cardiac Bypass"
    assert resources["Location"]["managingOrganization"]["reference"] == "Organization/hospital"
    assert resources["PractitionerRole"]["specialty"][0]["text"] == "Cardiothoracic Surgery"
    assert resources["Device"]["property"][0]["valueQuantity"][0]["value"] == 2

    searches: dict[str, dict[str, str]] = {
        "Slot": {"schedule.actor": f"Location/{room}", "service-type": "cardiac bypass"},
        "Appointment": {"patient": "Patient/MRN-7", "status": "pending"},
        "Practitioner": {"name": "iyer"},
        "PractitionerRole": {"specialty": "cardio"},
        "Location": {"name": "apollo"},
        "Device": {"device-name": "vent"},
    }
    for kind, params in searches.items():
        bundle = await get(http, f"{fhir_base}/{kind}", **params)
        assert bundle["type"] == "searchset"
        assert [e["resource"]["id"] for e in bundle["entry"]] == [read[kind]], kind
        assert bundle["entry"][0]["fullUrl"] == f"{fhir_base}/{kind}/{read[kind]}"
    assert (await get(http, f"{fhir_base}/Slot", status="free"))["entry"] == []  # held: not free


async def test_slot_search_filters_and_pages_through_next_links(
    db: asyncpg.Connection, fhir_base: str, http: aiohttp.ClientSession
) -> None:
    room, doctor = await insert_room(db), await insert_doctor(db)
    start = future(48)
    ids = [
        await insert_slot(db, room_id=room, doctor_id=doctor, start=start + timedelta(hours=3 * i)) for i in range(5)
    ]
    await insert_slot(db, start=start)  # another room and surgeon

    window = {
        "start": [f"ge{(start + timedelta(hours=3)).isoformat()}", f"lt{(start + timedelta(hours=12)).isoformat()}"]
    }
    async with http.get(
        f"{fhir_base}/Slot",
        params=[("start", v) for v in window["start"]]
        + [("schedule.actor", f"Practitioner/{doctor}"), ("status", "free"), ("_count", "2")],
    ) as reply:
        page = validated(await reply.json(content_type=None))
    seen = [e["resource"]["id"] for e in page["entry"]]
    while next_links := [link["url"] for link in page["link"] if link["relation"] == "next"]:
        page = await get(http, next_links[0])
        seen.extend(e["resource"]["id"] for e in page["entry"])
    assert seen == [str(i) for i in ids[1:4]]

    schedule = await get(http, f"{fhir_base}/Slot", schedule=f"Schedule/room-{room}-surgeon-{doctor}")
    assert len(schedule["entry"]) == 5


async def test_a_patient_never_sees_another_patients_appointment(
    db: asyncpg.Connection, fhir_base: str, http: aiohttp.ClientSession
) -> None:
    slot = await insert_slot(db)
    mine = {"Authorization": f"Bearer {token_for('patient', 'MRN-A')}"}
    theirs = {"Authorization": f"Bearer {token_for('patient', 'MRN-B')}"}
    hold = {"resourceType": "Appointment", "status": "pending", "slot": [{"reference": f"Slot/{slot}"}]}
    async with http.post(f"{fhir_base}/Appointment", json=hold, headers=mine) as reply:
        assert reply.status == 201  # no patient participant: the token says who
        appointment = await reply.json(content_type=None)
    assert appointment["participant"][0]["actor"]["reference"] == "Patient/MRN-A"
    async with http.get(f"{fhir_base}/Appointment/{appointment['id']}", headers=theirs) as reply:
        assert reply.status == 404  # as gRPC: another patient's booking reads NOT_FOUND
    async with http.get(f"{fhir_base}/Appointment", params={"patient": "Patient/MRN-A"}, headers=theirs) as reply:
        assert reply.status == 403
    assert (await get(http, f"{fhir_base}/Appointment", theirs))["entry"] == []
    assert len((await get(http, f"{fhir_base}/Appointment", mine))["entry"]) == 1
