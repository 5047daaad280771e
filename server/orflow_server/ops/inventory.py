"""Inventory use cases: sites, rooms, doctors and equipment types."""

from __future__ import annotations

from datetime import timedelta

from ..db import inventory as db
from ..db.audit import set_actor
from ..domain.access import Actor
from ..domain.errors import NotFoundError
from ..domain.models import Doctor, Equipment, Room, Site
from .context import OpsContext


async def create_site(ctx: OpsContext, actor: Actor, *, name: str, display_name: str, time_zone: str) -> Site:
    """A new site; the caller checked its zone against tzdata (domain/sites.py). Audited as site.created."""
    async with ctx.connection() as conn, conn.transaction():
        await set_actor(conn, actor)
        return await db.insert_site(conn, name=name, display_name=display_name, time_zone=time_zone)


async def list_sites(ctx: OpsContext) -> list[Site]:
    async with ctx.connection() as conn:
        return await db.list_sites(conn)


async def create_room(ctx: OpsContext, actor: Actor, *, name: str, site_id: int, turnover: timedelta | None) -> Room:
    """A room in `site_id` (0: the default site), with its own turnover or None for the server's default."""
    async with ctx.connection() as conn, conn.transaction():
        await set_actor(conn, actor)
        if site_id and await db.fetch_site(conn, site_id) is None:
            raise NotFoundError("site", site_id)
        return await db.insert_room(conn, name=name, site_id=site_id, turnover=turnover)


async def list_rooms(ctx: OpsContext) -> list[Room]:
    async with ctx.connection() as conn:
        return await db.list_rooms(conn)


async def create_doctor(ctx: OpsContext, actor: Actor, *, name: str, specialty: str) -> Doctor:
    async with ctx.connection() as conn, conn.transaction():
        await set_actor(conn, actor)
        return await db.insert_doctor(conn, name=name, specialty=specialty)


async def create_equipment(ctx: OpsContext, actor: Actor, *, name: str, quantity: int) -> Equipment:
    async with ctx.connection() as conn, conn.transaction():
        await set_actor(conn, actor)
        return await db.insert_equipment(conn, name=name, quantity=quantity)


async def list_equipment(ctx: OpsContext) -> list[Equipment]:
    async with ctx.connection() as conn:
        return await db.list_equipment(conn)
