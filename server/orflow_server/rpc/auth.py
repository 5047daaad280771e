"""Who may call what: one interceptor verifies the bearer token and applies the method table.

The verified Actor is handed to the servicer through a context variable
(`current_actor()`), set for exactly the task that serves the call. Browsing
slots and doctors needs no token; a token that is sent must be valid.
Unknown OR Flow methods are refused: the table fails closed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import grpc

from ..domain.access import ANONYMOUS, Actor, Role
from ..domain.errors import PermissionDeniedError, UnauthenticatedError
from ..security.tokens import TokenVerifier
from .handlers import Streaming, Unary, is_orflow_method, rewrap

PUBLIC = frozenset({Role.ANONYMOUS, Role.PATIENT, Role.SERVICE, Role.ADMIN})
BOOKERS = frozenset({Role.PATIENT, Role.SERVICE, Role.ADMIN})
ADMINS = frozenset({Role.ADMIN})

METHOD_ROLES: dict[str, frozenset[Role]] = {
    "/orflow.v1.SlotService/ListSlots": PUBLIC,
    "/orflow.v1.SlotService/GetSlot": PUBLIC,
    "/orflow.v1.SlotService/ListDoctors": PUBLIC,
    "/orflow.v1.SlotService/WatchSlots": PUBLIC,
    "/orflow.v1.BookingService/CreateBooking": BOOKERS,
    "/orflow.v1.BookingService/GetBooking": BOOKERS,
    "/orflow.v1.BookingService/ConfirmBooking": BOOKERS,
    "/orflow.v1.BookingService/CancelBooking": BOOKERS,
    "/orflow.v1.BookingService/ListPatientBookings": BOOKERS,
    "/orflow.v1.AdminService/SeedDatabase": ADMINS,
    "/orflow.v1.AdminService/ListBookings": ADMINS,
    "/orflow.v1.AdminService/CreateSlot": ADMINS,
    "/orflow.v1.AdminService/CreateRoom": ADMINS,
    "/orflow.v1.AdminService/ListRooms": ADMINS,
    "/orflow.v1.AdminService/CreateDoctor": ADMINS,
    "/orflow.v1.AdminService/CreateEquipment": ADMINS,
    "/orflow.v1.AdminService/ListEquipment": ADMINS,
    "/orflow.v1.AdminService/ListAuditEvents": ADMINS,
}
"""The roles allowed to call each OR Flow method (health and reflection are open to all)."""

_current_actor: ContextVar[Actor] = ContextVar("orflow_actor")


def current_actor() -> Actor:
    """The verified caller of the call being served."""
    return _current_actor.get()


def _bearer_token(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise UnauthenticatedError("authorization must be 'Bearer <token>'", reason="TOKEN_MALFORMED")
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
        raise UnauthenticatedError("this method needs a bearer token", reason="TOKEN_MISSING")
    raise PermissionDeniedError(
        f"the {actor.role} role may not call {method.rsplit('/', 1)[-1]}", reason="ROLE_FORBIDDEN"
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
