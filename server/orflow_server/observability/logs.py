"""Structured logs: one structlog pipeline for our events and for every standard-library `logging` record.

JSON lines when stderr is not a terminal (what a log shipper reads), a console renderer when it is;
`ORFLOW_LOG_FORMAT=json|console` forces either. Every line carries the current trace id when a span
is active, so a log line leads to its trace.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from opentelemetry import trace

LOG_FORMATS = ("auto", "json", "console")


def add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Adds trace_id and span_id of the active span (none when tracing is off)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid and "trace_id" not in event:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event


def is_console(log_format: str, stream: TextIO) -> bool:
    """Whether to render for a person: forced by `console`, or `auto` on a terminal."""
    return log_format == "console" or (log_format == "auto" and stream.isatty())


def configure_logging(*, log_format: str, level: str, stream: TextIO) -> None:
    """Routes structlog and `logging` through one renderer on `stream`, at `level` (e.g. INFO)."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
    ]
    renderer: Any
    if is_console(log_format, stream):
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
        final = [structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]
    else:
        renderer = structlog.processors.JSONRenderer()
        final = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Tracebacks as data, without local variables (they would carry tokens and patient ids).
            structlog.processors.ExceptionRenderer(structlog.tracebacks.ExceptionDictTransformer(show_locals=False)),
            renderer,
        ]
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
