"""Sites, rooms, doctors and equipment types: creating and reading them (edits and retirements: db/edits.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from ..domain.models import Doctor, Equipment, Room, Site
from .connection import Conn
from .errors import translate

SITE_COLUMNS = "id, name, display_name, time_zone"
ROOM_COLUMNS = "id, name, site_id, turnover, revision, retire_time"
DOCTOR_COLUMNS = "id, name, specialty, revision, retire_time"
EQUIPMENT_COLUMNS = "id, name, quantity, revision, retire_time"


def site_from_row(row: asyncpg.Record) -> Site:
    return Site(id=row["id"], name=row["name"], display_name=row["display_name"], time_zone=row["time_zone"])


def room_from_row(row: asyncpg.Record) -> Room:
    return Room(
        id=row["id"],
        name=row["name"],
        site_id=row["site_id"],
        turnover=row["turnover"],
        revision=row["revision"],
        retire_time=row["retire_time"],
    )


def doctor_from_row(row: asyncpg.Record) -> Doctor:
    return Doctor(
        id=row["id"],
        name=row["name"],
        specialty=row["specialty"],
        revision=row["revision"],
        retire_time=row["retire_time"],
    )


def equipment_from_row(row: asyncpg.Record) -> Equipment:
    return Equipment(
        id=row["id"],
        name=row["name"],
        quantity=row["quantity"],
        revision=row["revision"],
        retire_time=row["retire_time"],
    )


async def insert_site(conn: Conn, *, name: str, display_name: str, time_zone: str) -> Site:
    """A new site; its zone was checked against tzdata by the caller (domain/sites.py)."""
    try:
        row = await conn.fetchrow(
            f"INSERT INTO sites (name, display_name, time_zone) VALUES ($1, $2, $3) RETURNING {SITE_COLUMNS}",
            name,
            display_name,
            time_zone,
        )
    except asyncpg.UniqueViolationError as exc:
        raise (translate(exc) or exc) from exc
    assert row is not None
    return site_from_row(row)


async def list_sites(conn: Conn) -> list[Site]:
    return [site_from_row(r) for r in await conn.fetch(f"SELECT {SITE_COLUMNS} FROM sites ORDER BY name, id")]


async def fetch_site(conn: Conn, site_id: int) -> Site | None:
    row = await conn.fetchrow(f"SELECT {SITE_COLUMNS} FROM sites WHERE id = $1", site_id)
    return None if row is None else site_from_row(row)


async def insert_room(conn: Conn, *, name: str, site_id: int, turnover: timedelta | None) -> Room:
    """A new room in site `site_id` (0: the default, oldest site; migration 0009), with its own turnover or None."""
    try:
        row = await conn.fetchrow(
            f"INSERT INTO rooms (name, site_id, turnover)"
            f" VALUES ($1, coalesce(nullif($2::bigint, 0), orflow_default_site_id()), $3) RETURNING {ROOM_COLUMNS}",
            name,
            site_id,
            turnover,
        )
    except asyncpg.UniqueViolationError as exc:
        raise (translate(exc) or exc) from exc
    assert row is not None
    return room_from_row(row)


async def list_rooms(conn: Conn) -> list[Room]:
    return [room_from_row(r) for r in await conn.fetch(f"SELECT {ROOM_COLUMNS} FROM rooms ORDER BY name, id")]


async def retire_times(conn: Conn, table: str, ids: Sequence[int]) -> dict[int, datetime | None]:
    """id -> retire time (None while in service) of the rows that exist; `table` is one of _RETIRABLE_TABLES."""
    if table not in _RETIRABLE_TABLES:
        raise ValueError(f"not a table of resources: {table!r}")
    rows = await conn.fetch(f"SELECT id, retire_time FROM {table} WHERE id = ANY($1::bigint[])", list(ids))
    return {r["id"]: r["retire_time"] for r in rows}


_RETIRABLE_TABLES = frozenset({"rooms", "doctors", "equipment"})


async def insert_doctor(conn: Conn, *, name: str, specialty: str) -> Doctor:
    row = await conn.fetchrow(
        f"INSERT INTO doctors (name, specialty) VALUES ($1, $2) RETURNING {DOCTOR_COLUMNS}",
        name,
        specialty,
    )
    assert row is not None
    return doctor_from_row(row)


async def list_doctors(
    conn: Conn, *, query: str, after: tuple[str, int] | None, limit: int, is_retired_shown: bool = False
) -> list[Doctor]:
    """Doctors whose name or specialty contains `query`, by (name, id); the retired only when shown."""
    pattern = "%" + query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = await conn.fetch(
        f"""
        SELECT {DOCTOR_COLUMNS} FROM doctors
        WHERE (lower(name) LIKE $1 OR lower(specialty) LIKE $1)
          AND ($2::text IS NULL OR (name, id) > ($2::text, $3::bigint))
          AND ($5::boolean OR retire_time IS NULL)
        ORDER BY name, id
        LIMIT $4
        """,
        pattern,
        after[0] if after else None,
        after[1] if after else None,
        limit,
        is_retired_shown,
    )
    return [doctor_from_row(r) for r in rows]


async def insert_equipment(conn: Conn, *, name: str, quantity: int) -> Equipment:
    try:
        row = await conn.fetchrow(
            f"INSERT INTO equipment (name, quantity) VALUES ($1, $2) RETURNING {EQUIPMENT_COLUMNS}",
            name,
            quantity,
        )
    except asyncpg.UniqueViolationError as exc:
        raise (translate(exc) or exc) from exc
    assert row is not None
    return equipment_from_row(row)


async def list_equipment(conn: Conn, ids: Sequence[int] | None = None) -> list[Equipment]:
    """Every equipment type, or only those with the given ids."""
    rows = await conn.fetch(
        f"SELECT {EQUIPMENT_COLUMNS} FROM equipment WHERE $1::bigint[] IS NULL OR id = ANY($1) ORDER BY name, id",
        None if ids is None else list(ids),
    )
    return [equipment_from_row(r) for r in rows]
