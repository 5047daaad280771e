"""What protects every route the proxy serves, whatever handler it has: browser security headers, odd paths,
slow requests and too many connections.

These are aiohttp hooks and middlewares added once in app.py, so a route added
later (another door, another page) gets them without asking:
- `add_security_headers` sets CSP, nosniff, frame and referrer policy on every response, errors included;
- `refuse_odd_paths` answers 404 to a path holding control or invisible characters (NUL included);
- `BodyDeadline` closes a connection whose request body has not fully arrived within the body timeout
  (the header timeout is aiohttp's idle timeout, which also runs while a request's headers trickle in);
- `ConnectionCap` counts connections per client address and in total, turning the extra ones away with 503.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler

CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",  # React's style={...} props; no script can run from a style
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_REFUSED_IN_PATHS: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})  # as the server's domain/text.py
_BUSY: Final = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """An on_response_prepare hook: every response, streamed or not, carries the browser protections."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


@web.middleware
async def refuse_odd_paths(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No file, method or page has a control or invisible character in its name: 404, before any handler."""
    if any(unicodedata.category(ch) in _REFUSED_IN_PATHS for ch in request.path):
        raise web.HTTPNotFound(text="not found")
    return await handler(request)


class BodyDeadline:
    """A middleware: the request body must be complete within `seconds` of its headers, or the connection closes."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.body_exists or request.content.is_eof():
            return await handler(request)
        timer = asyncio.get_running_loop().call_later(self._seconds, _close_if_unfinished, request)
        try:
            return await handler(request)
        finally:
            timer.cancel()


def _close_if_unfinished(request: web.Request) -> None:
    if not request.content.is_eof() and request.transport is not None:
        request.transport.close()  # the handler's pending read fails; handler_cancellation ends it


class ConnectionCap:
    """Admits at most `per_client` connections from one address and `total` in all; the rest get 503 and close."""

    def __init__(self, *, per_client: int, total: int) -> None:
        self._per_client = per_client
        self._total = total
        self._clients: Counter[str] = Counter()

    @property
    def open_count(self) -> int:
        return sum(self._clients.values())

    def protocol_factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _CountedProtocol(inner(), self)

    def admit(self, client: str) -> bool:
        if self._clients[client] >= self._per_client or self.open_count >= self._total:
            return False
        self._clients[client] += 1
        return True

    def release(self, client: str) -> None:
        self._clients[client] -= 1
        if self._clients[client] <= 0:
            del self._clients[client]


class _CountedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, counted in a ConnectionCap (or turned away)."""

    def __init__(self, inner: asyncio.Protocol, cap: ConnectionCap) -> None:
        self._inner = inner
        self._cap = cap
        self._client: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer: Any = transport.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if not self._cap.admit(client):
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(_BUSY)
            transport.close()
            return
        self._client = client
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._client is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._client is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._client is not None:
            self._cap.release(self._client)
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class CappedSite(web.TCPSite):
    """A TCPSite whose connections pass through a ConnectionCap (aiohttp has no hook for this, so start() is
    TCPSite.start with the protocol factory wrapped)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, cap: ConnectionCap) -> None:
        super().__init__(runner, host, port)
        self._cap = cap

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._cap.protocol_factory(server), self._host, self._port, reuse_address=self._reuse_address
        )
