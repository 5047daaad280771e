"""FHIR fixtures: the real proxy app (with its /fhir/r4 sub-app) on port 0 in front of the real test server,
and the validation every FHIR body goes through (fhir.resources' R4B models)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest_asyncio
from fhir.resources.R4B import get_fhir_model_class
from orflow_web.app import start_proxy
from orflow_web.settings import ProxySettings

from tests.auth import TEST_SECRET


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def fhir_base(target: str, tmp_path_factory: Any) -> AsyncIterator[str]:
    """http://127.0.0.1:<port>/fhir/r4 of a proxy in front of the shared test server."""
    settings = ProxySettings(
        auth_secret=TEST_SECRET,
        grpc_addr=target,
        web_addr="127.0.0.1:0",
        web_portal_dir=tmp_path_factory.mktemp("no-portal"),
        # Every test client connects from 127.0.0.1; the race test opens 100 connections at once.
        web_max_connections_per_client=1000,
    )
    async with grpc.aio.insecure_channel(target) as channel:
        runner = await start_proxy(settings, channel=channel)
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/fhir/r4"
        await runner.cleanup()


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


def validated(resource: dict[str, Any]) -> dict[str, Any]:
    """Validates with the R4B model of its resourceType (and every Bundle entry with its own); returns it."""
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    for entry in resource.get("entry", []) if resource["resourceType"] == "Bundle" else []:
        get_fhir_model_class(entry["resource"]["resourceType"]).model_validate(entry["resource"])
    return resource


def reason_of(outcome: dict[str, Any]) -> str:
    """Our ErrorInfo reason, carried in issue[0].details.coding."""
    assert outcome["resourceType"] == "OperationOutcome", outcome
    return str(outcome["issue"][0]["details"]["coding"][0]["code"])
