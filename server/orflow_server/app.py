"""Builds the gRPC server from settings and resources, and runs it until a signal."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg
import grpc
from grpc_health.v1 import _async as health_aio  # the asyncio HealthServicer (no stubs ship for it)
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.sdk.trace import TracerProvider
from orflow.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    booking_service_pb2,
    booking_service_pb2_grpc,
    slot_service_pb2,
)
from redis.asyncio import Redis
from saq import Queue

from .db.connection import PooledConnection
from .db.errors import translate_transient
from .db.migrate import wait_for_schema
from .jobs import BufferedExpiryScheduler, SaqExpiryScheduler
from .live import SlotChangeHub
from .metrics import Metrics, serve_metrics, stop_metrics
from .observability.tracing import server_interceptors
from .ops.context import OpsContext
from .ops.scheduling import ExpiryScheduler, NoQueueExpiryScheduler
from .rpc import slot_service
from .rpc.admin_service import AdminService
from .rpc.auth import AuthInterceptor
from .rpc.booking_service import BookingService
from .rpc.errors import ErrorInterceptor
from .rpc.observe import ObserveInterceptor
from .rpc.shedding import InFlightLimit, SheddingInterceptor
from .security.rate_limit import BookingRateLimits, Limiter, RateLimiter, SharedRateLimiter
from .security.streams import StreamLimits
from .security.tokens import TokenVerifier, load_public_keys
from .settings import Settings

_log = logging.getLogger(__name__)

SERVICE_NAMES: Sequence[str] = (
    slot_service_pb2.DESCRIPTOR.services_by_name["SlotService"].full_name,
    booking_service_pb2.DESCRIPTOR.services_by_name["BookingService"].full_name,
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
)
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


def token_verifier(settings: Settings) -> TokenVerifier:
    keys = load_public_keys(pem_file=settings.auth_public_key_file, jwks_file=settings.auth_jwks_file)
    return TokenVerifier(
        issuer=settings.auth_issuer, audience=settings.auth_audience, secret=settings.auth_secret, public_keys=keys
    )


RATE_LIMIT_REDIS_TIMEOUT_SECONDS = 0.25
"""A booking waits at most this long for the shared rate limit before this process's own bucket decides."""


def booking_rate_limits(
    settings: Settings, *, redis: Redis | None = None, on_fallback: Callable[[], None] = lambda: None
) -> BookingRateLimits:
    """Per-process buckets, or (with `redis`) buckets every server process shares, per-process as the fallback."""

    def limiter(rate_per_minute: float, kind: str) -> Limiter:
        local = RateLimiter(rate_per_minute=rate_per_minute, burst=settings.booking_burst)
        if redis is None:
            return local
        prefix = f"{settings.queue_name}:booking-rate:{kind}:"
        return SharedRateLimiter(redis, local=local, key_prefix=prefix, on_fallback=on_fallback)

    patient = limiter(settings.booking_rate_per_minute, "patient")
    service = (
        limiter(settings.service_booking_rate_per_minute, "service")
        if settings.service_booking_rate_per_minute
        else None
    )
    return BookingRateLimits(patient=patient, service=service)


def rate_limit_redis(settings: Settings) -> Redis | None:
    """The Redis client the shared booking rate limit uses (short timeouts: it sits on the booking path)."""
    if not settings.redis_url:
        return None
    timeout = RATE_LIMIT_REDIS_TIMEOUT_SECONDS
    return Redis.from_url(settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)


async def create_pool(settings: Settings, dsn: str) -> asyncpg.Pool:
    """The pool: every statement bounded twice (PostgreSQL's statement/lock timeouts, asyncpg's command timeout).

    The timeouts ride on the connection's start-up packet: no extra round trip per call.
    A connection PostgreSQL closed is dropped on release and reopened on the next acquire.
    Behind a transaction pooler (`ORFLOW_DATABASE_DIRECT_URL` set) the start-up packet
    reaches PgBouncer, which refuses parameters it does not track, and a session
    setting would not follow the transactions anyway: there the timeouts belong
    on the application's role (`ALTER ROLE … SET statement_timeout …`, see deploy/).
    """
    server_settings = {"application_name": "orflow"}
    if not settings.database_direct_url:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
        server_settings["lock_timeout"] = str(settings.db_lock_timeout_ms)
    pool = await asyncpg.create_pool(
        dsn,
        min_size=settings.db_pool_min,
        max_size=max(settings.db_pool_max, settings.db_pool_min),
        command_timeout=settings.db_command_timeout,
        server_settings=server_settings,
        # 0 behind PgBouncer in transaction mode (before 1.21): a named prepared statement lives on one
        # server connection, and the next transaction may get another. Unnamed statements still work.
        statement_cache_size=settings.db_statement_cache_size,
        connection_class=PooledConnection,
    )
    assert pool is not None
    return pool


