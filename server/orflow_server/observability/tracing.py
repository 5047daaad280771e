"""OpenTelemetry tracing, off unless the standard OTEL_* variables ask for it.

On when `OTEL_TRACES_EXPORTER` is `otlp` (or `console`), or when it is unset and
`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set; never when
`OTEL_SDK_DISABLED=true`. The exporter is OTLP over HTTP/protobuf; it, the resource
(`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`), the sampler (`OTEL_TRACES_SAMPLER[_ARG]`)
and the batch processor (`OTEL_BSP_*`) read their own variables, as the SDK documents.
Traced: gRPC server calls (an interceptor) and every asyncpg query (the asyncpg instrumentation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter


class TracingConfigError(ValueError):
    """An OTEL_* variable asks for something this build cannot do; the message names it."""


def trace_exporter_name(environ: Mapping[str, str]) -> str | None:
    """`otlp`, `console` or None (off), from the OTEL_* variables."""
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


def configure_tracing(environ: Mapping[str, str], *, service_name: str) -> TracerProvider | None:
    """Sets the global tracer provider when the OTEL_* variables ask for traces; None when they don't."""
    name = trace_exporter_name(environ)
    if name is None:
        return None
    resource = Resource.create({SERVICE_NAME: environ.get("OTEL_SERVICE_NAME", "").strip() or service_name})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(_exporter(name, environ)))
    trace.set_tracer_provider(provider)
    return provider


def instrument_asyncpg(provider: TracerProvider) -> None:
    """A span per asyncpg query, a child of the gRPC call's span (patches asyncpg's Connection)."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]


def server_interceptors(provider: TracerProvider | None) -> list[Any]:
    """The gRPC server's tracing interceptor (continues the caller's `traceparent`), or none when off."""
    if provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(tracer_provider=provider)]  # type: ignore[no-untyped-call]
