"""The ONLY mapping from domain errors to gRPC status, and the interceptor that applies it.

Servicers raise domain errors; this module turns each into a status code plus
a google.rpc.Status carrying ErrorInfo (reason, domain, metadata) and, for bad
fields, BadRequest field violations. Anything unexpected is logged with its
traceback and answered INTERNAL with a generic message, never str(exc). An
error whose reason orflow.v1.ErrorReason lacks counts as unexpected: the proto
documents every reason a client can see.

Faults from the layers below that pass (a lost database connection, a
failover, a serialization failure) reach this module already translated into
UnavailableError with a retry delay by the translator the wiring hands the interceptor
(db/errors.py's translate_transient): UNAVAILABLE with RetryInfo, never INTERNAL.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from orflow.v1 import error_reason_pb2

from ..domain import errors
from .handlers import Streaming, Unary, is_orflow_method, rewrap

ERROR_DOMAIN = "orflow"
REASON_PREFIX = "ERROR_REASON_"
WIRE_REASONS = frozenset(
    value.name.removeprefix(REASON_PREFIX) for value in error_reason_pb2.ErrorReason.DESCRIPTOR.values
)
"""Every ErrorInfo reason the proto defines, as sent: the value's name without its prefix."""
_log = logging.getLogger(__name__)

CODES: dict[type[errors.OrFlowError], grpc.StatusCode] = {
    errors.InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFoundError: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExistsError: grpc.StatusCode.ALREADY_EXISTS,
    errors.ConflictError: grpc.StatusCode.ABORTED,
    errors.EtagMismatchError: grpc.StatusCode.ABORTED,
    errors.FailedPreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.UnavailableError: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceededError: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    errors.RateLimitedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def code_for(exc: errors.OrFlowError) -> grpc.StatusCode:
    """The code of the nearest class in the error's hierarchy that has one."""
    for cls in type(exc).__mro__:
        if cls in CODES:
            return CODES[cls]
    return grpc.StatusCode.UNKNOWN


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def wire_reason(exc: errors.OrFlowError) -> str:
    """The ErrorInfo reason of an error; ValueError if orflow.v1.ErrorReason lacks it."""
    reason = str(exc.reason)
    if reason not in WIRE_REASONS:
        raise ValueError(f"{type(exc).__name__} has reason {reason!r}, which orflow.v1.ErrorReason lacks")
    return reason


MAX_FIELD_VIOLATIONS = 10
_ANY_INDEX = re.compile(r"\[\d+\]")
"""Field violations sent at most: the status travels in trailers, which have a size limit (8 KiB by default)."""


def bounded_violations(violations: tuple[errors.FieldViolation, ...]) -> list[errors.FieldViolation]:
    """Each kind of violation once (the same problem in items [0], [1], ... of a list counts once), at most
    MAX_FIELD_VIOLATIONS, the last saying how many more there were."""
    distinct: list[errors.FieldViolation] = []
    seen: set[tuple[str, str]] = set()
    for violation in violations:
        kind = (_ANY_INDEX.sub("[]", violation.field), violation.description)
        if kind not in seen:
            seen.add(kind)
            distinct.append(violation)
    left_out = len(distinct) - MAX_FIELD_VIOLATIONS
    if left_out > 0 or len(distinct) < len(violations):
        distinct = distinct[: MAX_FIELD_VIOLATIONS - 1] if left_out > 0 else distinct
        more = len(violations) - len(distinct)
        distinct.append(errors.FieldViolation("request", f"and {more} more violations like these"))
    return distinct


def status_for(exc: errors.OrFlowError) -> tuple[grpc.StatusCode, status_pb2.Status]:
    code = code_for(exc)
    info = error_details_pb2.ErrorInfo(reason=wire_reason(exc), domain=ERROR_DOMAIN, metadata=exc.metadata)
    details = [_pack(info)]
    message = exc.message
    if isinstance(exc, errors.InvalidArgumentError):
        bounded = bounded_violations(exc.violations)
        message = errors.InvalidArgumentError(bounded).message
        violations = [
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description) for v in bounded
        ]
        details.append(_pack(error_details_pb2.BadRequest(field_violations=violations)))
    retry_after = (
        exc.retry_after_seconds if isinstance(exc, errors.RateLimitedError | errors.UnavailableError) else None
    )
    if retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromTimedelta(timedelta(seconds=retry_after))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    rpc_code = getattr(code_pb2, code.name)
    return code, status_pb2.Status(code=rpc_code, message=message, details=details)


Translate = Callable[[BaseException], errors.OrFlowError | None]
"""Turns an exception from a layer below into a domain error, or None when it is not one it knows."""


def _no_translation(_: BaseException) -> None:
    return None


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], exc: BaseException, method: str, translate: Translate
) -> None:
    if not isinstance(exc, errors.OrFlowError):
        translated = translate(exc)
        if translated is not None:
            _log.warning("transient fault in %s: %s: %s", method, type(exc).__name__, exc)
            translated.__cause__ = exc
            exc = translated
    if isinstance(exc, errors.OrFlowError) and exc.reason in WIRE_REASONS:
        code, status = status_for(exc)
        metadata = (("grpc-status-details-bin", status.SerializeToString()),)
        await context.abort(code, status.message, metadata)
    _log.error("unexpected error in %s", method, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; the failure was logged")


Deserializer = Callable[[bytes], Any]


def _parse(deserializer: Deserializer | None, raw: Any) -> Any:
    """Parses request bytes here, not in grpcio, so malformed bytes get INVALID_ARGUMENT."""
    if deserializer is None:
        return raw
    try:
        return deserializer(raw)
    except DecodeError as exc:
        raise errors.InvalidArgumentError(
            [errors.FieldViolation("request", "is not a valid protobuf message for this method")]
        ) from exc


def _wrap_unary(behavior: Unary, method: str, deserializer: Deserializer | None, translate: Translate) -> Unary:
    async def guarded(raw: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await behavior(_parse(deserializer, raw), context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - the one place every error is answered
            await _abort(context, exc, method, translate)

    return guarded


def _wrap_streaming(
    behavior: Streaming, method: str, deserializer: Deserializer | None, translate: Translate
) -> Streaming:
    async def guarded(raw: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        try:
            async for response in behavior(_parse(deserializer, raw), context):
                yield response
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001
            await _abort(context, exc, method, translate)

    return guarded


class ErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Answers every error a servicer raises with the status this module maps it to.

    `translate` names the passing faults of the layers below (the wiring passes db's translate_transient).
    """

    def __init__(self, translate: Translate = _no_translation) -> None:
        self._translate = translate

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler: Any = await continuation(handler_call_details)
        method = handler_call_details.method
        if not is_orflow_method(handler, method):
            return handler  # type: ignore[no-any-return]
        deserializer = handler.request_deserializer
        return rewrap(  # type: ignore[no-any-return]
            handler,
            unary=lambda behavior: _wrap_unary(behavior, method, deserializer, self._translate),
            streaming=lambda behavior: _wrap_streaming(behavior, method, deserializer, self._translate),
            request_deserializer=None,  # _parse does it, so bad bytes get INVALID_ARGUMENT
        )
