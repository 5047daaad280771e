"""What the async and the blocking client share: options, retry rules, metadata and channel settings."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import grpc
from google.protobuf import descriptor_pb2
from orflow.v1 import admin_service_pb2, booking_service_pb2, slot_service_pb2

from ._bearer import check_token

SERVICES = (
    slot_service_pb2.DESCRIPTOR.services_by_name["SlotService"],
    booking_service_pb2.DESCRIPTOR.services_by_name["BookingService"],
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"],
)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, for calls that are safe to repeat.

    Reads are retried by gRPC itself (a service config built from the protos'
    NO_SIDE_EFFECTS methods). CreateBooking is retried by the client, always
    with the same request_id, so the server returns the first booking instead
    of making a second one. A CANCELLED that reaches the client as a status
    came from the other side (a server draining on SIGTERM cancels a call it
    cannot finish; this client's own cancellation raises asyncio's
    CancelledError instead), so CreateBooking retries it too.
    """

    max_attempts: int = 4
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0
    retryable_codes: frozenset[grpc.StatusCode] = field(
        default=frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED})
    )

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff <= 0 or self.max_backoff < self.initial_backoff or self.multiplier < 1:
            raise ValueError("need 0 < initial_backoff <= max_backoff and multiplier >= 1")

    def backoffs(self) -> Iterator[float]:
        """The pause before each retry (max_attempts - 1 of them), with full jitter."""
        ceiling = self.initial_backoff
        for _ in range(self.max_attempts - 1):
            yield random.uniform(0, ceiling)
            ceiling = min(ceiling * self.multiplier, self.max_backoff)

    def pause(self, backoff: float, retry_delay: timedelta | None) -> float:
        """The pause before a retry: the server's RetryInfo delay when it sent one (never less), else the backoff.

        A server shedding load or waiting out a failover says how long to stay away;
        retrying sooner only adds to what it is refusing.
        """
        return backoff if retry_delay is None else max(backoff, retry_delay.total_seconds())

    def service_config(self) -> str:
        """A gRPC service config retrying every NO_SIDE_EFFECTS method on UNAVAILABLE."""
        names = [
            {"service": service.full_name, "method": method.name}
            for service in SERVICES
            for method in service.methods
            if method.GetOptions().idempotency_level == descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS
        ]
        policy = {
            "maxAttempts": min(self.max_attempts, 5),  # gRPC caps attempts at 5
            "initialBackoff": f"{self.initial_backoff}s",
            "maxBackoff": f"{self.max_backoff}s",
            "backoffMultiplier": self.multiplier,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
        return json.dumps({"methodConfig": [{"name": names, "retryPolicy": policy}]})


@dataclass(frozen=True)
class ClientOptions:
    """How a client connects and calls: address, credentials, deadlines and retries."""

    target: str
    token: str | None = None
    tls: bool = False
    root_certificates: bytes | None = None
    timeout: float | None = 10.0
    retry: RetryPolicy = RetryPolicy()

    def __post_init__(self) -> None:
        check_token(self.token)
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be positive (or None for no deadline)")

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.root_certificates is not None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.root_certificates)

    def channel_options(self) -> list[tuple[str, str | int]]:
        return [
            ("grpc.enable_retries", 1),
            ("grpc.service_config", self.retry.service_config()),
            ("grpc.primary_user_agent", "orflow-client-python/0.1"),
        ]

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def deadline(self, timeout: float | None) -> float | None:
        """The per-call timeout: the one given to the call, else the client's default."""
        return self.timeout if timeout is None else timeout


def new_request_id() -> str:
    """An idempotency key for a CreateBooking the caller gave none for."""
    return str(uuid.uuid4())
