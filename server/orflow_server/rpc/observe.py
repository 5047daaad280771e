"""One log line and the RPC metrics for every OR Flow call: method, status code, duration, actor, ids.

ObserveInterceptor is outside every OR Flow interceptor but the shedder (which counts its own refusals
in the same metrics), so the code it records is the one the caller sees (ErrorInterceptor's mapping,
the auth refusals, malformed bytes). It sees request
bytes (ErrorInterceptor parses them inside), so it parses them once more, for the booking and slot
ids only, and never fails a call over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from google.protobuf import message_factory
from google.protobuf.message import DecodeError, Message

from ..metrics import Metrics
from .auth import current_actor, orflow_services
from .handlers import Streaming, Unary, is_orflow_method, rewrap

_log = structlog.get_logger("orflow_server.rpc")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_REQUEST_CLASSES: dict[str, type[Message]] = {
    f"/{service.full_name}/{method.name}": message_factory.GetMessageClass(method.input_type)
    for service in orflow_services()
    for method in service.methods
}


@dataclass
class _Call:
    """What is known about one call as it runs."""

    method: str
    kind: str
    started: float
    fields: dict[str, Any]


def _ids(message: Any) -> dict[str, Any]:
    """booking_id / slot_id from a request, or from a reply's `booking`, when present and set."""
    found: dict[str, Any] = {}
    if not isinstance(message, Message):
        return found
    for name in ("booking_id", "slot_id"):
        if name in message.DESCRIPTOR.fields_by_name and getattr(message, name):
            found[name] = getattr(message, name)
    if "booking" in message.DESCRIPTOR.fields_by_name and message.HasField("booking"):
        booking: Any = message.booking  # type: ignore[attr-defined]
        found.setdefault("booking_id", booking.id)
        found.setdefault("slot_id", booking.slot_id)
    return found


def _request_fields(method: str, raw: Any, metadata: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    request_class = _REQUEST_CLASSES.get(method)
    if request_class is not None and isinstance(raw, bytes):
        with contextlib.suppress(DecodeError):  # ErrorInterceptor answers it INVALID_ARGUMENT
            fields.update(_ids(request_class.FromString(raw)))
    for key, value in metadata or ():
        match = _TRACEPARENT.match(str(value)) if key == "traceparent" else None
        if match:  # tracing off here: still name the caller's trace
            fields["trace_id"] = match.group(1)
    return fields


def _code(context: grpc.aio.ServicerContext[Any, Any], error: BaseException | None) -> str:
    code: Any = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    return "OK" if error is None else "UNKNOWN"


class ObserveInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Logs and counts every OR Flow call once it has its status."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler: Any = await continuation(handler_call_details)
        method = handler_call_details.method
        if not is_orflow_method(handler, method):
            return handler  # type: ignore[no-any-return]
        metadata = handler_call_details.invocation_metadata
        return rewrap(  # type: ignore[no-any-return]
            handler,
            unary=lambda behavior: self._observe_unary(behavior, method, metadata),
            streaming=lambda behavior: self._observe_streaming(behavior, method, metadata),
        )

    def _observe_unary(self, behavior: Unary, method: str, metadata: Any) -> Unary:
        async def observed(raw: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            call = _Call(method, "unary", time.perf_counter(), _request_fields(method, raw, metadata))
            error: BaseException | None = None
            try:
                response = await behavior(raw, context)
                call.fields.update(_ids(response))
                return response
            except BaseException as exc:
                error = exc
                raise
            finally:
                self._record(call, _code(context, error))

        return observed

    def _observe_streaming(self, behavior: Streaming, method: str, metadata: Any) -> Streaming:
        async def observed(raw: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            call = _Call(method, "server_stream", time.perf_counter(), _request_fields(method, raw, metadata))
            error: BaseException | None = None
            sent = 0
            try:
                async for response in behavior(raw, context):
                    sent += 1
                    yield response
            except BaseException as exc:
                error = exc
                raise
            finally:
                call.fields["messages_sent"] = sent
                self._record(call, _code(context, error))

        return observed

    def _record(self, call: _Call, code: str) -> None:
        seconds = time.perf_counter() - call.started
        service, _, name = call.method.lstrip("/").partition("/")
        self._metrics.rpc_handled.labels(service, name, call.kind, code).inc()
        self._metrics.rpc_latency.labels(service, name, call.kind).observe(seconds)
        try:
            actor = current_actor()
            call.fields.update(actor=actor.subject, role=str(actor.role))
        except LookupError:
            call.fields.update(actor=None, role=None)  # refused before the token was read
        _log.info("rpc", method=call.method, code=code, duration_ms=round(seconds * 1000, 2), **call.fields)
