"""Domain errors -> gRPC status codes and google.rpc.Status details. No server, no database."""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

import grpc
import orflow_server
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from orflow.v1 import error_reason_pb2
from orflow_server.domain import errors
from orflow_server.domain.reasons import ErrorReason
from orflow_server.rpc.errors import CODES, ERROR_DOMAIN, WIRE_REASONS, code_for, status_for, wire_reason

# Every error class a caller can see, and the code it must map to. A class added to
# domain/errors.py without an entry here fails test_every_error_class_has_an_expectation.
EXPECTED: dict[type[errors.OrFlowError], grpc.StatusCode] = {
    errors.InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.RequestIdReusedError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFoundError: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExistsError: grpc.StatusCode.ALREADY_EXISTS,
    errors.ConflictError: grpc.StatusCode.ABORTED,
    errors.SlotTakenError: grpc.StatusCode.ABORTED,
    errors.RoomBusyError: grpc.StatusCode.ABORTED,
    errors.SurgeonBusyError: grpc.StatusCode.ABORTED,
    errors.PatientBusyError: grpc.StatusCode.ABORTED,
    errors.EquipmentUnavailableError: grpc.StatusCode.ABORTED,
    errors.FailedPreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.SlotStartedError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.HoldExpiredError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.BookingNotPendingError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.BookingNotActiveError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.BookingNotConfirmedError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.BookingNotCheckedInError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.BookingNotInProgressError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.SlotCancelledError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.SlotInUseError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.HoldAlreadyExtendedError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.EtagMismatchError: grpc.StatusCode.ABORTED,
    errors.EquipmentInUseError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceInUseError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceRetiredError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.UnavailableError: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceededError: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.ResetDisabledError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    errors.RateLimitedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.StreamLimitError: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

# Classes only ever subclassed, never raised as they are.
ABSTRACT = {errors.OrFlowError, errors.ConflictError, errors.FailedPreconditionError}


def discovered() -> list[type[errors.OrFlowError]]:
    """Every OrFlowError subclass defined in orflow_server.domain.errors (the base excluded)."""
    return sorted(
        (
            cls
            for _, cls in inspect.getmembers(errors, inspect.isclass)
            if issubclass(cls, errors.OrFlowError)
            and cls is not errors.OrFlowError
            and cls.__module__ == errors.__name__
        ),
        key=lambda cls: cls.__name__,
    )


ERROR_CLASSES = discovered()


def make_error(cls: type[errors.OrFlowError]) -> errors.OrFlowError:
    if issubclass(cls, errors.InvalidArgumentError):
        return cls(
            [errors.FieldViolation("slot_id", "is required"), errors.FieldViolation("patient_id", "is required")]
        )
    if issubclass(cls, errors.NotFoundError):
        return cls("slot", 7)
    if issubclass(cls, errors.UnauthenticatedError):
        return cls("the token has expired", reason=ErrorReason.TOKEN_EXPIRED)
    if issubclass(cls, errors.PermissionDeniedError):
        return cls("admins only", reason=ErrorReason.ROLE_FORBIDDEN, metadata={"slot_id": "7"})
    if issubclass(cls, errors.StreamLimitError):
        return cls("per_caller", maximum=10, retry_after_seconds=1.5)
    if issubclass(cls, errors.RateLimitedError):
        return cls("too many bookings", retry_after_seconds=1.5)
    return cls("something went wrong", metadata={"slot_id": "7"})


def unpack(status: status_pb2.Status) -> tuple[error_details_pb2.ErrorInfo | None, error_details_pb2.BadRequest | None]:
    info = bad = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            assert info is None, "ErrorInfo packed twice"
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            assert bad is None, "BadRequest packed twice"
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            continue  # rides along with RESOURCE_EXHAUSTED: test_rate_limited_carries_retry_info checks it
        else:
            pytest.fail(f"unexpected detail {detail.type_url}")
    return info, bad


def test_discovery_finds_the_error_classes() -> None:
    assert len(ERROR_CLASSES) >= 15
    assert errors.SlotTakenError in ERROR_CLASSES and errors.RequestIdReusedError in ERROR_CLASSES


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_class_has_an_expectation(cls: type[errors.OrFlowError]) -> None:
    assert cls in EXPECTED, f"{cls.__name__} is new: add its expected gRPC code to EXPECTED"


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_code_for(cls: type[errors.OrFlowError]) -> None:
    code = code_for(make_error(cls))
    assert code is not grpc.StatusCode.UNKNOWN
    assert code is EXPECTED[cls]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_status_for(cls: type[errors.OrFlowError]) -> None:
    exc = make_error(cls)
    code, status = status_for(exc)
    assert code is EXPECTED[cls]
    assert status.code == getattr(code_pb2, code.name) == code.value[0]
    assert status.message == exc.message == str(exc)

    info, bad = unpack(status)
    assert info is not None
    assert info.reason == exc.reason
    assert info.domain == ERROR_DOMAIN == "orflow"
    assert dict(info.metadata) == exc.metadata

    if isinstance(exc, errors.InvalidArgumentError):
        assert bad is not None
        assert [(v.field, v.description) for v in bad.field_violations] == [
            ("slot_id", "is required"),
            ("patient_id", "is required"),
        ]
    else:
        assert bad is None


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_status_survives_the_wire(cls: type[errors.OrFlowError]) -> None:
    """What the interceptor sends as grpc-status-details-bin parses back to the same Status."""
    _, status = status_for(make_error(cls))
    assert status_pb2.Status.FromString(status.SerializeToString()) == status


@pytest.mark.parametrize("cls", [c for c in ERROR_CLASSES if c not in ABSTRACT], ids=lambda cls: cls.__name__)
def test_concrete_errors_have_their_own_reason(cls: type[errors.OrFlowError]) -> None:
    reason = make_error(cls).reason
    assert reason and reason != errors.OrFlowError.reason
    assert reason.isupper() and " " not in reason


def test_reasons_are_unique() -> None:
    reasons = [make_error(c).reason for c in ERROR_CLASSES if c not in ABSTRACT]
    assert len(reasons) == len(set(reasons)), reasons


def test_not_found_reason_and_metadata_name_the_resource() -> None:
    exc = errors.NotFoundError("booking", 12)
    assert exc.reason == "BOOKING_NOT_FOUND"
    assert exc.metadata == {"resource": "booking", "id": "12"}
    info, _ = unpack(status_for(exc)[1])
    assert info is not None and info.reason == "BOOKING_NOT_FOUND"
    assert dict(info.metadata) == {"resource": "booking", "id": "12"}


def test_a_new_subclass_inherits_its_parents_code() -> None:
    class NewBusyError(errors.RoomBusyError):
        reason = ErrorReason.SLOT_TAKEN

    class NewStateError(errors.HoldExpiredError):
        reason = ErrorReason.SLOT_STARTED

    assert code_for(NewBusyError("x")) is grpc.StatusCode.ABORTED
    assert code_for(NewStateError("x")) is grpc.StatusCode.FAILED_PRECONDITION


def test_every_direct_subclass_of_the_base_has_a_code() -> None:
    """No branch of the hierarchy can fall through to UNKNOWN."""
    direct = [cls for cls in ERROR_CLASSES if cls.__bases__ == (errors.OrFlowError,)]
    assert direct
    for cls in direct:
        assert cls in CODES, f"{cls.__name__} has no entry in rpc.errors.CODES"


def test_codes_table_holds_only_real_codes() -> None:
    assert grpc.StatusCode.UNKNOWN not in CODES.values()
    assert grpc.StatusCode.INTERNAL not in CODES.values()
    assert grpc.StatusCode.OK not in CODES.values()


def test_rate_limited_carries_retry_info() -> None:
    _, status = status_for(errors.RateLimitedError("too many bookings", retry_after_seconds=1.5))
    infos = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    assert len(infos) == 1
    retry = error_details_pb2.RetryInfo()
    infos[0].Unpack(retry)
    assert retry.retry_delay.ToTimedelta().total_seconds() == 1.5


# --- Reasons come from orflow.v1.ErrorReason (protos/orflow/v1/error_reason.proto), nowhere else.

SERVER_SOURCES = sorted(Path(orflow_server.__file__).parent.rglob("*.py"))


def test_the_domain_enum_is_the_proto_enum() -> None:
    """domain/reasons.py (generated) has exactly the proto's values, by the prefix rule the proto states."""
    proto = [v.name for v in error_reason_pb2.ErrorReason.DESCRIPTOR.values]
    assert [f"ERROR_REASON_{r.name}" for r in ErrorReason] == proto
    assert all(r.value == r.name for r in ErrorReason)
    assert {r.value for r in ErrorReason} == WIRE_REASONS


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_class_carries_an_enum_reason(cls: type[errors.OrFlowError]) -> None:
    assert isinstance(cls.reason, ErrorReason)
    exc = make_error(cls)
    assert isinstance(exc.reason, ErrorReason)
    assert (exc.reason is ErrorReason.UNSPECIFIED) == (cls in ABSTRACT)


def test_not_found_names_every_resource() -> None:
    """NotFoundError's reasons are listed (no f-string): one per resource the Literal allows."""
    resources = typing.get_args(errors.Resource)
    assert set(errors.NOT_FOUND_REASONS) == set(resources)
    for resource in resources:
        exc = errors.NotFoundError(resource, 1)
        assert exc.reason == f"{resource.upper()}_NOT_FOUND" and exc.reason in WIRE_REASONS


def _reason_sites(sources: dict[str, str] | None = None) -> list[tuple[str, ast.expr]]:
    """Every expression our server code sets an error's reason from: `reason=` given to a `...Error(...)`,
    `reason = ...` in a class body, and `self.reason = ...`."""
    sites: list[tuple[str, ast.expr]] = []
    for where, text in (sources or _server_sources()).items():
        tree = ast.parse(text, where)
        for node in ast.walk(tree):
            callee = getattr(node, "func", None)
            if isinstance(node, ast.Call) and getattr(callee, "id", getattr(callee, "attr", "")).endswith("Error"):
                sites += [(where, kw.value) for kw in node.keywords if kw.arg == "reason"]
            elif isinstance(node, ast.ClassDef):
                sites += [
                    (where, s.value) for s in node.body if _assigns(s, lambda t: getattr(t, "id", "") == "reason")
                ]
            elif isinstance(node, ast.FunctionDef):
                sites += [
                    (where, s.value) for s in ast.walk(node) if _assigns(s, lambda t: ast.unparse(t) == "self.reason")
                ]
    return sites


def _assigns(statement: ast.AST, is_target: typing.Callable[[ast.expr], bool]) -> typing.TypeGuard[ast.Assign]:
    if isinstance(statement, ast.AnnAssign) and statement.value is not None and is_target(statement.target):
        return True
    return isinstance(statement, ast.Assign) and any(is_target(target) for target in statement.targets)


def _not_found_resources() -> list[tuple[str, ast.expr]]:
    found: list[tuple[str, ast.expr]] = []
    for path in SERVER_SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "NotFoundError" and node.args:
                found.append((path.name, node.args[0]))
    return found


def _server_sources() -> dict[str, str]:
    root = Path(orflow_server.__file__).parent
    return {str(path.relative_to(root)): path.read_text() for path in SERVER_SOURCES}


def _not_enum_members(sites: list[tuple[str, ast.expr]]) -> list[str]:
    allowed_names = {"reason", "NOT_FOUND_REASONS[resource]"}  # a parameter passed on; the listed not-found table
    bad = []
    for where, value in sites:
        text = ast.unparse(value)
        member = text.removeprefix("ErrorReason.")
        if text not in allowed_names and (not text.startswith("ErrorReason.") or member not in ErrorReason.__members__):
            bad.append(f"{where}: {text}")
    return bad


def test_every_reason_the_server_sets_is_an_enum_member() -> None:
    """No reason is spelled as a string anywhere: each is ErrorReason.<MEMBER> (or a value NotFoundError looks up)."""
    sites = _reason_sites()
    assert len(sites) >= 25, "the walk lost the raise sites"
    assert _not_enum_members(sites) == []


def test_the_reason_walk_catches_strings_and_unknown_members() -> None:
    planted = {
        "planted.py": (
            "class GoneError(OrFlowError):\n    reason = 'SLOT_GONE'\n"
            "def f():\n    raise UnauthenticatedError('x', reason='TOKEN_GONE')\n"
            "def g(self):\n    self.reason = ErrorReason.NOT_A_MEMBER\n"
        )
    }
    assert sorted(_not_enum_members(_reason_sites(planted))) == [
        "planted.py: 'SLOT_GONE'",
        "planted.py: 'TOKEN_GONE'",
        "planted.py: ErrorReason.NOT_A_MEMBER",
    ]


def test_every_not_found_names_a_listed_resource() -> None:
    calls = _not_found_resources()
    assert len(calls) >= 6
    for where, arg in calls:
        assert isinstance(arg, ast.Constant) and arg.value in errors.NOT_FOUND_REASONS, f"{where}: {ast.unparse(arg)}"


def test_every_reason_of_the_enum_is_raised_somewhere() -> None:
    """The proto documents no reason that nothing sends (UNSPECIFIED aside)."""
    used = {ast.unparse(value).removeprefix("ErrorReason.") for _, value in _reason_sites()}
    used |= {reason.name for reason in errors.NOT_FOUND_REASONS.values()}
    assert set(ErrorReason.__members__) - used - {"UNSPECIFIED"} == set()


def test_a_reason_the_enum_lacks_is_refused_at_the_mapping() -> None:
    """The one mapping checks each reason against the proto; the interceptor then answers INTERNAL."""
    exc = errors.SlotTakenError("taken")
    exc.reason = "SLOT_GONE"  # type: ignore[assignment]  # what a hand-typed string would do
    assert exc.reason not in WIRE_REASONS
    with pytest.raises(ValueError, match="SLOT_GONE"):
        wire_reason(exc)
    with pytest.raises(ValueError, match="SLOT_GONE"):
        status_for(exc)
