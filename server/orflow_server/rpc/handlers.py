"""Rewrapping a grpc.aio method handler's behaviour (what the server interceptors do), and replacing its serializer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc

Unary = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
Streaming = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]


def is_orflow_method(handler: Any, method: str) -> bool:
    """OR Flow's own methods; health and reflection pass through untouched."""
    return handler is not None and method.startswith("/orflow.")


def rewrap(
    handler: Any, *, unary: Callable[[Unary], Unary], streaming: Callable[[Streaming], Streaming], **fields: Any
) -> Any:
    """The handler with its unary or server-streaming behaviour wrapped (and `fields` replaced)."""
    if handler.unary_unary is not None:
        return handler._replace(unary_unary=unary(handler.unary_unary), **fields)
    if handler.unary_stream is not None:
        return handler._replace(unary_stream=streaming(handler.unary_stream), **fields)
    return handler


class ResponseSerializers:
    """A server, as a generated `add_*Servicer_to_server` sees it, that registers some methods' handlers with
    their response serializer replaced (e.g. one that sends bytes serialized once for many streams).

    The generated function registers the same handler table twice, as generic handlers and as registered
    methods; this passes the table on, replaced, both ways, and the generic handler built from it.
    """

    def __init__(self, server: grpc.aio.Server, serializers: Mapping[str, Callable[[Any], bytes]]) -> None:
        self._server = server
        self._serializers = serializers

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Sequence[grpc.GenericRpcHandler[Any, Any]]) -> None:
        """Ignored: add_registered_method_handlers, called with the same table, registers its generic handler."""

    def add_registered_method_handlers(self, service_name: str, method_handlers: Mapping[str, Any]) -> None:
        handlers = {
            name: handler._replace(response_serializer=self._serializers[name])
            if name in self._serializers
            else handler
            for name, handler in method_handlers.items()
        }
        missing = set(self._serializers) - set(handlers)
        if missing:
            raise ValueError(f"{service_name} has no method {sorted(missing)}")
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service_name, handlers),))
        self._server.add_registered_method_handlers(service_name, handlers)  # type: ignore[attr-defined]  # grpc-stubs lag
