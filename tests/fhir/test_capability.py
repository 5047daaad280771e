"""The CapabilityStatement at /metadata validates and says exactly what runs: every resource type the routes
serve, with the search parameters they accept (an unlisted one is refused)."""

from __future__ import annotations

import aiohttp
from orflow_web.fhir.search import SUPPORTED

from tests.fhir.conftest import validated


async def test_capability_statement_validates_and_lists_what_is_served(
    fhir_base: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{fhir_base}/metadata") as reply:
        assert reply.status == 200
        statement = validated(await reply.json(content_type=None))
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    [rest] = statement["rest"]
    listed = {r["type"]: r for r in rest["resource"]}
    assert set(listed) == set(SUPPORTED)
    assert listed["Appointment"]["conditionalCreate"] is True
    assert {i["code"] for i in listed["Appointment"]["interaction"]} == {
        "read",
        "search-type",
        "create",
        "update",
        "patch",
    }
    for kind, resource in listed.items():
        params = {p["name"] for p in resource.get("searchParam", [])}
        if "search-type" not in {i["code"] for i in resource["interaction"]}:
            continue
        async with http.get(f"{fhir_base}/{kind}", params={"not-a-parameter": "1"}) as reply:
            assert reply.status == 400, kind  # strict: only the listed parameters
        assert "not-a-parameter" not in params
