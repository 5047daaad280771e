"""OrFlowClient against the real server: every method, the page iterators and the live stream."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest
from orflow.v1 import booking_pb2, slot_service_pb2
from orflow_client import DeadlineExceeded, OrFlowClient

from ..auth import ADMIN_TOKEN
from ..factories import future, insert_doctor, insert_room, insert_slot


async def test_inventory_and_slot_creation_round_trip(client: OrFlowClient, db: asyncpg.Connection) -> None:
    room = await client.create_room(name="OR 7")
    doctor = await client.create_doctor(name="Dr. Okafor", specialty="Cardiothoracic Surgery")
    ventilator = await client.create_equipment(name="Ventilator", quantity=2)
    start = future()
    slot = await client.create_slot(
        doctor_id=doctor.id,
        procedure_type="CABG",
        room_id=room.id,
        start_time=start,
        end_time=start + timedelta(hours=3),
        required_equipment={ventilator.id: 1},
    )

    assert [r.name for r in await client.list_rooms()] == ["OR 7"]
    assert [(e.name, e.quantity) for e in await client.list_equipment()] == [("Ventilator", 2)]
    fetched = await client.get_slot(slot.id)
    assert (fetched.room.name, fetched.doctor.name, fetched.procedure_type) == ("OR 7", "Dr. Okafor", "CABG")
    assert fetched.start_time.ToDatetime().replace(tzinfo=start.tzinfo) == start
    assert [(n.equipment_name, n.quantity) for n in fetched.required_equipment] == [("Ventilator", 1)]
    assert await db.fetchval("SELECT count(*) FROM slots") == 1


async def test_list_slots_walks_every_page_in_order(client: OrFlowClient, db: asyncpg.Connection) -> None:
    room, doctor = await insert_room(db), await insert_doctor(db)
    made = [await insert_slot(db, room_id=room, doctor_id=doctor, start=future(24 + 3 * i)) for i in range(7)]
    await insert_slot(db, procedure_type="Hip replacement")

    walked = [s.id async for s in client.list_slots(procedure_type="Appendectomy", page_size=3)]
    first_page = await client.list_slots_page(procedure_type="Appendectomy", page_size=3)

    assert walked == made
    assert [s.id for s in first_page.slots] == made[:3] and first_page.next_page_token


async def test_list_slots_filters_by_window_and_availability(client: OrFlowClient, db: asyncpg.Connection) -> None:
    early = await insert_slot(db, start=future(24))
    late = await insert_slot(db, start=future(72))
    await client.create_booking(slot_id=early, patient_id="p-window")

    in_window = [s.id async for s in client.list_slots(window_start=future(48), window_end=future(96))]
    free = [s.id async for s in client.list_slots(available_only=True)]

    assert in_window == [late]
    assert free == [late]


async def test_naive_datetimes_are_refused_before_any_call(client: OrFlowClient) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await client.list_slots_page(window_start=future().replace(tzinfo=None))


async def test_list_doctors_searches_and_walks_pages(client: OrFlowClient, db: asyncpg.Connection) -> None:
    for i in range(5):
        await insert_doctor(db, name=f"Dr. Neuro {i}", specialty="Neurosurgery")
    await insert_doctor(db, name="Dr. Bones", specialty="Orthopedics")

    neuro = [d.name async for d in client.list_doctors(query="neuro", page_size=2)]
    everyone = [d.name async for d in client.list_doctors()]

    assert sorted(neuro) == [f"Dr. Neuro {i}" for i in range(5)]
    assert len(everyone) == 6


async def test_booking_lifecycle(client: OrFlowClient, db: asyncpg.Connection) -> None:
    first, second = await insert_slot(db), await insert_slot(db)

    hold = await client.create_booking(slot_id=first, patient_id="p-life")
    confirmed = await client.confirm_booking(hold.id)
    fetched = await client.get_booking(hold.id)
    other = await client.create_booking(slot_id=second, patient_id="p-other", request_id="ehr-42")
    cancelled = await client.cancel_booking(other.id)

    assert hold.status == booking_pb2.BOOKING_STATUS_PENDING and hold.request_id  # the client made one
    assert confirmed.status == fetched.status == booking_pb2.BOOKING_STATUS_CONFIRMED
    assert other.request_id == "ehr-42"
    assert cancelled.status == booking_pb2.BOOKING_STATUS_CANCELLED


async def test_list_bookings_filters_and_walks_pages(client: OrFlowClient, db: asyncpg.Connection) -> None:
    slots = [await insert_slot(db, start=future(24 + 3 * i)) for i in range(5)]
    made = [await client.create_booking(slot_id=s, patient_id=f"p-{i % 2}") for i, s in enumerate(slots)]
    await client.confirm_booking(made[0].id)

    everything = [b.id async for b in client.list_bookings(page_size=2)]
    patient_zero = [b.id async for b in client.list_bookings(patient_id="p-0")]
    confirmed = [b.id async for b in client.list_bookings(status=booking_pb2.BOOKING_STATUS_CONFIRMED)]
    one_page = await client.list_bookings_page(page_size=2)

    assert sorted(everything) == sorted(b.id for b in made)
    assert sorted(patient_zero) == sorted(b.id for b in made[::2])
    assert confirmed == [made[0].id]
    assert len(one_page.bookings) == 2 and one_page.next_page_token


async def test_seed_database_loads_the_demo_data(client: OrFlowClient, db: asyncpg.Connection) -> None:
    counts = await client.seed_database()

    assert counts.slot_count > 0
    assert await db.fetchval("SELECT count(*) FROM slots") == counts.slot_count
    assert len(await client.list_rooms()) == counts.room_count


async def test_watch_slots_streams_a_snapshot_then_changes(client: OrFlowClient, db: asyncpg.Connection) -> None:
    slot_id = await insert_slot(db, procedure_type="Watched")
    stream = client.watch_slots(procedure_type="Watched")
    kinds: list[tuple[int, int]] = []

    async def read_until_booked() -> None:
        async for change in stream:
            kinds.append((change.kind, change.slot.id))
            if change.kind == slot_service_pb2.SLOT_CHANGE_KIND_SNAPSHOT_COMPLETE:
                await client.create_booking(slot_id=slot_id, patient_id="p-watch")
            if change.kind == slot_service_pb2.SLOT_CHANGE_KIND_BOOKED:
                return

    await asyncio.wait_for(read_until_booked(), timeout=10)
    await stream.aclose()  # type: ignore[attr-defined]

    assert kinds[0] == (slot_service_pb2.SLOT_CHANGE_KIND_SNAPSHOT, slot_id)
    assert kinds[-1] == (slot_service_pb2.SLOT_CHANGE_KIND_BOOKED, slot_id)


async def test_a_call_gets_the_default_deadline(target: str, db: asyncpg.Connection) -> None:
    """A tiny default deadline makes even a healthy call fail DEADLINE_EXCEEDED: the deadline is sent."""
    async with OrFlowClient(target, token=ADMIN_TOKEN, timeout=0.000_001) as hurried:
        with pytest.raises(DeadlineExceeded):
            await hurried.list_rooms()
        assert await hurried.list_rooms(timeout=10) == []
