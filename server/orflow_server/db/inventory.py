"""Sites, rooms, doctors and equipment types."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import asyncpg

from ..domain.models import Doctor, Equipment, Room, Site
from .connection import Conn
from .errors import translate

_SITE_COLUMNS = "id, name, display_name, time_zone"
_ROOM_COLUMNS = "id, name, site_id, turnover"


def _site(row: asyncpg.Record) -> Site:
    return Site(id=row["id"], name=row["name"], display_name=row["display_name"], time_zone=row["time_zone"])


def _room(row: asyncpg.Record) -> Room:
    return Room(id=row["id"], name=row["name"], site_id=row["site_id"], turnover=row["turnover"])


async def insert_site(conn: Conn, *, name: str, display_name: str, time_zone: str) -> Site:
    """A new site; its zone was checked against tzdata by the caller (domain/sites.py)."""
    try:
        row = await conn.fetchrow(
            f"INSERT INTO sites (name, display_name, time_zone) VALUES ($1, $2, $3) RETURNING {_SITE_COLUMNS}",
            name,
            display_name,
            time_zone,
        )
    except asyncpg.UniqueViolationError as exc:
        raise (translate(exc) or exc) from exc
    assert row is not None
    return _site(row)


async def list_sites(conn: Conn) -> list[Site]:
    return [_site(r) for r in await conn.fetch(f"SELECT {_SITE_COLUMNS} FROM sites ORDER BY name, id")]


async def fetch_site(conn: Conn, site_id: int) -> Site | None:
    row = await conn.fetchrow(f"SELECT {_SITE_COLUMNS} FROM sites WHERE id = $1", site_id)
    return None if row is None else _site(row)


async def insert_room(conn: Conn, *, name: str, site_id: int, turnover: timedelta | None) -> Room:
    """A new room in site `site_id` (0: the default, oldest site; migration 0009), with its own turnover or None."""
    try:
        row = await conn.fetchrow(
            f"INSERT INTO rooms (name, site_id, turnover)"
            f" VALUES ($1, coalesce(nullif($2::bigint, 0), orflow_default_site_id()), $3) RETURNING {_ROOM_COLUMNS}",
            name,
            site_id,
            turnover,
        )
    except asyncpg.UniqueViolationError as exc:
        raise (translate(exc) or exc) from exc
    assert row is not None
    return _room(row)


async def list_rooms(conn: Conn) -> list[Room]:
    return [_room(r) for r in await conn.fetch(f"SELECT {_ROOM_COLUMNS} FROM rooms ORDER BY name, id")]


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
