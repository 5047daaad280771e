"""Tokens for tests: signed with the test servers' secret, and channels that carry them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import grpc
from orflow_server.domain.access import Role
from orflow_server.security.tokens import issue_token

TEST_SECRET = "orflow-test-secret-0123456789-abcdefghij"


def token_for(role: Role | str, subject: str = "", *, ttl: timedelta = timedelta(hours=1), **claims: Any) -> str:
    role = Role(role)
    return issue_token(
        TEST_SECRET,
        subject=subject or f"test-{role}",
        role=role,
        ttl=ttl,
        issuer=claims.get("issuer", "orflow"),
        audience=claims.get("audience", "orflow"),
    )


ADMIN_TOKEN = token_for(Role.ADMIN, "test-admin")


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


class _WithToken:
    """Adds `authorization: Bearer <token>` to every call that has none."""

    def __init__(self, token: str) -> None:
        self._token = token

    def _details(self, details: Any) -> Any:
        metadata: Sequence[tuple[str, str]] = tuple(details.metadata or ())
        if not any(key == "authorization" for key, _ in metadata):
            metadata = (*metadata, *bearer(self._token))
        return details._replace(metadata=grpc.aio.Metadata(*metadata))


# grpc.aio files an interceptor under the FIRST interceptor class it is an instance of, so one object
# cannot serve unary and streaming calls: each kind gets its own.
class _UnaryWithToken(_WithToken, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)


class _StreamWithToken(_WithToken, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)


def authorized_channel(target: str, token: str = ADMIN_TOKEN) -> grpc.aio.Channel:
    """An aio channel whose calls (unary and streaming) carry `token` (an admin's unless given)."""
    return grpc.aio.insecure_channel(target, interceptors=[_UnaryWithToken(token), _StreamWithToken(token)])
