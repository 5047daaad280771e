"""A real server, worker and proxy with tracing on, exporting OTLP/HTTP to a collector stub in the test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, str]


@dataclass
class Collector:
    """Receives the processes' real OTLP/HTTP exports (POST /v1/traces, protobuf)."""

    spans: list[Span] = field(default_factory=list)

    async def receive(self, request: web.Request) -> web.Response:
        export = trace_service_pb2.ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in export.resource_spans:
            service = next(a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name")
            for scope in resource_spans.scope_spans:
                self.spans.extend(_span(service, s) for s in scope.spans)
        body = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/traces", self.receive)
        return app


def _span(service: str, span: trace_pb2.Span) -> Span:
    attributes = {a.key: a.value.string_value or str(a.value.int_value) for a in span.attributes}
    return Span(
        service, span.name, span.kind, span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(), attributes
    )


@contextmanager
def orflow_processes(commands: dict[str, list[str]], env: dict[str, str], logs: Path) -> Iterator[dict[str, Path]]:
    """`orflow <command>` per name, stderr to logs/<name>.log; SIGTERM (then wait) on exit."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ORFLOW_", "OTEL_"))}
    files = {name: logs / f"{name}.log" for name in commands}
    children = []
    try:
        for name, args in commands.items():
            with files[name].open("wb") as out:
                children.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "orflow_server", *args],
                        env={**base, **env},
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=out,
                        process_group=0,
                    )
                )
        yield files
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def json_lines(path: Path) -> list[dict[str, object]]:
    """Every line of a log file, each of which must be one JSON object."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
