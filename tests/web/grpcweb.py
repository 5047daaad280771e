"""Test helpers that speak gRPC-web at the byte level (no client library between the test and the wire)."""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field

import aiohttp
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from tests.factories import status_details

BINARY = "application/grpc-web+proto"
TEXT = "application/grpc-web-text+proto"


def frame(payload: bytes, flag: int = 0) -> bytes:
    return struct.pack(">BI", flag, len(payload)) + payload


def split_frames(body: bytes) -> list[tuple[int, bytes]]:
    """(flag, payload) for every frame; fails on trailing garbage."""
    frames, offset = [], 0
    while offset < len(body):
        assert len(body) - offset >= 5, f"truncated frame header at {offset}"
        flag, length = struct.unpack_from(">BI", body, offset)
        payload = body[offset + 5 : offset + 5 + length]
        assert len(payload) == length, "truncated frame"
        frames.append((flag, payload))
        offset += 5 + length
    return frames


def parse_trailer(payload: bytes) -> dict[str, str]:
    lines = payload.decode("ascii").split("\r\n")
    assert lines[-1] == "", "every trailer line ends in CRLF"
    return {name.strip(): value.strip() for name, value in (line.split(":", 1) for line in lines[:-1])}


@dataclass
class Reply:
    http_status: int
    headers: dict[str, str]
    messages: list[bytes] = field(default_factory=list)
    trailer: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> int:
        return int(self.trailer["grpc-status"])

    def details(self) -> tuple[error_details_pb2.ErrorInfo | None, list[tuple[str, str]]]:
        raw = self.trailer["grpc-status-details-bin"]
        return status_details(status_pb2.Status.FromString(base64.b64decode(raw + "=" * (-len(raw) % 4))))


def decode_text_body(body: bytes) -> bytes:
    """Base64 quanta decode on their own, so separately padded chunks (one per write) concatenate fine."""
    assert len(body) % 4 == 0, "grpc-web-text chunks are whole base64 quanta"
    return b"".join(base64.b64decode(body[i : i + 4], validate=True) for i in range(0, len(body), 4))


def decode_body(body: bytes, *, is_text: bool) -> Reply:
    """Frames of a whole response body: messages, then exactly one trailer frame, last."""
    if is_text:
        body = decode_text_body(body)
    frames = split_frames(body)
    assert frames, "a gRPC-web response always ends with a trailer frame"
    *data, (last_flag, last) = frames
    assert last_flag == 0x80, f"the last frame must be the trailer, got flag {last_flag:#x}"
    assert all(flag == 0 for flag, _ in data), "only the last frame is a trailer"
    return Reply(0, {}, [payload for _, payload in data], parse_trailer(last))


async def call(
    http: aiohttp.ClientSession,
    url: str,
    request: Message | bytes,
    *,
    content_type: str = BINARY,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Reply:
    """POSTs one request message and reads the whole response."""
    payload = request if isinstance(request, bytes) else request.SerializeToString()
    is_text = content_type.startswith("application/grpc-web-text")
    data = body if body is not None else frame(payload)
    if is_text and body is None:
        data = base64.b64encode(data)
    async with http.post(url, data=data, headers={"Content-Type": content_type, **(headers or {})}) as response:
        raw = await response.read()
        reply = decode_body(raw, is_text=response.headers.get("Content-Type", "").startswith(TEXT))
        reply.http_status = response.status
        reply.headers = {k.lower(): v for k, v in response.headers.items()}
        return reply
