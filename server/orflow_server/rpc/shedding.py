"""Load shedding: a bounded number of unary calls run at once; the next is refused before anything is spent on it.

At ten times the load the database can take, queueing every call only makes
every call late (and holds pool connections for callers who have given up).
A call over the limit is answered UNAVAILABLE with RetryInfo at once, before
any connection is acquired or lock taken, so the calls let in keep a bounded
latency. Streams (WatchSlots) are not counted: they wait, they do not work.

Refusing must cost far less than serving, or an overloaded server spends its
CPU on refusals (measured with `python -m orflow_tools.bench.overload`). So
SheddingInterceptor is the OUTERMOST interceptor: a call over the limit
skips the others (tracing, the per-call log line, the token check, request
parsing) and gets a status built once, by rpc/errors.py's one mapping. It is
counted in the per-RPC metrics, and logged as one summary line a second,
not a line per call. A call that reaches the server only after its deadline
passed (it waited behind others) is answered DEADLINE_EXCEEDED the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from ..domain.errors import DeadlineExceededError, OrFlowError, UnavailableError
from ..metrics import Metrics
from .auth import orflow_services
from .errors import status_for
from .handlers import Unary, rewrap

SHED_RETRY_AFTER_SECONDS = 0.1
_log = logging.getLogger(__name__)
UNARY_METHODS = frozenset(
    f"/{service.full_name}/{method.name}"
    for service in orflow_services()
    for method in service.methods
    if not method.server_streaming and not method.client_streaming
)


class InFlightLimit:
    """A counter of running calls with a ceiling; entering past it raises UnavailableError."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self.shed = 0
        self.late = 0

    def enter_unless_late(self, seconds_left: float | None) -> None:
        """As enter(), but first DeadlineExceededError for a call whose caller has already given up."""
        if seconds_left is not None and seconds_left <= 0:
            self.late += 1
            raise DeadlineExceededError("the call's deadline passed before the server could start it")
        self.enter()

    @property
    def is_full(self) -> bool:
        return self.running >= self.limit

    def refusal(self) -> UnavailableError:
        return UnavailableError(
            f"the server is at its limit of {self.limit} calls in flight; retry",
            retry_after_seconds=SHED_RETRY_AFTER_SECONDS,
        )

    def enter(self) -> None:
        if self.is_full:
            self.shed += 1
            raise self.refusal()
        self.running += 1

    def leave(self) -> None:
        self.running -= 1


class _Refusals:
    """The wire answer of each refusal, built once; one summary log line a second."""

    def __init__(self, metrics: Metrics, clock: Callable[[], float]) -> None:
        self._metrics = metrics
        self._clock = clock
        self._answers: dict[str, tuple[grpc.StatusCode, str, tuple[tuple[str, bytes], ...]]] = {}
        self._since_log = 0
        self._last_log = clock()

    async def answer(self, refusal: OrFlowError, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        key = type(refusal).__name__
        if key not in self._answers:
            code, status = status_for(refusal)
            self._answers[key] = (code, status.message, (("grpc-status-details-bin", status.SerializeToString()),))
        code, message, trailers = self._answers[key]
        service, _, name = method.lstrip("/").partition("/")
        self._metrics.rpc_handled.labels(service, name, "unary", code.name).inc()
        self._count()
        await context.abort(code, message, trailers)

    def _count(self) -> None:
        self._since_log += 1
        now = self._clock()
        if now - self._last_log >= 1.0:
            _log.warning(
                "shed %d calls in the last %.0f s (over the in-flight limit, or late)",
                self._since_log,
                now - self._last_log,
            )
            self._since_log, self._last_log = 0, now


class SheddingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Applies an InFlightLimit to OR Flow's unary methods; the outermost interceptor (see the module docstring)."""

    def __init__(self, limit: InFlightLimit, *, metrics: Metrics, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._full = limit.refusal()
        self._refusals = _Refusals(metrics, clock)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = handler_call_details.method
        if method not in UNARY_METHODS:
            return await continuation(handler_call_details)
        if self.limit.is_full:  # nothing below is even set up for this call
            return grpc.unary_unary_rpc_method_handler(self._refused(method))
        handler: Any = await continuation(handler_call_details)
        return rewrap(  # type: ignore[no-any-return]
            handler, unary=lambda behavior: self._limited(behavior, method), streaming=lambda behavior: behavior
        )

    def _refused(self, method: str) -> Unary:
        async def refused(_: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            self.limit.shed += 1
            await self._refusals.answer(self._full, method, context)

        return refused

    def _limited(self, behavior: Unary, method: str) -> Unary:
        async def limited(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                self.limit.enter_unless_late(context.time_remaining())
            except (UnavailableError, DeadlineExceededError) as refusal:
                await self._refusals.answer(refusal, method, context)
            try:
                return await behavior(request, context)
            finally:
                self.limit.leave()

        return limited
