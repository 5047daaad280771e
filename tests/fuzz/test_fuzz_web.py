"""Random, truncated, lying and oversized gRPC-web bodies at the real proxy (in front of the fuzz server).

Every answer is an HTTP 4xx or a clean gRPC-web status (never INTERNAL or UNKNOWN, never a 5xx), a refused
call writes nothing (SQL fingerprint), and the proxy and the server still serve afterwards. Streaming methods
are left out here (a valid WatchSlots request never ends); test_fuzz_rpc.py fuzzes them over gRPC.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from hypothesis import given, settings
from hypothesis import strategies as st
from orflow.v1 import slot_service_pb2

from tests.auth import ADMIN_TOKEN
from tests.conftest import REPO_ROOT
from tests.web.conftest import ProxyFactory
from tests.web.grpcweb import TEXT, call

from .conftest import PROFILE, Bridge, FuzzStack, fingerprint
from .protos import all_rpcs, messages

MAX_BODY = 4096
UNARY = [rpc for rpc in all_rpcs() if not rpc.is_server_streaming]
CONTENT_TYPES = [
    "application/grpc-web",
    "application/grpc-web+proto",
    "application/grpc-web-text",
    "application/grpc-web-text+proto",
    "application/json",
    "text/plain",
    "application/grpc",
]
NEVER = {2, 13}  # UNKNOWN, INTERNAL
SEEN: Counter[tuple[str, str]] = Counter()  # (frame kind, answer) over the module


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """1-3 frames: flags 0, 0x80 (trailer), 0x01 (compressed) or any byte; lengths true, lying or huge."""
    rpc = draw(st.sampled_from(UNARY))
    body = b""
    for _ in range(draw(st.integers(1, 3))):
        payload = draw(st.one_of(messages(rpc.request).map(lambda m: m.SerializeToString()), st.binary(max_size=64)))
        flag = draw(st.one_of(st.sampled_from([0, 0x80, 0x01]), st.integers(0, 255)))
        length = draw(st.one_of(st.just(len(payload)), st.integers(0, 2**32 - 1), st.sampled_from([2**32 - 1, 0])))
        body += struct.pack(">BI", flag, length) + payload
    return body


@st.composite
def web_requests(draw: st.DrawFn) -> tuple[str, str, str, bytes, dict[str, str]]:
    """(kind, path, content type, body, headers)."""
    rpc = draw(st.sampled_from(UNARY))
    path = draw(st.one_of(st.just(rpc.path), st.text(max_size=30).map(lambda t: "/" + t.replace("?", ""))))
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    kind = draw(st.sampled_from(["frames", "truncated", "random", "oversized", "text_garbage"]))
    if kind == "frames":
        body = draw(frames())
    elif kind == "truncated":
        whole = draw(frames())
        body = whole[: draw(st.integers(0, len(whole) - 1))]
    elif kind == "random":
        body = draw(st.binary(max_size=300))
    elif kind == "oversized":
        body = struct.pack(">BI", 0, 2**31) + bytes(draw(st.integers(MAX_BODY, 4 * MAX_BODY)))
    else:
        body = draw(st.text(alphabet="ABCDEFGHabc0123+/=-_ \n*", max_size=80)).encode()
    if "text" in content_type and kind != "text_garbage" and draw(st.booleans()):
        body = base64.b64encode(body)
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"} if draw(st.booleans()) else {}
    if draw(st.booleans()):
        headers["grpc-timeout"] = draw(st.sampled_from(["1S", "10m", "99999999999H", "-1S", "x", "5u", ""]))
    return kind, path, content_type, body, headers


def _grpc_status(response_headers: Any, raw: bytes) -> int | None:
    """The grpc-status a gRPC-web answer carries (trailers-only header, else the trailer frame)."""
    if "grpc-status" in response_headers:
        return int(response_headers["grpc-status"])
    if response_headers.get("Content-Type", "").startswith(TEXT):
        raw = b"".join(base64.b64decode(raw[i : i + 4]) for i in range(0, len(raw), 4))
    offset = 0
    while offset + 5 <= len(raw):
        flag, length = struct.unpack_from(">BI", raw, offset)
        payload = raw[offset + 5 : offset + 5 + length]
        if flag & 0x80:
            for line in payload.decode("ascii").split("\r\n"):
                if line.lower().startswith("grpc-status:"):
                    return int(line.split(":", 1)[1])
        offset += 5 + length
    return None


async def test_random_grpc_web_bodies_get_clean_answers(
    fuzz_stack: FuzzStack, start_proxy: ProxyFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    base = await start_proxy(fuzz_stack.target, web_portal_dir=tmp_path / "none", web_max_body_bytes=MAX_BODY)
    bridge = Bridge(asyncio.get_running_loop())

    async def one(path: str, content_type: str, body: bytes, headers: dict[str, str]) -> tuple[int, int | None, Any]:
        async with fuzz_stack.pool.acquire() as conn:
            before = await fingerprint(conn)
            async with http.post(base + path, data=body, headers={"Content-Type": content_type, **headers}) as resp:
                raw = await resp.read()
                status = _grpc_status(resp.headers, raw) if resp.status == 200 else None
                answer = (resp.status, status, before == await fingerprint(conn))
        return answer

    @settings(parent=PROFILE, max_examples=PROFILE.max_examples * 5)
    @given(request=web_requests())
    def check(request: tuple[str, str, str, bytes, dict[str, str]]) -> None:
        kind, path, content_type, body, headers = request
        http_status, grpc_status, unchanged = bridge.run(one(path, content_type, body, headers))
        SEEN[(kind, f"grpc {grpc_status}" if http_status == 200 else f"http {http_status}")] += 1
        assert http_status == 200 or 400 <= http_status < 500, f"HTTP {http_status} for {kind} {body[:80]!r}"
        if http_status == 200:
            assert grpc_status is not None, f"no grpc-status for {kind} {body[:80]!r}"
            assert grpc_status not in NEVER, f"grpc-status {grpc_status} for {kind} {path} {body[:80]!r}"
        if grpc_status != 0:
            assert unchanged, f"refused {kind} {path} wrote"

    await asyncio.to_thread(check)
    (REPO_ROOT / "test-artifacts").mkdir(exist_ok=True)
    (REPO_ROOT / "test-artifacts" / "fuzz-web.json").write_text(json.dumps([[*k, n] for k, n in sorted(SEEN.items())]))

    # Both still serve.
    async with http.get(base + "/healthz") as resp:
        assert resp.status == 200, await resp.text()
    reply = await call(http, base + "/orflow.v1.SlotService/ListSlots", slot_service_pb2.ListSlotsRequest(page_size=1))
    assert reply.status == 0
