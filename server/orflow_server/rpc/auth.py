"""Who may call what: one interceptor verifies the bearer token and applies the method table.

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
import pkgutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import grpc
import orflow.v1
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from orflow.v1 import access_pb2

from ..domain.access import ANONYMOUS, Actor, Role
from ..domain.errors import PermissionDeniedError, UnauthenticatedError
from ..domain.reasons import ErrorReason
from ..security.tokens import TokenVerifier
from .handlers import Streaming, Unary, is_orflow_method, rewrap


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


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Checks every OR Flow call before its handler runs; placed inside ErrorInterceptor, which maps its errors."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

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
            unary=lambda behavior: self._guard_unary(behavior, method, metadata),
            streaming=lambda behavior: self._guard_streaming(behavior, method, metadata),
        )

    def _guard_unary(self, behavior: Unary, method: str, metadata: Any) -> Unary:
        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            _current_actor.set(authorize(self._verifier, method, metadata))
            return await behavior(request, context)

        return guarded

    def _guard_streaming(self, behavior: Streaming, method: str, metadata: Any) -> Streaming:
        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            _current_actor.set(authorize(self._verifier, method, metadata))
            async for response in behavior(request, context):
                yield response

        return guarded
