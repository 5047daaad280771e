"""Rooms, doctors and equipment types."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from ..domain.models import Doctor, Equipment, Room
from .connection import Conn
from .errors import translate


async def insert_room(conn: Conn, *, name: str) -> Room:
    try:
        row = await conn.fetchrow("INSERT INTO rooms (name) VALUES ($1) RETURNING id, name", name)
    except asyncpg.UniqueViolationError as exc:
        raise (translate(exc) or exc) from exc
    assert row is not None
    return Room(id=row["id"], name=row["name"])


async def list_rooms(conn: Conn) -> list[Room]:
    rows = await conn.fetch("SELECT id, name FROM rooms ORDER BY name, id")
    return [Room(id=r["id"], name=r["name"]) for r in rows]


async def room_exists(conn: Conn, room_id: int) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM rooms WHERE id = $1)", room_id))


async def insert_doctor(conn: Conn, *, name: str, specialty: str) -> Doctor:
    row = await conn.fetchrow(
        "INSERT INTO doctors (name, specialty) VALUES ($1, $2) RETURNING id, name, specialty",
        name,
        specialty,
    )
    assert row is not None
    return Doctor(id=row["id"], name=row["name"], specialty=row["specialty"])


async def doctor_exists(conn: Conn, doctor_id: int) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM doctors WHERE id = $1)", doctor_id))


async def list_doctors(conn: Conn, *, query: str, after: tuple[str, int] | None, limit: int) -> list[Doctor]:
    """Doctors whose name or specialty contains `query`, by (name, id)."""
    pattern = "%" + query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = await conn.fetch(
        """
        SELECT id, name, specialty FROM doctors
        WHERE (lower(name) LIKE $1 OR lower(specialty) LIKE $1)
          AND ($2::text IS NULL OR (name, id) > ($2::text, $3::bigint))
        ORDER BY name, id
        LIMIT $4
        """,
        pattern,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [Doctor(id=r["id"], name=r["name"], specialty=r["specialty"]) for r in rows]


async def insert_equipment(conn: Conn, *, name: str, quantity: int) -> Equipment:
    try:
        row = await conn.fetchrow(
            "INSERT INTO equipment (name, quantity) VALUES ($1, $2) RETURNING id, name, quantity",
            name,
            quantity,
        )
    except asyncpg.UniqueViolationError as exc:
        raise (translate(exc) or exc) from exc
    assert row is not None
    return Equipment(id=row["id"], name=row["name"], quantity=row["quantity"])


async def list_equipment(conn: Conn, ids: Sequence[int] | None = None) -> list[Equipment]:
    """Every equipment type, or only those with the given ids."""
    rows = await conn.fetch(
        "SELECT id, name, quantity FROM equipment WHERE $1::bigint[] IS NULL OR id = ANY($1) ORDER BY name, id",
        None if ids is None else list(ids),
    )
    return [Equipment(id=r["id"], name=r["name"], quantity=r["quantity"]) for r in rows]