@dataclass(frozen=True)
class OrFlowServer:
    """The gRPC server with its bound port; start/stop keep health in step."""

    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    hub: SlotChangeHub | None = None

    async def start(self) -> None:
        if self.hub is not None:
            await self.hub.start()  # first, so the first WatchSlots already hears changes
        await self.server.start()
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float | None) -> None:
        """NOT_SERVING first, so load balancers drain us, then finish in-flight calls."""
        await self.health.enter_graceful_shutdown()
        if self.hub is not None:
            await self.hub.stop()  # ends WatchSlots streams (UNAVAILABLE), which would otherwise outlast any grace
        await self.server.stop(grace)


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """Message limits, keepalive, connection age (so balancers see connections recycled), and the two bounds
    gRPC itself enforces before Python sees a call: time waiting to be taken up, streams per connection."""
    options = [
        ("grpc.max_receive_message_length", settings.max_request_bytes),
        ("grpc.max_send_message_length", MAX_RESPONSE_BYTES),
        ("grpc.keepalive_time_ms", int(settings.grpc_keepalive_seconds * 1000)),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),  # tolerate clients pinging every 10 s
    ]
    if settings.grpc_max_pending_seconds > 0:
        options.append(("grpc.server_max_unrequested_time_in_server", settings.grpc_max_pending_seconds))
    options.append(("grpc.max_concurrent_streams", settings.streams_per_connection))
    if settings.grpc_max_connection_age_seconds > 0:
        options += [
            ("grpc.max_connection_age_ms", int(settings.grpc_max_connection_age_seconds * 1000)),
            ("grpc.max_connection_age_grace_ms", int(settings.grpc_max_connection_age_grace_seconds * 1000)),
        ]
    return options


def build_server(
    settings: Settings,
    *,
    pool: asyncpg.Pool,
    expiry: ExpiryScheduler,
    metrics: Metrics | None = None,
    listen_dsn: str | None = None,
    limits: BookingRateLimits | None = None,
    tracer_provider: TracerProvider | None = None,
) -> OrFlowServer:
    """The server with every service, health and reflection, bound but not started.

    `listen_dsn` is where the slot-change hub opens its own LISTEN connection;
    without it WatchSlots answers UNAVAILABLE. `limits` defaults to per-process buckets.
    `tracer_provider` (tracing on) adds the OpenTelemetry server interceptor, outside all but the
    shedder, so the log lines carry the call's trace id.
    """
    metrics = metrics or Metrics()
    server = grpc.aio.server(
        # The shedder is outermost: a call over the in-flight limit costs nothing else (rpc/shedding.py).
        # ObserveInterceptor logs and counts the status the caller sees; ErrorInterceptor answers the
        # auth interceptor's refusals too, and turns the database's passing faults into UNAVAILABLE
        # (never INTERNAL).
        interceptors=[
            SheddingInterceptor(InFlightLimit(settings.max_inflight_calls), metrics=metrics),
            *server_interceptors(tracer_provider),
            ObserveInterceptor(metrics),
            ErrorInterceptor(translate=translate_transient),
            AuthInterceptor(token_verifier(settings), metrics=metrics),
        ],
        options=server_options(settings),
        # gRPC refuses calls past this itself (RESOURCE_EXHAUSTED), before the interceptors or any Python
        # handler work: a backstop for when calls arrive faster than the shedder can even look at them.
        maximum_concurrent_rpcs=settings.concurrent_rpc_limit,
    )
    ctx = OpsContext(
        pool=pool,
        hold_ttl=settings.hold_ttl,
        turnover=settings.turnover,
        db_call_timeout=settings.db_call_timeout,
        expiry=expiry,
        metrics=metrics,
        allow_reset=settings.allow_reset,
    )
    hub = SlotChangeHub(dsn=listen_dsn) if listen_dsn else None
    metrics.track_pool(pool)
    if hub is not None:
        metrics.track_subscribers(hub)
    streams = StreamLimits(
        per_caller=settings.watch_streams_per_caller,
        per_connection=settings.watch_streams_per_connection,
        total=settings.watch_streams_total,
    )
    slot_service.add_to_server(slot_service.SlotService(ctx, hub=hub, streams=streams), server)
    booking_service_pb2_grpc.add_BookingServiceServicer_to_server(
        BookingService(ctx, limits=limits or booking_rate_limits(settings)), server
    )
    admin_service_pb2_grpc.add_AdminServiceServicer_to_server(AdminService(ctx), server)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        credentials = grpc.ssl_server_credentials(
            [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())]
        )
        port = server.add_secure_port(settings.grpc_addr, credentials)
    else:
        port = server.add_insecure_port(settings.grpc_addr)
    if port == 0:
        raise OSError(f"could not listen on ORFLOW_GRPC_ADDR={settings.grpc_addr}")
    return OrFlowServer(server=server, port=port, health=health_servicer, hub=hub)


