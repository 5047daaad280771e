"""A browser EHR app on another origin can use the FHIR door: PUT/PATCH and If-Match pass the preflight,
and ETag and Location are readable (the gRPC-web routes keep their own, narrower CORS)."""

from __future__ import annotations

from typing import Any

import aiohttp
import grpc
from orflow_web.app import start_proxy
from orflow_web.settings import ProxySettings

from tests.auth import TEST_SECRET

EHR = "https://ehr.example"


async def test_fhir_preflight_allows_updates_and_exposes_etag(target: str, tmp_path_factory: Any) -> None:
    settings = ProxySettings(
        auth_secret=TEST_SECRET,
        grpc_addr=target,
        web_addr="127.0.0.1:0",
        web_portal_dir=tmp_path_factory.mktemp("no-portal"),
        web_cors_origins=(EHR,),
    )
    async with grpc.aio.insecure_channel(target) as channel:
        runner = await start_proxy(settings, channel=channel)
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            async with aiohttp.ClientSession() as http:
                for method in ("PUT", "PATCH"):
                    preflight = {"Origin": EHR, "Access-Control-Request-Method": method}
                    async with http.options(f"{base}/fhir/r4/Appointment/1", headers=preflight) as r:
                        assert r.status == 204
                        assert r.headers["Access-Control-Allow-Origin"] == EHR
                        assert method in r.headers["Access-Control-Allow-Methods"]
                        assert "if-match" in r.headers["Access-Control-Allow-Headers"]
                async with http.get(f"{base}/fhir/r4/metadata", headers={"Origin": EHR}) as r:
                    assert r.status == 200
                    exposed = {h.strip() for h in r.headers["Access-Control-Expose-Headers"].split(",")}
                    assert {"ETag", "Location"} <= exposed
                # The gRPC-web routes are unchanged.
                preflight = {"Origin": EHR, "Access-Control-Request-Method": "POST"}
                async with http.options(f"{base}/orflow.v1.SlotService/GetSlot", headers=preflight) as r:
                    assert r.headers["Access-Control-Allow-Methods"] == "POST, GET, OPTIONS"
        finally:
            await runner.cleanup()
