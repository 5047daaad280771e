"""Inventory use cases: rooms, doctors and equipment types."""

from __future__ import annotations

from ..db import inventory as db
from ..db.audit import set_actor
from ..domain.access import Actor
from ..domain.models import Doctor, Equipment, Room
from .context import OpsContext


async def create_room(ctx: OpsContext, actor: Actor, *, name: str) -> Room:
    async with ctx.connection() as conn, conn.transaction():
        await set_actor(conn, actor)
        return await db.insert_room(conn, name=name)


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
