"""The gRPC-web proxy at the byte level, in front of the real server on real PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import grpc
import pytest
from orflow.v1 import (
    admin_service_pb2,
    booking_pb2,
    booking_service_pb2,
    booking_service_pb2_grpc,
    slot_service_pb2,
)

from tests.auth import ADMIN_TOKEN, token_for
from tests.factories import future, insert_slot
from tests.web.conftest import ProxyFactory, free_port
from tests.web.grpcweb import BINARY, TEXT, call, decode_body, decode_text_body, frame, parse_trailer, split_frames

GET_SLOT = "/orflow.v1.SlotService/GetSlot"
WATCH = "/orflow.v1.SlotService/WatchSlots"
CREATE_SLOT = "/orflow.v1.AdminService/CreateSlot"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}  # what the portal's interceptor sends


@pytest.mark.parametrize("content_type", ["application/grpc-web", BINARY])
async def test_binary_unary_call_gives_a_message_frame_then_an_ok_trailer(
    db: asyncpg.Connection, http: aiohttp.ClientSession, proxy: str, content_type: str
) -> None:
    slot_id = await insert_slot(db, procedure_type="Craniotomy")
    reply = await call(
        http, proxy + GET_SLOT, slot_service_pb2.GetSlotRequest(slot_id=slot_id), content_type=content_type
    )
    assert reply.http_status == 200
    assert reply.headers["content-type"] == BINARY
    assert len(reply.messages) == 1
    slot = slot_service_pb2.GetSlotResponse.FromString(reply.messages[0]).slot
    assert (slot.id, slot.procedure_type, slot.available) == (slot_id, "Craniotomy", True)
    assert reply.trailer == {"grpc-status": "0"}


@pytest.mark.parametrize("content_type", ["application/grpc-web-text", TEXT])
async def test_text_mode_is_base64_both_ways(
    db: asyncpg.Connection, http: aiohttp.ClientSession, proxy: str, content_type: str
) -> None:
    slot_id = await insert_slot(db, procedure_type="Laminectomy")
    request = frame(slot_service_pb2.GetSlotRequest(slot_id=slot_id).SerializeToString())
    async with http.post(proxy + GET_SLOT, data=base64.b64encode(request), headers={"Content-Type": content_type}) as r:
        raw = await r.read()
        assert r.headers["Content-Type"] == TEXT
    assert set(raw) <= set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="), (
        "text mode answers base64"
    )
    (flag, message), (trailer_flag, trailer) = split_frames(decode_text_body(raw))
    assert flag == 0 and trailer_flag == 0x80
    assert slot_service_pb2.GetSlotResponse.FromString(message).slot.procedure_type == "Laminectomy"
    assert parse_trailer(trailer) == {"grpc-status": "0"}


async def test_text_mode_accepts_separately_padded_base64_chunks(
    db: asyncpg.Connection, http: aiohttp.ClientSession, proxy: str
) -> None:
    slot_id = await insert_slot(db, procedure_type="Tonsillectomy")
    request = frame(slot_service_pb2.GetSlotRequest(slot_id=slot_id).SerializeToString())
    body = base64.b64encode(request[:4]) + b"\r\n" + base64.b64encode(request[4:])
    assert b"=" in body[: len(body) // 2], "the first chunk carries padding"
    reply = await call(http, proxy + GET_SLOT, b"", content_type=TEXT, body=body)
    assert reply.status == 0
    assert slot_service_pb2.GetSlotResponse.FromString(reply.messages[0]).slot.procedure_type == "Tonsillectomy"


async def test_error_is_trailers_only_with_error_info_in_details_bin(
    db: asyncpg.Connection, http: aiohttp.ClientSession, proxy: str
) -> None:
    reply = await call(http, proxy + GET_SLOT, slot_service_pb2.GetSlotRequest(slot_id=424242))
    assert reply.http_status == 200
    assert reply.messages == []
    assert reply.status == grpc.StatusCode.NOT_FOUND.value[0]
    assert reply.headers["grpc-status"] == str(grpc.StatusCode.NOT_FOUND.value[0]), "trailers-only: status in headers"
    assert "424242" in reply.trailer["grpc-message"]
    info, _ = reply.details()
    assert info is not None and (info.domain, info.reason) == ("orflow", "SLOT_NOT_FOUND")


async def test_field_violations_reach_the_browser(
    db: asyncpg.Connection, http: aiohttp.ClientSession, proxy: str
) -> None:
    request = admin_service_pb2.CreateSlotRequest(doctor_id=1, room_id=1, procedure_type="")
    reply = await call(http, proxy + CREATE_SLOT, request, headers=ADMIN)
    assert reply.status == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    info, violations = reply.details()
    assert info is not None and info.reason == "INVALID_ARGUMENT"
    assert {"procedure_type", "start_time", "end_time"} <= {name for name, _ in violations}


async def test_conflict_reason_and_percent_encoded_message(
    db: asyncpg.Connection, http: aiohttp.ClientSession, proxy: str
) -> None:
    slot_id = await insert_slot(db)
    first = booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id="P-1", request_id="web-a")
    assert (await call(http, proxy + "/orflow.v1.BookingService/CreateBooking", first, headers=ADMIN)).status == 0
    second = booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id="P-2", request_id="web-b")
    reply = await call(http, proxy + "/orflow.v1.BookingService/CreateBooking", second, headers=ADMIN)
    assert reply.status == grpc.StatusCode.ABORTED.value[0]
    info, _ = reply.details()
    assert info is not None and info.reason == "SLOT_TAKEN"
    assert all(0x20 <= ord(c) <= 0x7E for c in reply.trailer["grpc-message"])


async def _read_frames(content: aiohttp.StreamReader) -> AsyncIterator[tuple[int, bytes]]:
    """Frames as they arrive on a streaming response."""
    while True:
        try:
            header = await content.readexactly(5)
        except asyncio.IncompleteReadError as exc:
            assert exc.partial == b"", "the stream ended mid-frame"
            return
        payload = await content.readexactly(int.from_bytes(header[1:], "big"))
        yield header[0], payload


async def test_server_streaming_delivers_snapshot_then_live_change_then_deadline(
    db: asyncpg.Connection,
    http: aiohttp.ClientSession,
    proxy: str,
    bookings: booking_service_pb2_grpc.BookingServiceStub,
) -> None:
    """WatchSlots through the proxy: frames flow one by one, and grpc-timeout ends the stream."""
    slot_id = await insert_slot(db, start=future(48))
    request = frame(slot_service_pb2.WatchSlotsRequest().SerializeToString())
    started = time.monotonic()
    # As staff: anonymous watchers see a hold as AVAILABILITY_CHANGED (tests/security/test_rpc_probes.py).
    headers = {"Content-Type": BINARY, "grpc-timeout": "3S", "authorization": f"Bearer {ADMIN_TOKEN}"}
    async with http.post(proxy + WATCH, data=request, headers=headers) as r:
        assert r.status == 200
        frames = _read_frames(r.content)
        kinds = []
        async for flag, payload in frames:
            assert flag == 0
            change = slot_service_pb2.WatchSlotsResponse.FromString(payload)
            kinds.append(change.kind)
            if change.kind == slot_service_pb2.SLOT_CHANGE_KIND_SNAPSHOT_COMPLETE:
                break
        assert kinds[-2:] == [
            slot_service_pb2.SLOT_CHANGE_KIND_SNAPSHOT,
            slot_service_pb2.SLOT_CHANGE_KIND_SNAPSHOT_COMPLETE,
        ]
        await bookings.CreateBooking(
            booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id="P-live", request_id="live-1")
        )
        flag, payload = await anext(frames)
        change = slot_service_pb2.WatchSlotsResponse.FromString(payload)
        if change.kind == slot_service_pb2.SLOT_CHANGE_KIND_CREATED:  # the insert's own notice may trail the snapshot
            flag, payload = await anext(frames)
            change = slot_service_pb2.WatchSlotsResponse.FromString(payload)
        assert (flag, change.kind, change.slot.id, change.slot.available) == (
            0,
            slot_service_pb2.SLOT_CHANGE_KIND_BOOKED,
            slot_id,
            False,
        )
        flag, payload = await anext(frames)  # nothing more changes: the 3 s deadline ends the stream
        assert flag == 0x80
        assert parse_trailer(payload)["grpc-status"] == str(grpc.StatusCode.DEADLINE_EXCEEDED.value[0])
        assert 2.5 < time.monotonic() - started < 10
        assert [f async for f in frames] == []


async def test_streaming_in_text_mode(db: asyncpg.Connection, http: aiohttp.ClientSession, proxy: str) -> None:
    await insert_slot(db, start=future(30))
    await insert_slot(db, start=future(31))
    request = base64.b64encode(frame(slot_service_pb2.WatchSlotsRequest().SerializeToString()))
    async with http.post(proxy + WATCH, data=request, headers={"Content-Type": TEXT, "grpc-timeout": "1S"}) as r:
        raw = await r.read()
    frames = split_frames(decode_text_body(raw))
    kinds = [slot_service_pb2.WatchSlotsResponse.FromString(p).kind for f, p in frames if f == 0]
    assert kinds == [slot_service_pb2.SLOT_CHANGE_KIND_SNAPSHOT] * 2 + [
        slot_service_pb2.SLOT_CHANGE_KIND_SNAPSHOT_COMPLETE
    ]
    assert frames[-1][0] == 0x80
    assert parse_trailer(frames[-1][1])["grpc-status"] == str(grpc.StatusCode.DEADLINE_EXCEEDED.value[0])


async def test_a_browser_that_goes_away_ends_the_upstream_stream(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory
) -> None:
    """No leaked streams: closing the HTTP request cancels the upstream call (a real server-streaming upstream)."""
    cancelled = asyncio.Event()

    async def ticks(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
        # context.write, not a generator: the cancellation lands here wherever the handler is waiting.
        try:
            await context.write(b"first")
            await asyncio.sleep(60)
            await context.write(b"never")
        except asyncio.CancelledError:
            cancelled.set()
            raise

    handler = grpc.method_handlers_generic_handler("test.Ticks", {"Watch": grpc.unary_stream_rpc_method_handler(ticks)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        url = await start_proxy(f"127.0.0.1:{port}")
        async with http.post(url + "/test.Ticks/Watch", data=frame(b""), headers={"Content-Type": BINARY}) as r:
            assert await anext(_read_frames(r.content)) == (0, b"first")
            r.close()
        await asyncio.wait_for(cancelled.wait(), timeout=10)
    finally:
        await server.stop(None)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "shorter than a gRPC-web frame header"),
        (b"\x00\x00\x00", "shorter than a gRPC-web frame header"),
        (b"\x00\x00\x00\x00\x09abc", "does not match"),
        (frame(b"") + frame(b""), "does not match"),
        (frame(b"", flag=0x80), "trailer"),
        (frame(b"\x08\x01", flag=0x01), "compressed"),
        (frame(b"", flag=0x40), "unknown frame flag"),
    ],
)
async def test_malformed_frames_are_invalid_argument(
    http: aiohttp.ClientSession, proxy: str, body: bytes, fragment: str
) -> None:
    reply = await call(http, proxy + GET_SLOT, b"", body=body)
    assert (reply.http_status, reply.status) == (200, grpc.StatusCode.INVALID_ARGUMENT.value[0])
    assert fragment in reply.trailer["grpc-message"]


async def test_bad_base64_in_text_mode_is_invalid_argument(http: aiohttp.ClientSession, proxy: str) -> None:
    reply = await call(http, proxy + GET_SLOT, b"", content_type=TEXT, body=b"!!not base64!!")
    assert reply.status == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "base64" in reply.trailer["grpc-message"]


async def test_garbage_message_bytes_are_the_servers_invalid_argument(http: aiohttp.ClientSession, proxy: str) -> None:
    reply = await call(http, proxy + GET_SLOT, b"\xff\xff\xff\xff")
    assert reply.status == grpc.StatusCode.INVALID_ARGUMENT.value[0]


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/grpc", ""])
async def test_wrong_content_type_is_415_with_a_grpc_status(
    http: aiohttp.ClientSession, proxy: str, content_type: str
) -> None:
    async with http.post(proxy + GET_SLOT, data=b"{}", headers={"Content-Type": content_type}) as r:
        assert r.status == 415
        assert r.headers["grpc-status"] == str(grpc.StatusCode.INVALID_ARGUMENT.value[0])
        assert "content-type" in r.headers["grpc-message"]
        body = decode_body(await r.read(), is_text=False)
    assert body.messages == [] and body.status == grpc.StatusCode.INVALID_ARGUMENT.value[0]


@pytest.mark.parametrize(
    ("path", "message_fragment"),
    [
        ("/orflow.v1.SlotService/NoSuchMethod", ""),
        ("/orflow.v1.NoSuchService/GetSlot", ""),
        ("/not-a-method", "not a /package.Service/Method path"),
        ("/orflow.v1.SlotService/GetSlot/extra", "not a /package.Service/Method path"),
    ],
)
async def test_unknown_methods_are_unimplemented(
    http: aiohttp.ClientSession, proxy: str, path: str, message_fragment: str
) -> None:
    reply = await call(http, proxy + path, slot_service_pb2.GetSlotRequest(slot_id=1))
    assert reply.status == grpc.StatusCode.UNIMPLEMENTED.value[0]
    assert message_fragment in reply.trailer.get("grpc-message", "")


async def test_oversized_bodies_are_resource_exhausted(
    db: asyncpg.Connection, http: aiohttp.ClientSession, start_proxy: ProxyFactory, target: str
) -> None:
    small = await start_proxy(target, web_max_body_bytes=64)
    slot_id = await insert_slot(db)
    ok = await call(http, small + GET_SLOT, slot_service_pb2.GetSlotRequest(slot_id=slot_id))
    assert ok.status == 0, "a body under the limit passes"
    big = booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id="P" * 100, request_id="too-big")
    reply = await call(http, small + "/orflow.v1.BookingService/CreateBooking", big)
    assert reply.status == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert "64 bytes" in reply.trailer["grpc-message"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while streaming in
        for _ in range(10):
            yield frame(b"x" * 20)

    async with http.post(small + GET_SLOT, data=chunks(), headers={"Content-Type": BINARY}) as r:
        assert r.headers["grpc-status"] == str(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
    assert await db.fetchval("SELECT count(*) FROM bookings WHERE request_id = 'too-big'") == 0


async def test_bad_grpc_timeout_is_invalid_argument(http: aiohttp.ClientSession, proxy: str) -> None:
    reply = await call(
        http, proxy + GET_SLOT, slot_service_pb2.GetSlotRequest(slot_id=1), headers={"grpc-timeout": "soon"}
    )
    assert reply.status == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "grpc-timeout" in reply.trailer["grpc-message"]


async def test_upstream_down_is_unavailable_quickly(http: aiohttp.ClientSession, start_proxy: ProxyFactory) -> None:
    dead = await start_proxy(f"127.0.0.1:{free_port()}")
    started = time.monotonic()
    reply = await call(http, dead + GET_SLOT, slot_service_pb2.GetSlotRequest(slot_id=1))
    assert reply.status == grpc.StatusCode.UNAVAILABLE.value[0]
    stream = await call(http, dead + WATCH, slot_service_pb2.WatchSlotsRequest())
    assert stream.status == grpc.StatusCode.UNAVAILABLE.value[0]
    assert time.monotonic() - started < 10, "never a hang"
    async with http.get(dead + "/healthz") as r:
        assert r.status == 503
        assert await r.json() == {"proxy": "SERVING", "upstream": "UNAVAILABLE"}


async def test_health_reports_the_upstream(http: aiohttp.ClientSession, proxy: str) -> None:
    async with http.get(proxy + "/healthz") as r:
        assert r.status == 200
        assert await r.json() == {"proxy": "SERVING", "upstream": "SERVING"}


async def test_cors_preflight_and_exposed_status_headers(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory, target: str
) -> None:
    proxy = await start_proxy(target, web_cors_origins=("*",))  # any origin only when configured (issue 17, F1)
    origin = {"Origin": "http://portal.example:5173"}
    preflight = {
        **origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-grpc-web,authorization,grpc-timeout",
    }
    async with http.options(proxy + GET_SLOT, headers=preflight) as r:
        assert r.status == 204
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert "POST" in r.headers["Access-Control-Allow-Methods"]
        assert "authorization" in r.headers["Access-Control-Allow-Headers"]
    reply = await call(http, proxy + GET_SLOT, slot_service_pb2.GetSlotRequest(slot_id=7777), headers=origin)
    exposed = {h.strip() for h in reply.headers["access-control-expose-headers"].split(",")}
    assert exposed == {"grpc-status", "grpc-message", "grpc-status-details-bin"}


async def test_cors_allow_list(http: aiohttp.ClientSession, start_proxy: ProxyFactory, target: str) -> None:
    strict = await start_proxy(target, web_cors_origins=("https://or.example",))
    request = slot_service_pb2.GetSlotRequest(slot_id=1)
    allowed = await call(http, strict + GET_SLOT, request, headers={"Origin": "https://or.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://or.example"
    other = await call(http, strict + GET_SLOT, request, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


async def test_metadata_and_deadline_pass_through_to_a_real_upstream(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory
) -> None:
    """A real grpc.aio server with a generic handler echoes what arrived: authorization, custom and -bin keys."""
    seen: dict[str, object] = {}

    async def echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        seen.update({key: value for key, value in context.invocation_metadata() or ()})
        seen["time_remaining"] = context.time_remaining()
        await context.send_initial_metadata((("x-upstream", "hello"),))
        context.set_trailing_metadata((("x-trailer-bin", b"\x00\x01"),))
        return request[::-1]

    handler = grpc.method_handlers_generic_handler("test.Echo", {"Call": grpc.unary_unary_rpc_method_handler(echo)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        url = await start_proxy(f"127.0.0.1:{port}")
        headers = {
            "Authorization": "Bearer token-123",
            "X-Request-Source": "portal",
            "X-Blob-Bin": base64.b64encode(b"\xfe\xff").decode(),
            "grpc-timeout": "5000m",
            "Cookie": "session=secret",
        }
        reply = await call(http, url + "/test.Echo/Call", b"abc", headers=headers)
    finally:
        await server.stop(None)
    assert reply.messages == [b"cba"]
    assert reply.headers["x-upstream"] == "hello"
    assert base64.b64decode(reply.trailer["x-trailer-bin"]) == b"\x00\x01"
    assert seen["authorization"] == "Bearer token-123"
    assert seen["x-request-source"] == "portal"
    assert seen["x-blob-bin"] == b"\xfe\xff"
    assert "cookie" not in seen, "browser cookies are not gRPC metadata"
    remaining = seen["time_remaining"]
    assert isinstance(remaining, float) and 3.0 < remaining <= 5.1  # 5000m, less the trip (grpc rounds up a little)


async def test_confirm_through_the_proxy_is_stored(
    db: asyncpg.Connection, http: aiohttp.ClientSession, proxy: str
) -> None:
    """As the portal does it: a patient token, and no patient_id (the token says who)."""
    slot_id = await insert_slot(db)
    patient = {"Authorization": f"Bearer {token_for('patient', 'P-9')}"}
    create = booking_service_pb2.CreateBookingRequest(slot_id=slot_id, request_id="web-confirm")
    created = await call(http, proxy + "/orflow.v1.BookingService/CreateBooking", create, headers=patient)
    booking = booking_service_pb2.CreateBookingResponse.FromString(created.messages[0]).booking
    confirm = booking_service_pb2.ConfirmBookingRequest(booking_id=booking.id)
    confirmed = await call(http, proxy + "/orflow.v1.BookingService/ConfirmBooking", confirm, headers=patient)
    status = booking_service_pb2.ConfirmBookingResponse.FromString(confirmed.messages[0]).booking.status
    assert status == booking_pb2.BOOKING_STATUS_CONFIRMED
    row = await db.fetchrow("SELECT patient_id, status FROM bookings WHERE id = $1", booking.id)
    assert row is not None and tuple(row) == ("P-9", "CONFIRMED")
