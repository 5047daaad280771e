"""A real gRPC server in front of the OR Flow server that fails chosen calls on cue.

It forwards every unary call's raw bytes (and the authorization header) to
the upstream server. A planned fault for a method applies to its next call:
  - "refuse":      answer UNAVAILABLE without forwarding (the server never saw it);
  - "drop-reply":  forward, let the server commit, then answer UNAVAILABLE
                   (a reply lost on the way back: the case that double books
                   a naive client that retries without an idempotency key);
  - "slow-reply":  forward, then hold the reply for `slow_seconds`, so the
                   client's deadline passes first.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from typing import Any

import grpc

FORWARDED_HEADERS = ("authorization",)


class FlakyProxy:
    def __init__(self, upstream: str, *, slow_seconds: float = 2.0) -> None:
        self.upstream = upstream
        self.slow_seconds = slow_seconds
        self.calls: list[tuple[str, bytes]] = []
        self.address = ""
        self._faults: dict[str, deque[str]] = defaultdict(deque)
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers((_Handler(self),))
        self._channel = grpc.aio.insecure_channel(upstream)

    def plan(self, method: str, *faults: str) -> None:
        """Queues faults for the next calls of `method` (e.g. "/orflow.v1.BookingService/CreateBooking")."""
        self._faults[method].extend(faults)

    def calls_to(self, method: str) -> list[bytes]:
        return [request for name, request in self.calls if name == method]

    async def start(self) -> str:
        port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        self.address = f"127.0.0.1:{port}"
        return self.address

    async def stop(self) -> None:
        await self._server.stop(grace=None)
        await self._channel.close()

    async def forward(self, method: str, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        self.calls.append((method, request))
        fault = self._faults[method].popleft() if self._faults[method] else None
        if fault == "refuse":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "flaky proxy: refused on cue")
        metadata = tuple((k, v) for k, v in context.invocation_metadata() or () if k in FORWARDED_HEADERS)
        try:
            reply: bytes = await self._channel.unary_unary(method)(request, metadata=metadata, timeout=30)
        except grpc.aio.AioRpcError as exc:
            await context.abort(exc.code(), exc.details() or "", tuple(exc.trailing_metadata() or ()))
        if fault == "drop-reply":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "flaky proxy: reply dropped on cue")
        if fault == "slow-reply":
            await asyncio.sleep(self.slow_seconds)
        return reply


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, proxy: FlakyProxy) -> None:
        self._proxy = proxy

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method

        async def behavior(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            return await self._proxy.forward(method, request, context)

        return grpc.unary_unary_rpc_method_handler(behavior)
