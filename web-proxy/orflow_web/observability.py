"""The proxy's logs, traces and metrics: one log line and two metrics per request, and OTel spans.

Logs: structlog, JSON lines unless stderr is a terminal (`ORFLOW_LOG_FORMAT` forces json or
console), standard-library records through the same renderer. Traces (off unless the OTEL_*
variables ask, as in the server): an aiohttp server span continuing the browser's `traceparent`,
and a gRPC client span whose context goes upstream. Metrics on `GET /metrics`:
`orflow_web_requests_total{route,status,grpc_code}` and `orflow_web_upstream_seconds{method}`.
The proxy imports nothing from the server, so this mirrors `orflow_server.observability`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, TextIO

import grpc
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .grpc_web import GRPC_STATUS

METRICS_PATH = "/metrics"
_UNIMPLEMENTED = str(grpc.StatusCode.UNIMPLEMENTED.value[0])
_log = structlog.get_logger("orflow_web.access")


def _add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    context = trace.get_current_span().get_span_context()
    if context.is_valid and "trace_id" not in event:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event


def configure_logging(*, log_format: str, level: str, stream: TextIO) -> None:
    """structlog and `logging` through one renderer: console on a terminal (or forced), JSON otherwise."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace_ids,
    ]
    meta = structlog.stdlib.ProcessorFormatter.remove_processors_meta
    console = log_format == "console" or (log_format == "auto" and stream.isatty())
    final: list[Any] = (
        [meta, structlog.dev.ConsoleRenderer(colors=stream.isatty())]
        if console
        else [
            meta,
            structlog.processors.ExceptionRenderer(structlog.tracebacks.ExceptionDictTransformer(show_locals=False)),
            structlog.processors.JSONRenderer(),
        ]
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared], processors=final
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)


class TracingConfigError(ValueError):
    """An OTEL_* variable asks for something this build cannot do; the message names it."""


def _exporter_name(environ: Mapping[str, str]) -> str | None:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names:
        endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        return "otlp" if any(environ.get(name, "").strip() for name in endpoints) else None
    if names == ["none"]:
        return None
    if len(names) != 1 or names[0] not in ("otlp", "console"):
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER={environ['OTEL_TRACES_EXPORTER']!r}: use otlp, console or none")
    return names[0]


def _exporter(name: str, environ: Mapping[str, str]) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = environ.get(variable, "").strip()
        if protocol and protocol != "http/protobuf":
            raise TracingConfigError(f"{variable}={protocol!r}: only http/protobuf is installed")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def configure_tracing(environ: Mapping[str, str]) -> TracerProvider | None:
    """Sets the global tracer provider when the OTEL_* variables ask for traces; None when they don't."""
    name = _exporter_name(environ)
    if name is None:
        return None
    service = environ.get("OTEL_SERVICE_NAME", "").strip() or "orflow-proxy"
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    provider.add_span_processor(BatchSpanProcessor(_exporter(name, environ)))
    trace.set_tracer_provider(provider)
    # A server span per request, continuing the browser's traceparent: the instrumentor puts its
    # middleware first in every web.Application made from now on (its middleware needs the
    # instrumentor's set-up, so it cannot be added by hand).
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor

    AioHttpServerInstrumentor().instrument(tracer_provider=provider)
    return provider


class ProxyMetrics:
    """The proxy's own registry: requests by route and status, upstream latency by method."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "orflow_web_requests",
            "HTTP requests the proxy answered, by route, HTTP status and gRPC status ('' when not gRPC)",
            ["route", "status", "grpc_code"],
            registry=self.registry,
        )
        self.upstream = Histogram(
            "orflow_web_upstream_seconds",
            "Seconds from starting an upstream gRPC call to its end, by method",
            ["method"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.gc_frozen = Gauge(
            "orflow_gc_frozen_objects",
            "Objects kept out of the cyclic collector's passes (gc.freeze at start-up; 0 where not frozen)",
            registry=self.registry,
        )
        self.gc_frozen.set_function(gc.get_freeze_count)

    async def handle(self, request: web.Request) -> web.Response:
        body = await asyncio.to_thread(generate_latest, self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def client_interceptors(self, provider: TracerProvider | None) -> list[Any]:
        """For the upstream channel: the OTel client span (when tracing), then upstream latency."""
        interceptors: list[Any] = []
        if provider is not None:
            from opentelemetry.instrumentation.grpc import aio_client_interceptors

            interceptors.extend(aio_client_interceptors(tracer_provider=provider))  # type: ignore[no-untyped-call]
        interceptors.append(_UpstreamTimer(self.upstream.labels))
        return interceptors


class _UpstreamTimer(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    """Times every forwarded call to its end (the proxy sends every call as unary-stream)."""

    def __init__(self, observe: Callable[..., Any]) -> None:
        self._observe = observe
        self._pending: set[asyncio.Task[None]] = set()

    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        started = time.perf_counter()
        call = await continuation(client_call_details, request)
        method = client_call_details.method
        name = method.decode() if isinstance(method, bytes) else str(method)

        def done(finished: Any) -> None:
            task = asyncio.ensure_future(self._record(finished, name, time.perf_counter() - started))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

        call.add_done_callback(done)
        return call

    async def _record(self, call: Any, method: str, seconds: float) -> None:
        # An unknown method (any path a browser sends) must not become a label of its own.
        is_unknown = await call.code() == grpc.StatusCode.UNIMPLEMENTED
        self._observe("unknown-method" if is_unknown else method).observe(seconds)


def _route(request: web.Request, grpc_code: str) -> str:
    """A bounded label: the method for forwarded calls the server knows, else a fixed name."""
    if request.method == "POST" and grpc_code:
        return request.path if grpc_code != _UNIMPLEMENTED else "unknown-method"
    if request.path in (METRICS_PATH, "/healthz", "/dev/sign-in"):
        return request.path
    return "cors-preflight" if request.method == "OPTIONS" else "portal"


def access_middleware(metrics: ProxyMetrics) -> Middleware:
    """One log line and one count per request, with its status, gRPC status and duration."""

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            grpc_code = request.get(GRPC_STATUS, "")
            route = _route(request, grpc_code)
            metrics.requests.labels(route, str(status), grpc_code).inc()
            if route != METRICS_PATH:
                _log.info(
                    "request",
                    http_method=request.method,
                    path=request.path if route != "unknown-method" else route,
                    status=status,
                    grpc_code=grpc_code or None,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )

    return observe
