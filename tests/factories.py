"""Factories: make_x(**overrides) for domain objects, insert_x(conn, **overrides) for rows."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
from google.rpc import error_details_pb2, status_pb2
from orflow_server.domain.models import Booking, BookingStatus, Usage

_counter = itertools.count(1)


def future(hours: float = 24.0) -> datetime:
    """A whole-minute moment `hours` from now, in UTC."""
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(second=0, microsecond=0)


async def insert_site(conn: asyncpg.Connection, **overrides: Any) -> int:
    """A site (names are unique and the `db` fixture keeps sites, so each gets a fresh one)."""
    return int(
        await conn.fetchval(
            "INSERT INTO sites (name, display_name, time_zone) VALUES ($1, $2, $3) RETURNING id",
            overrides.get("name", f"site-{next(_counter)}-{uuid.uuid4().hex[:8]}"),
            overrides.get("display_name", "Test Hospital"),
            overrides.get("time_zone", "UTC"),
        )
    )


async def insert_room(conn: asyncpg.Connection, **overrides: Any) -> int:
    """A room in `site_id` (default: the oldest site) with `turnover` (default: none of its own)."""
    name = overrides.get("name", f"Room {next(_counter)}")
    return int(
        await conn.fetchval(
            "INSERT INTO rooms (name, site_id, turnover)"
            " VALUES ($1, coalesce($2::bigint, orflow_default_site_id()), $3) RETURNING id",
            name,
            overrides.get("site_id"),
            overrides.get("turnover"),
        )
    )


async def insert_doctor(conn: asyncpg.Connection, **overrides: Any) -> int:
    return int(
        await conn.fetchval(
            "INSERT INTO doctors (name, specialty) VALUES ($1, $2) RETURNING id",
            overrides.get("name", f"Dr. Test {next(_counter)}"),
            overrides.get("specialty", "General Surgery"),
        )
    )


async def insert_equipment(conn: asyncpg.Connection, **overrides: Any) -> int:
    return int(
        await conn.fetchval(
            "INSERT INTO equipment (name, quantity) VALUES ($1, $2) RETURNING id",
            overrides.get("name", f"Device {next(_counter)}"),
            overrides.get("quantity", 1),
        )
    )


async def insert_slot(
    conn: asyncpg.Connection,
    *,
    room_id: int | None = None,
    doctor_id: int | None = None,
    start: datetime | None = None,
    hours: float = 2.0,
    procedure_type: str = "Appendectomy",
    equipment: Sequence[tuple[int, int]] = (),
) -> int:
    """A slot; a new room and a new doctor are made unless given. `equipment` is (id, quantity)."""
    room_id = room_id or await insert_room(conn)
    doctor_id = doctor_id or await insert_doctor(conn)
    start = start or future()
    slot_id = int(
        await conn.fetchval(
            "INSERT INTO slots (doctor_id, room_id, procedure_type, start_time, end_time)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING id",
            doctor_id,
            room_id,
            procedure_type,
            start,
            start + timedelta(hours=hours),
        )
    )
    for equipment_id, quantity in equipment:
        await conn.execute(
            "INSERT INTO slot_equipment (slot_id, equipment_id, quantity) VALUES ($1, $2, $3)",
            slot_id,
            equipment_id,
            quantity,
        )
    return slot_id


def make_booking(**overrides: Any) -> Booking:
    now = overrides.pop("now", datetime(2030, 1, 1, tzinfo=UTC))
    fields: dict[str, Any] = {
        "id": 1,
        "slot_id": 1,
        "patient_id": "patient-1",
        "status": BookingStatus.PENDING,
        "failure_reason": None,
        "create_time": now,
        "expire_time": now + timedelta(seconds=120),
        "update_time": now,
        "request_id": "",
    }
    fields.update(overrides)
    return Booking(**fields)


def make_usage(start_hour: float, end_hour: float, quantity: int = 1) -> Usage:
    base = datetime(2030, 1, 1, tzinfo=UTC)
    return Usage(base + timedelta(hours=start_hour), base + timedelta(hours=end_hour), quantity)


async def snapshot(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to show an error changed nothing."""
    tables = ("rooms", "doctors", "equipment", "slots", "slot_equipment", "bookings")
    return {t: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY 1, 2")] for t in tables}


def status_details(status: status_pb2.Status) -> tuple[error_details_pb2.ErrorInfo | None, list[tuple[str, str]]]:
    """(ErrorInfo, [(field, description)]) packed in a google.rpc.Status."""
    info: error_details_pb2.ErrorInfo | None = None
    violations: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = [(v.field, v.description) for v in bad.field_violations]
    return info, violations


def error_details(error: grpc.aio.AioRpcError) -> tuple[error_details_pb2.ErrorInfo | None, list[tuple[str, str]]]:
    """(ErrorInfo, [(field, description)]) from an error's google.rpc.Status trailer."""
    raw = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    if raw is None:
        return None, []
    return status_details(status_pb2.Status.FromString(raw if isinstance(raw, bytes) else raw.encode()))
