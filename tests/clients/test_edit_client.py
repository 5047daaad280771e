"""The client's edit and retire methods against the real server: only the fields given change, typed refusals."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest
from orflow.v1 import booking_pb2, resources_pb2
from orflow_client import (
    BlockingOrFlowClient,
    EquipmentInUse,
    EtagMismatch,
    OrFlowClient,
    ResourceInUse,
    ResourceRetired,
    RoomBusy,
)

from ..auth import ADMIN_TOKEN
from ..factories import future, insert_equipment, insert_room, insert_slot


async def test_edits_change_only_the_fields_given_and_stale_etags_raise(
    client: OrFlowClient, db: asyncpg.Connection
) -> None:
    doctor = await client.create_doctor(name="Dr. Client", specialty="ENT")
    renamed = await client.update_doctor(doctor.id, name="Dr. Client-Ray", etag=doctor.etag)
    assert (renamed.name, renamed.specialty) == ("Dr. Client-Ray", "ENT")
    with pytest.raises(EtagMismatch) as stale:
        await client.update_doctor(doctor.id, specialty="Neurosurgery", etag=doctor.etag)
    assert stale.value.metadata["etag"] == renamed.etag


async def test_counts_moves_and_retirements_raise_their_own_exceptions(
    client: OrFlowClient, db: asyncpg.Connection
) -> None:
    item = await insert_equipment(db, quantity=2)
    room = await insert_room(db)
    start = future(30)
    slot_id = await insert_slot(db, start=start, equipment=[(item, 1)])
    busy = await insert_slot(db, room_id=room, start=start + timedelta(hours=5))
    held = await client.create_booking(slot_id=slot_id, patient_id="p-client-edit")
    await client.create_booking(slot_id=busy, patient_id="p-client-other")

    with pytest.raises(EquipmentInUse) as in_use:
        await client.update_equipment(item, quantity=0)
    assert in_use.value.metadata["booking_ids"] == str(held.id)
    with pytest.raises(RoomBusy):
        await client.update_slot(
            slot_id, room_id=room, start_time=start + timedelta(hours=5), end_time=start + timedelta(hours=7)
        )
    moved = await client.update_slot(
        slot_id, start_time=start + timedelta(hours=1), end_time=start + timedelta(hours=3)
    )
    assert moved.start_time.ToDatetime().replace(tzinfo=start.tzinfo) == start + timedelta(hours=1)

    with pytest.raises(ResourceInUse) as needed:
        await client.retire_equipment(item)
    assert needed.value.metadata["booking_ids"] == str(held.id)
    retired = await client.retire_equipment(item, cancel_bookings=True, note="sent for repair")
    assert [b.cancellation_reason for b in retired.cancelled_bookings] == [
        booking_pb2.CANCELLATION_REASON_EQUIPMENT_UNAVAILABLE
    ]
    with pytest.raises(ResourceRetired):
        await client.create_booking(slot_id=slot_id, patient_id="p-client-edit")
    assert [s.id async for s in client.list_slots(show_retired=True) if s.id == slot_id] == [slot_id]
    assert [s.id async for s in client.list_slots() if s.id == slot_id] == []


async def test_the_blocking_client_retires_a_room(target: str, db: asyncpg.Connection) -> None:
    room = await insert_room(db)

    def run() -> resources_pb2.Room:
        with BlockingOrFlowClient(target, token=ADMIN_TOKEN) as blocking:
            renamed = blocking.update_room(room, name="Theatre To Close")
            return blocking.retire_room(room, etag=renamed.etag, note="closed for works").room

    closed = await asyncio.to_thread(run)
    assert closed.name == "Theatre To Close" and closed.HasField("retire_time")
