"""Forwards any unary or server-streaming gRPC-web call to the upstream gRPC server, as raw bytes.

No per-method code: every call goes out as a generic unary-stream call (on the wire a unary call
is a stream with one response), so new RPCs work without touching the proxy, and an unknown
method is the upstream's own UNIMPLEMENTED.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import grpc
from aiohttp import web

from .frames import FrameError, decode_request, decode_text, encode_frame, encode_trailer, parse_timeout

_log = logging.getLogger(__name__)

METHOD_PATH: Final = re.compile(r"^/[A-Za-z_][A-Za-z0-9_.]*/[A-Za-z_][A-Za-z0-9_]*$")
EXPOSED_HEADERS: Final = ("grpc-status", "grpc-message", "grpc-status-details-bin")
# Transport headers of the browser's HTTP/1.1 request that are not gRPC metadata.
_NOT_METADATA: Final = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "connection",
        "content-length",
        "content-type",
        "cookie",
        "dnt",
        "grpc-accept-encoding",
        "grpc-encoding",
        "grpc-timeout",
        "host",
        "keep-alive",
        "origin",
        "pragma",
        "priority",
        "referer",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-grpc-web",
        "x-user-agent",
        "connect-protocol-version",
    }
)
_METADATA_KEY: Final = re.compile(r"^[0-9a-z_.-]+$")
_RESERVED_RESPONSE: Final = frozenset({"content-type", "content-length", "grpc-status", "grpc-message"})
GRPC_STATUS: Final = web.RequestKey("orflow_grpc_status", str)
"""The gRPC status (a number, as on the wire) the proxy answered; read by the access log (observability.py)."""


def _identity(data: bytes) -> bytes:
    return data


@dataclass(frozen=True)
class WireMode:
    """Binary (`application/grpc-web[+proto]`) or base64 text (`application/grpc-web-text[+proto]`)."""

    is_text: bool
    content_type: str

    def encode(self, data: bytes) -> bytes:
        return base64.b64encode(data) if self.is_text else data


def wire_mode(content_type: str) -> WireMode | None:
    """The mode for a request content type; None when it is not gRPC-web with protobuf."""
    base = content_type.split(";", 1)[0].strip().lower()
    if base in ("application/grpc-web", "application/grpc-web+proto"):
        return WireMode(is_text=False, content_type="application/grpc-web+proto")
    if base in ("application/grpc-web-text", "application/grpc-web-text+proto"):
        return WireMode(is_text=True, content_type="application/grpc-web-text+proto")
    return None


def percent_encode(message: str) -> str:
    """grpc-message is percent-encoded UTF-8 (everything outside printable ASCII, and `%`)."""
    return "".join(
        chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in message.encode("utf-8", "replace")
    )


def status_pairs(
    code: grpc.StatusCode, message: str, metadata: Iterable[tuple[str, str | bytes]] = ()
) -> list[tuple[str, str]]:
    """Status, message, then the trailing metadata (binary values base64, as gRPC-web carries them)."""
    pairs = [("grpc-status", str(code.value[0]))]
    if message:
        pairs.append(("grpc-message", percent_encode(message)))
    pairs.extend(response_metadata(metadata))
    return pairs


def response_metadata(metadata: Iterable[tuple[str, str | bytes]]) -> list[tuple[str, str]]:
    pairs = []
    for key, value in metadata:
        if key in _RESERVED_RESPONSE:
            continue
        text = base64.b64encode(value).decode() if isinstance(value, bytes) else value
        pairs.append((key, text))
    return pairs


def request_metadata(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str | bytes]]:
    """Headers that are gRPC metadata (authorization, custom keys); `-bin` values are base64 on the wire."""
    metadata: list[tuple[str, str | bytes]] = []
    for name, value in headers:
        key = name.lower()
        if key in _NOT_METADATA or key.startswith(("access-control-", "sec-", "grpc-")) or not _METADATA_KEY.match(key):
            continue
        if key.endswith("-bin"):
            try:
                metadata.append((key, decode_text(value.encode("ascii"))))
            except (FrameError, UnicodeEncodeError):
                raise FrameError(f"metadata {key} is not base64") from None
        elif value.isascii() and value.isprintable():
            metadata.append((key, value))
    return metadata


class UpstreamChannels:
    """Channels to the same servers, each its own HTTP/2 connection; a call takes the one with the fewest open.

    A server caps the streams one client connection may hold open (ORFLOW_WATCH_STREAMS_PER_CONNECTION,
    ORFLOW_GRPC_MAX_STREAMS_PER_CONNECTION), and every browser's WatchSlots reaches it through the proxy:
    over one connection, the whole portal's live viewers would share that one cap.
    """

    def __init__(self, channels: Sequence[grpc.aio.Channel]) -> None:
        if not channels:
            raise ValueError("at least one upstream channel")
        self._channels = list(channels)
        self._open = [0] * len(self._channels)

    @property
    def first(self) -> grpc.aio.Channel:
        return self._channels[0]

    @property
    def open_calls(self) -> tuple[int, ...]:
        return tuple(self._open)

    @contextlib.contextmanager
    def least_busy(self) -> Iterator[grpc.aio.Channel]:
        """The channel with the fewest calls open, counted as open for the duration of the block."""
        index = min(range(len(self._channels)), key=self._open.__getitem__)
        self._open[index] += 1
        try:
            yield self._channels[index]
        finally:
            self._open[index] -= 1


class GrpcWebForwarder:
    """The aiohttp handler for `POST /package.Service/Method`."""

    def __init__(self, channels: UpstreamChannels, *, max_body_bytes: int, max_timeout: float | None = None) -> None:
        self._channels = channels
        self._max_body_bytes = max_body_bytes
        self._max_timeout = max_timeout

    async def handle(self, request: web.Request) -> web.StreamResponse:
        mode = wire_mode(request.headers.get("Content-Type", ""))
        if mode is None:
            return await self._refuse(
                request,
                WireMode(is_text=False, content_type="application/grpc-web+proto"),
                grpc.StatusCode.INVALID_ARGUMENT,
                "content-type must be application/grpc-web(+proto) or application/grpc-web-text(+proto)",
                http_status=415,
            )
        if not METHOD_PATH.match(request.path):
            return await self._refuse(
                request, mode, grpc.StatusCode.UNIMPLEMENTED, "not a /package.Service/Method path"
            )
        body = await self._read_body(request)
        if body is None:
            return await self._refuse(
                request, mode, grpc.StatusCode.RESOURCE_EXHAUSTED, f"request body over {self._max_body_bytes} bytes"
            )
        try:
            message = decode_request(decode_text(body) if mode.is_text else body)
            timeout = parse_timeout(request.headers.get("grpc-timeout"), cap=self._max_timeout)
            metadata = request_metadata(request.headers.items())
        except FrameError as exc:
            return await self._refuse(request, mode, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return await self._forward(request, mode, message, deadline=timeout, metadata=metadata)

    async def _read_body(self, request: web.Request) -> bytes | None:
        """The body, or None once it passes the limit (read no further than limit + 1 bytes)."""
        if request.content_length is not None and request.content_length > self._max_body_bytes:
            return None
        body = bytearray()
        while len(body) <= self._max_body_bytes:
            chunk = await request.content.read(self._max_body_bytes + 1 - len(body))
            if not chunk:
                return bytes(body)
            body += chunk
        return None

    async def _forward(
        self,
        request: web.Request,
        mode: WireMode,
        message: bytes,
        *,
        deadline: float | None,
        metadata: list[tuple[str, str | bytes]],
    ) -> web.StreamResponse:
        response: web.StreamResponse | None = None
        with self._channels.least_busy() as channel:
            method = channel.unary_stream(request.path, request_serializer=_identity, response_deserializer=_identity)
            call = method(message, timeout=deadline, metadata=metadata)
            try:
                async for reply in call:
                    if response is None:
                        response = await self._start(request, mode, response_metadata(await call.initial_metadata()))
                    await response.write(mode.encode(encode_frame(reply)))
                code, details = await call.code(), await call.details()
                trailing = tuple(await call.trailing_metadata())
            except grpc.aio.AioRpcError as exc:
                code, details, trailing = exc.code(), exc.details() or "", tuple(exc.trailing_metadata())
            finally:
                call.cancel()  # no-op when finished; stops the upstream stream when the browser went away
        trailer = status_pairs(code, details or "", trailing)
        request[GRPC_STATUS] = str(code.value[0])
        if response is None:  # trailers-only: the status in the headers too
            response = await self._start(request, mode, trailer)
        await response.write(mode.encode(encode_trailer(trailer)))
        await response.write_eof()
        return response

    async def _refuse(
        self,
        request: web.Request,
        mode: WireMode,
        code: grpc.StatusCode,
        message: str,
        *,
        http_status: int = 200,
    ) -> web.StreamResponse:
        """A gRPC-web error from the proxy itself: status in the headers and in a trailer frame."""
        trailer = status_pairs(code, message)
        request[GRPC_STATUS] = str(code.value[0])
        response = await self._start(request, mode, trailer, http_status=http_status)
        await response.write(mode.encode(encode_trailer(trailer)))
        await response.write_eof()
        return response

    @staticmethod
    async def _start(
        request: web.Request, mode: WireMode, headers: list[tuple[str, str]], *, http_status: int = 200
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=http_status)
        response.content_type = mode.content_type
        for name, value in headers:
            response.headers.add(name, value)
        await response.prepare(request)
        return response
