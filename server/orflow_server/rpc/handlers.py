"""Rewrapping a grpc.aio method handler's behaviour: what both server interceptors do."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
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
