"""The client package as others get it: its public API, its wheel and its README example."""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import asyncpg
import orflow_client
import pytest
from orflow.v1 import booking_pb2
from orflow_client import BlockingOrFlowClient, OrFlowClient
from orflow_client._channel import SERVICES

from ..auth import ADMIN_TOKEN, token_for
from ..conftest import REPO_ROOT
from ..factories import future, insert_slot

CLIENT_ROOT = REPO_ROOT / "clients" / "python"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


RPCS = [(service.name, method.name) for service in SERVICES for method in service.methods]


@pytest.mark.parametrize(("service", "method"), RPCS)
def test_every_rpc_has_a_method_on_both_clients(service: str, method: str) -> None:
    name = _snake(method)
    for client in (OrFlowClient, BlockingOrFlowClient):
        assert callable(getattr(client, name, None)), f"{client.__name__}.{name} is missing for {service}.{method}"


PUBLIC = [
    n for n, _ in inspect.getmembers(OrFlowClient, inspect.isfunction) if not n.startswith("_") or n == "__init__"
]


@pytest.mark.parametrize("name", PUBLIC)
def test_the_twins_take_the_same_arguments(name: str) -> None:
    async_params = inspect.signature(getattr(OrFlowClient, name)).parameters
    blocking_params = inspect.signature(getattr(BlockingOrFlowClient, name)).parameters
    assert [(p.name, p.kind, p.default) for p in async_params.values() if p.name != "channel"] == [
        (p.name, p.kind, p.default) for p in blocking_params.values() if p.name != "channel"
    ]


PINNED_NAMES = {
    # the clients and their settings
    "OrFlowClient",
    "BlockingOrFlowClient",
    "RetryPolicy",
    # what errors carry
    "FieldViolation",
    # the errors: the base, one class per status, one per ErrorInfo reason that callers branch on
    "OrFlowError",
    "InvalidArgument",
    "RequestIdReused",
    "InvalidToken",
    "NotFound",
    "AlreadyExists",
    "BookingConflict",
    "SlotTaken",
    "RoomBusy",
    "SurgeonBusy",
    "PatientBusy",
    "EquipmentUnavailable",
    "FailedPrecondition",
    "HoldExpired",
    "SlotStarted",
    "BookingNotPending",
    "HoldAlreadyExtended",
    "BookingNotActive",
    "BookingNotConfirmed",
    "BookingNotCheckedIn",
    "BookingNotInProgress",
    "SlotCancelled",
    "SlotInUse",
    "EtagMismatch",
    "EquipmentInUse",
    "ResourceInUse",
    "ResourceRetired",
    "Unauthenticated",
    "PermissionDenied",
    "ResourceExhausted",
    "Unavailable",
    "DeadlineExceeded",
    "Cancelled",
    "Internal",
}
NOT_ERRORS = {"OrFlowClient", "BlockingOrFlowClient", "RetryPolicy", "FieldViolation"}


def test_the_public_names_are_pinned() -> None:
    """A change here is a change to what users import: make it on purpose."""
    assert set(orflow_client.__all__) == PINNED_NAMES
    assert len(orflow_client.__all__) == len(PINNED_NAMES), "a name is listed twice in __all__"
    for name in PINNED_NAMES - NOT_ERRORS:
        assert issubclass(getattr(orflow_client, name), orflow_client.OrFlowError), name


@pytest.mark.slow
def test_the_wheel_ships_the_stubs_with_their_types(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=CLIENT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("orflow_client-0.1.0-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for stem in ("slot_service", "booking_service", "admin_service", "resources", "booking"):
        assert {f"orflow/v1/{stem}_pb2.py", f"orflow/v1/{stem}_pb2.pyi", f"orflow/v1/{stem}_pb2_grpc.pyi"} <= names
    assert {"orflow/py.typed", "orflow_client/py.typed", "orflow_client/aio.py", "orflow_client/blocking.py"} <= names
    assert not any(name.startswith("orflow_server/") for name in names)


async def test_the_example_program_books_and_confirms(target: str, db: asyncpg.Connection) -> None:
    taken = await insert_slot(db, procedure_type="Knee arthroscopy")
    other = await insert_slot(db, procedure_type="Other")
    free = await insert_slot(db, procedure_type="Knee arthroscopy", start=future(48))
    async with OrFlowClient(target, token=ADMIN_TOKEN) as client:
        await client.create_booking(slot_id=taken, patient_id="someone-else")
    spec = importlib.util.spec_from_file_location("book_a_slot", CLIENT_ROOT / "examples" / "book_a_slot.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    token = token_for("patient", "p-example")
    booking = await example.book_first_free_slot(target, "p-example", "Knee arthroscopy", token=token)

    assert booking is not None and booking.status == booking_pb2.BOOKING_STATUS_CONFIRMED
    assert booking.slot_id == free and booking.slot_id not in (taken, other)


def test_the_example_program_says_it_needs_a_token() -> None:
    env = {key: value for key, value in os.environ.items() if key != "ORFLOW_TOKEN"}
    done = subprocess.run(
        [sys.executable, str(CLIENT_ROOT / "examples" / "book_a_slot.py"), "127.0.0.1:1", "MRN-1001"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert "needs a token in ORFLOW_TOKEN" in done.stderr and "orflow token --role patient" in done.stderr
    assert "Traceback" not in done.stderr