YOUNG_COLLECTION_EVERY = 20_000
"""Allocations between young garbage collections (Python's default: 700). One change fanned out to 1,000
streams allocates tens of thousands of short-lived objects at once; at 700 many were still in flight at a
collection, so they were promoted, and the full passes they later caused held every stream (bench scenario 6
after scenario 1: live p99 103-152 ms in 5 runs at 700, 87-105 ms in 3 at 20,000)."""


def tune_garbage_collector() -> None:
    """Takes what start-up built out of the collector's full passes (`gc.freeze`) and collects the young less often.

    The modules, gRPC's and protobuf's machinery, the pool and the servicers live as long as the process;
    a full pass walked them all the same, and with 1,000 WatchSlots streams open such passes took
    100-250 ms, every stream's next update waiting behind them (bench scenario 6: p99 at 1,000
    subscribers 83-194 ms in 6 runs without the freeze, 85-97 ms in 7 with it). What is created later is
    collected as before.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, *gc.get_threshold()[1:])


async def serve(settings: Settings, *, database_url: str, tracer_provider: TracerProvider | None = None) -> None:
    """Runs the server until SIGINT/SIGTERM, then drains: NOT_SERVING, stop(grace), close pool."""
    # SAQ logs every enqueue at INFO: a line per booking beside the call's own "rpc" line. Its warnings stay.
    logging.getLogger("saq").setLevel(logging.WARNING)
    pool = await create_pool(settings, database_url)
    queue = Queue.from_url(settings.redis_url, name=settings.queue_name) if settings.redis_url else None
    metrics = Metrics()
    buffered = BufferedExpiryScheduler(SaqExpiryScheduler(queue), metrics=metrics) if queue else None
    expiry: ExpiryScheduler = buffered or NoQueueExpiryScheduler()
    if queue is None:
        _log.warning("ORFLOW_REDIS_URL is not set: holds expire on time in reads, and a worker's sweep persists it")
    limits_redis = rate_limit_redis(settings)
    limits = booking_rate_limits(settings, redis=limits_redis, on_fallback=metrics.rate_limit_fallbacks.inc)
    # LISTEN needs a session of its own: behind a transaction pooler it goes to the direct URL.
    listen_dsn = settings.database_direct_url or database_url
    try:
        async with pool.acquire() as conn:
            await wait_for_schema(conn, seconds=settings.schema_wait_seconds)
        server = build_server(
            settings,
            pool=pool,
            expiry=expiry,
            metrics=metrics,
            listen_dsn=listen_dsn,
            limits=limits,
            tracer_provider=tracer_provider,
        )
        http, _, metrics_port = serve_metrics(metrics, settings.metrics_addr)
        _log.info("metrics on http://%s:%d/metrics", settings.metrics_addr.rpartition(":")[0], metrics_port)
        await server.start()
        tune_garbage_collector()
        _log.info("OR Flow gRPC server listening on %s:%d", settings.grpc_addr.rpartition(":")[0], server.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await server.stop(grace=settings.shutdown_grace_seconds)
        stop_metrics(http)
    finally:
        if buffered is not None:
            await buffered.flush()  # the last bookings' jobs reach the queue before it disconnects
        if queue is not None:
            await queue.disconnect()
        if limits_redis is not None:
            await limits_redis.aclose()
        await pool.close()
