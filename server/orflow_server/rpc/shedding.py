"""Load shedding: a bounded number of unary calls run at once; the next is refused before it touches the database.

At ten times the load the database can take, queueing every call only makes
every call late (and holds pool connections for callers who have given up).
A call over the limit is answered UNAVAILABLE with RetryInfo at once, before
any connection is acquired or lock taken, so the calls let in keep a bounded
latency. Streams (WatchSlots) are not counted: they wait, they do not work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from ..domain.errors import UnavailableError
from .handlers import Unary, is_orflow_method, rewrap

SHED_RETRY_AFTER_SECONDS = 0.1


class InFlightLimit:
    """A counter of running calls with a ceiling; entering past it raises UnavailableError."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self.shed = 0

    def enter(self) -> None:
        if self.running >= self.limit:
            self.shed += 1
            raise UnavailableError(
                f"the server is at its limit of {self.limit} calls in flight; retry",
                retry_after_seconds=SHED_RETRY_AFTER_SECONDS,
            )
        self.running += 1

    def leave(self) -> None:
        self.running -= 1


def _limited(behavior: Unary, limit: InFlightLimit) -> Unary:
    async def limited(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        limit.enter()
        try:
            return await behavior(request, context)
        finally:
            limit.leave()

    return limited


class SheddingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Applies an InFlightLimit to OR Flow's unary methods; sits inside ErrorInterceptor, which answers the refusal."""

    def __init__(self, limit: InFlightLimit) -> None:
        self.limit = limit

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler: Any = await continuation(handler_call_details)
        if not is_orflow_method(handler, handler_call_details.method):
            return handler  # type: ignore[no-any-return]
        return rewrap(  # type: ignore[no-any-return]
            handler, unary=lambda behavior: _limited(behavior, self.limit), streaming=lambda behavior: behavior
        )
