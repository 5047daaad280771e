"""Issue 17's probes of the gRPC-web proxy, replayed against the real proxy (aiohttp on port 0) in front of the
real test server: F1 cross-site token minting, F3 slow and greedy clients, F4 browser protections and source
maps, F7 odd paths, F8 huge grpc-timeout, F13 invisible characters in dev sign-in ids; and the probes that
held (path traversal) so they stay held. Malformed frames stay covered by tests/web/test_proxy.py."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import grpc
import pytest
from orflow.v1 import slot_service_pb2
from orflow_web.frames import parse_timeout
from orflow_web.guard import SECURITY_HEADERS

from ..web.conftest import ProxyFactory
from ..web.grpcweb import call

GET_SLOT = "/orflow.v1.SlotService/GetSlot"
SIGN_IN = "/dev/sign-in"
EVIL = "https://evil.example"
VITE_CONFIG = Path(__file__).resolve().parents[2] / "web-proxy" / "portal" / "vite.config.mts"


@pytest.fixture
def portal_dir(tmp_path: Path) -> Path:
    """A built portal as a development build leaves it: a source map beside the script."""
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>OR Flow</title><script src=/assets/app.js></script>")
    (tmp_path / "assets" / "app.js").write_text("console.log('portal')\n//# sourceMappingURL=app.js.map")
    (tmp_path / "assets" / "app.js.map").write_text('{"version": 3, "sources": ["secret.tsx"]}')
    return tmp_path


async def test_f1_another_site_gets_no_cors_by_default(http: aiohttp.ClientSession, proxy: str) -> None:
    """Before: a preflight from any origin got Access-Control-Allow-Origin: *."""
    preflight = {"Origin": EVIL, "Access-Control-Request-Method": "POST"}
    async with http.options(proxy + SIGN_IN, headers=preflight) as r:
        assert "Access-Control-Allow-Origin" not in r.headers
    reply = await call(http, proxy + GET_SLOT, slot_service_pb2.GetSlotRequest(slot_id=1), headers={"Origin": EVIL})
    assert "access-control-allow-origin" not in reply.headers


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site", "Origin": EVIL},
        {"Sec-Fetch-Site": "same-site", "Origin": "https://other.or.example"},
        {"Origin": EVIL},  # an older browser: no Sec-Fetch-Site
    ],
)
async def test_f1_dev_sign_in_answers_no_cross_site_caller(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory, target: str, headers: dict[str, str]
) -> None:
    """Before: a cross-site POST /dev/sign-in returned a patient token for any patient."""
    dev = await start_proxy(target, web_dev_sign_in=True, web_cors_origins=("*",))  # even with CORS wide open
    async with http.post(dev + SIGN_IN, json={"patient_id": "P-1"}, headers=headers) as r:
        assert r.status == 403
        assert "token" not in await r.json()


async def test_f1_dev_sign_in_takes_only_json_so_a_cross_site_form_cannot_post_it(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory, target: str
) -> None:
    dev = await start_proxy(target, web_dev_sign_in=True)
    form = {"Content-Type": "text/plain"}  # what a cross-site <form enctype=text/plain> can send
    async with http.post(dev + SIGN_IN, data='{"patient_id": "P-1"}', headers=form) as r:
        assert r.status == 415
    same = {"Sec-Fetch-Site": "same-origin", "Origin": dev}
    async with http.post(dev + SIGN_IN, json={"patient_id": "P-1"}, headers=same) as r:
        assert r.status == 200 and (await r.json())["patient_id"] == "P-1", "the portal itself still signs in"


async def test_f1_dev_sign_in_is_rate_limited_per_client(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory, target: str
) -> None:
    """Before: 50 tokens in 0.06 s. Now ORFLOW_WEB_DEV_SIGN_IN_PER_MINUTE per client address."""
    dev = await start_proxy(target, web_dev_sign_in=True, web_dev_sign_in_per_minute=3)
    statuses = []
    for i in range(5):
        async with http.post(dev + SIGN_IN, json={"patient_id": f"P-{i}"}) as r:
            statuses.append(r.status)
            if r.status == 429:
                assert int(r.headers["Retry-After"]) >= 1
    assert statuses == [200, 200, 200, 429, 429]


@pytest.mark.parametrize("patient_id", ["P\u202e1", "P\u200b1", "P\ufeff1"])
async def test_f13_dev_sign_in_refuses_invisible_characters(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory, target: str, patient_id: str
) -> None:
    dev = await start_proxy(target, web_dev_sign_in=True)
    async with http.post(dev + SIGN_IN, json={"patient_id": patient_id}) as r:
        assert r.status == 400
        assert "control characters" in (await r.json())["error"]


async def _is_closed(reader: asyncio.StreamReader, within: float) -> bytes:
    """What the proxy sent before closing the connection (raises TimeoutError if it stays open)."""
    received = b""
    async with asyncio.timeout(within):
        while chunk := await reader.read(4096):
            received += chunk
    return received


def _address(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


async def test_f3_a_trickling_body_is_cut_off(start_proxy: ProxyFactory, target: str) -> None:
    """Before: a chunked body trickling 1 byte every 2 s held a connection for as long as it went on."""
    proxy = await start_proxy(target, web_body_timeout_seconds=1)
    reader, writer = await asyncio.open_connection(*_address(proxy))
    writer.write(
        f"POST {GET_SLOT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc-web+proto\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
    )
    started = time.monotonic()

    async def trickle() -> None:
        while True:
            writer.write(b"1\r\n\x00\r\n")
            await asyncio.sleep(0.2)

    trickling = asyncio.create_task(trickle())
    try:
        await _is_closed(reader, within=15)
    finally:
        trickling.cancel()
        writer.close()
    assert time.monotonic() - started < 15


async def test_f3_slow_headers_are_cut_off(start_proxy: ProxyFactory, target: str) -> None:
    proxy = await start_proxy(target, web_header_timeout_seconds=1)
    reader, writer = await asyncio.open_connection(*_address(proxy))
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    try:
        await _is_closed(reader, within=15)
    finally:
        writer.close()


async def test_f3_connections_over_the_cap_are_turned_away(start_proxy: ProxyFactory, target: str) -> None:
    proxy = await start_proxy(target, web_max_connections_per_client=2)
    held = [await asyncio.open_connection(*_address(proxy)) for _ in range(2)]
    reader, writer = await asyncio.open_connection(*_address(proxy))
    assert (await _is_closed(reader, within=10)).startswith(b"HTTP/1.1 503 ")
    writer.close()
    held.pop()[1].close()  # one leaves: a newcomer is admitted again
    async with asyncio.timeout(10):
        while True:
            reader, writer = await asyncio.open_connection(*_address(proxy))
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = await _is_closed(reader, within=10)
            writer.close()
            if not answer.startswith(b"HTTP/1.1 503 "):
                break
            await asyncio.sleep(0.05)
    assert answer.startswith(b"HTTP/1.1 200 ")
    for _, other in held:
        other.close()


async def test_f4_every_response_carries_the_browser_protections(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory, target: str, portal_dir: Path
) -> None:
    """Before: no CSP, nosniff, frame protection or referrer policy anywhere."""
    proxy = await start_proxy(target, web_portal_dir=portal_dir, web_dev_sign_in=True)
    responses = []
    for method, path in [("GET", "/"), ("GET", "/assets/app.js"), ("GET", "/missing.png"), ("GET", "/healthz"),
                         ("GET", SIGN_IN), ("OPTIONS", GET_SLOT)]:  # fmt: skip
        async with http.request(method, proxy + path) as r:
            responses.append((path, r.status, r.headers))
    reply = await call(http, proxy + GET_SLOT, slot_service_pb2.GetSlotRequest(slot_id=1))
    responses.append((GET_SLOT, reply.http_status, reply.headers))
    for path, _status, headers in responses:
        lowered = {k.lower(): v for k, v in headers.items()}
        for name, value in SECURITY_HEADERS.items():
            assert lowered.get(name.lower()) == value, (path, name)
    assert "frame-ancestors 'none'" in SECURITY_HEADERS["Content-Security-Policy"]


async def test_f4_source_maps_are_never_served(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory, target: str, portal_dir: Path
) -> None:
    """Before: a 2 MB source map was served. The production build makes none (vite.config.mts) and the proxy
    refuses any a development build left behind."""
    proxy = await start_proxy(target, web_portal_dir=portal_dir)
    async with http.get(proxy + "/assets/app.js.map") as r:
        assert r.status == 404
    assert "sourcemap: false" in VITE_CONFIG.read_text()


@pytest.mark.parametrize(
    "path",
    ["/index.html%00", "/%00", "/assets/app.js%00.png", "/%E2%80%AE.html", "/" + "a" * 300 + ".js", "/x%0d%0a.js"],
)
async def test_f7_nul_and_odd_paths_are_404_not_500(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory, target: str, portal_dir: Path, path: str
) -> None:
    """Before: GET /index.html%00 answered 500 (ValueError: embedded null byte)."""
    proxy = await start_proxy(target, web_portal_dir=portal_dir)
    async with http.get(proxy + path) as r:
        assert r.status == 404


@pytest.mark.parametrize("path", ["/../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/assets/..%2f..%2fetc/passwd"])
async def test_held_path_traversal_never_leaves_the_portal(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory, target: str, portal_dir: Path, path: str
) -> None:
    proxy = await start_proxy(target, web_portal_dir=portal_dir)
    async with http.get(proxy + path) as r:
        assert "root:" not in await r.text()


async def test_f8_a_huge_legal_grpc_timeout_is_capped_not_expired(http: aiohttp.ClientSession, proxy: str) -> None:
    """Before: grpc-timeout 2562047H (legal) became an immediate DEADLINE_EXCEEDED."""
    for timeout in ("2562047H", "99999999H"):
        reply = await call(
            http, proxy + GET_SLOT, slot_service_pb2.GetSlotRequest(slot_id=987654), headers={"grpc-timeout": timeout}
        )
        assert reply.status == grpc.StatusCode.NOT_FOUND.value[0], timeout
    assert parse_timeout("2562047H", cap=3600) == 3600
    assert parse_timeout("250m", cap=3600) == 0.25
