"""Who may call what: one interceptor verifies the bearer token and applies the method table.

It runs BEFORE the request bytes are parsed (it takes the deserializer off the
handler and parses only after the caller is allowed), so an anonymous caller
cannot make the server parse anything for a method it may not call. Every
refusal (a bad token, a forbidden role, a patient reaching for another
patient's booking or id) is counted in `orflow_calls_denied` and logged with
method, subject, reason and peer, at most DENIAL_LOG_LINES_PER_MINUTE lines a
minute (the rest are summed up in one line).

The verified Actor is handed to the servicer through a context variable
(`current_actor()`), set for exactly the task that serves the call. Browsing
slots and doctors needs no token; a token that is sent must be valid. Who
may call what is declared in the protos (`option (orflow.v1.access)` on every
RPC, protos/orflow/v1/access.proto) and read from the descriptors here.
Unknown OR Flow methods, and methods without the option, are refused: the
table fails closed.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc
import jwt
import orflow.v1
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from orflow.v1 import access_pb2

from ..domain.access import ANONYMOUS, Actor, Role
from ..domain.errors import NotFoundError, OrFlowError, PermissionDeniedError, UnauthenticatedError
from ..domain.reasons import ErrorReason
from ..metrics import Metrics
from ..security.tokens import TokenVerifier
from .errors import _parse as parse_request
from .handlers import Streaming, Unary, is_orflow_method, rewrap

_log = logging.getLogger(__name__)
DENIAL_LOG_LINES_PER_MINUTE = 60
DENIALS = (UnauthenticatedError, PermissionDeniedError, NotFoundError)
"""Errors that may be refusals (a NotFoundError only with is_denial: another patient's booking, answered NOT_FOUND
but recorded as OTHER_PATIENTS_BOOKING)."""


def roles_for(method: MethodDescriptor) -> frozenset[Role]:
    """The roles its orflow.v1.access option allows; none (so everyone is refused) without the option."""
    options = method.GetOptions()
    if not options.HasExtension(access_pb2.access):
        return frozenset()
    allowed = options.Extensions[access_pb2.access].roles
    return frozenset(
        Role[access_pb2.Role.Name(r).removeprefix("ROLE_")] for r in allowed if r != access_pb2.ROLE_UNSPECIFIED
    )


def orflow_services() -> list[ServiceDescriptor]:
    """Every service in the generated orflow.v1 stubs (so a new service file is covered too)."""
    modules = [
        importlib.import_module(f"{orflow.v1.__name__}.{info.name}")
        for info in pkgutil.iter_modules(orflow.v1.__path__)
        if info.name.endswith("_pb2")
    ]
    return [service for module in modules for service in module.DESCRIPTOR.services_by_name.values()]


METHOD_ROLES: dict[str, frozenset[Role]] = {
    f"/{service.full_name}/{method.name}": roles_for(method)
    for service in orflow_services()
    for method in service.methods
}
"""The roles allowed to call each OR Flow method, from the protos' access options (health and reflection are open
to all). Built once at import; a method missing here, or with no roles, is refused to everyone."""

_current_actor: ContextVar[Actor] = ContextVar("orflow_actor")


def current_actor() -> Actor:
    """The verified caller of the call being served."""
    return _current_actor.get()


def _bearer_token(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise UnauthenticatedError("authorization must be 'Bearer <token>'", reason=ErrorReason.TOKEN_MALFORMED)
            return token.strip()
    return None


def authorize(verifier: TokenVerifier, method: str, metadata: Any) -> Actor:
    """The actor of a call, or the error that refuses it."""
    token = _bearer_token(metadata)
    actor = ANONYMOUS if token is None else verifier.verify(token)
    allowed = METHOD_ROLES.get(method, frozenset())
    if actor.role in allowed:
        return actor
    if actor.role is Role.ANONYMOUS:
        raise UnauthenticatedError("this method needs a bearer token", reason=ErrorReason.TOKEN_MISSING)
    raise PermissionDeniedError(
        f"the {actor.role} role may not call {method.rsplit('/', 1)[-1]}", reason=ErrorReason.ROLE_FORBIDDEN
    )


class DeniedCalls:
    """Counts every refused call and logs it, at most `lines_per_minute` lines (a flood cannot fill the disk)."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        lines_per_minute: int = DENIAL_LOG_LINES_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._counter = metrics.calls_denied
        self._lines_per_minute = lines_per_minute
        self._clock = clock
        self._window_start = clock()
        self._lines = 0
        self._left_out = 0

    def record(self, method: str, subject: str, exc: OrFlowError, peer: str) -> None:
        if isinstance(exc, NotFoundError) and not exc.is_denial:
            return  # a plain missing resource is no refusal
        reason = "OTHER_PATIENTS_BOOKING" if isinstance(exc, NotFoundError) else str(exc.reason)
        self._counter.labels(method=method, reason=reason).inc()
        now = self._clock()
        if now - self._window_start >= 60:
            if self._left_out:
                _log.warning("%d more denied calls in the last minute were not logged", self._left_out)
            self._window_start, self._lines, self._left_out = now, 0, 0
        if self._lines >= self._lines_per_minute:
            self._left_out += 1
            return
        self._lines += 1
        _log.warning("denied %s: subject=%r reason=%s peer=%s", method, subject, reason, peer)


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Checks every OR Flow call before its request is parsed; placed inside ErrorInterceptor, which maps its errors."""

    def __init__(self, verifier: TokenVerifier, *, metrics: Metrics) -> None:
        self._verifier = verifier
        self._denied = DeniedCalls(metrics)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler: Any = await continuation(handler_call_details)
        method = handler_call_details.method
        if not is_orflow_method(handler, method):
            return handler  # type: ignore[no-any-return]
        call = _Call(method, handler_call_details.invocation_metadata, handler.request_deserializer)
        return rewrap(  # type: ignore[no-any-return]
            handler,
            unary=lambda behavior: self._guard_unary(behavior, call),
            streaming=lambda behavior: self._guard_streaming(behavior, call),
            request_deserializer=None,  # parsed in _admit, after the caller is allowed
        )

    def _admit(self, call: _Call, raw: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        """Authorizes the call (setting current_actor), then parses its request."""
        try:
            actor = authorize(self._verifier, call.method, call.metadata)
        except DENIALS as exc:
            self._denied.record(call.method, _claimed_subject(call.metadata), exc, context.peer())
            raise
        _current_actor.set(actor)
        return parse_request(call.deserializer, raw)

    def _guard_unary(self, behavior: Unary, call: _Call) -> Unary:
        async def guarded(raw: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            request = self._admit(call, raw, context)
            try:
                return await behavior(request, context)
            except DENIALS as exc:
                self._denied.record(call.method, current_actor().subject, exc, context.peer())
                raise

        return guarded

    def _guard_streaming(self, behavior: Streaming, call: _Call) -> Streaming:
        async def guarded(raw: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            request = self._admit(call, raw, context)
            try:
                async for response in behavior(request, context):
                    yield response
            except DENIALS as exc:
                self._denied.record(call.method, current_actor().subject, exc, context.peer())
                raise

        return guarded


@dataclass(frozen=True)
class _Call:
    method: str
    metadata: Any
    deserializer: Callable[[bytes], Any] | None


def _claimed_subject(metadata: Any) -> str:
    """Who a refused token says it is (unverified: for the log only), or "anonymous"."""
    try:
        token = _bearer_token(metadata)
    except UnauthenticatedError:
        return "(malformed authorization)"
    if token is None:
        return ANONYMOUS.subject
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return "(not a JWT)"
    return repr(claims.get("sub"))[:80] if isinstance(claims, dict) else "(not a JWT)"
