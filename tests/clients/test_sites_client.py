"""The client's site methods against the real server: typed results, a typed refusal of an unknown zone."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from orflow.v1 import resources_pb2
from orflow_client import BlockingOrFlowClient, InvalidArgument, NotFound, OrFlowClient

from ..auth import ADMIN_TOKEN
from ..factories import insert_slot


async def test_a_site_its_room_and_its_local_day_through_the_async_client(
    client: OrFlowClient, db: asyncpg.Connection
) -> None:
    name = f"client-{uuid.uuid4().hex[:8]}"
    site = await client.create_site(name=name, display_name="Client Hospital", time_zone="Europe/London")
    assert site in await client.list_sites()
    room = await client.create_room(name=f"Hybrid {name}", site_id=site.id, turnover=timedelta(minutes=40))
    assert (room.site_id, room.turnover.ToTimedelta()) == (site.id, timedelta(minutes=40))
    autumn = await insert_slot(db, room_id=room.id, start=datetime(2027, 10, 31, 0, 30, tzinfo=UTC), hours=1)
    await insert_slot(db, room_id=room.id, start=datetime(2027, 11, 1, 0, 0, tzinfo=UTC), hours=1)  # the next day

    day = [slot async for slot in client.list_slots(site_id=site.id, day=date(2027, 10, 31))]

    assert [slot.id for slot in day] == [autumn]
    start = day[0].start_time.ToDatetime(tzinfo=UTC).astimezone(ZoneInfo(day[0].site.time_zone))
    assert start.strftime("%H:%M %Z") == "01:30 BST"
    with pytest.raises(NotFound):
        await client.create_room(name=f"Lost {name}", site_id=987_654)


async def test_the_blocking_client_refuses_an_unknown_zone_by_field(target: str) -> None:
    def run() -> list[resources_pb2.Site]:
        with BlockingOrFlowClient(target, token=ADMIN_TOKEN) as blocking:
            with pytest.raises(InvalidArgument) as refused:
                blocking.create_site(name="nowhere", display_name="Nowhere", time_zone="Atlantis/Capital")
            assert [v.field for v in refused.value.field_violations] == ["time_zone"]
            return blocking.list_sites()

    sites = await asyncio.to_thread(run)
    assert "nowhere" not in {site.name for site in sites}
