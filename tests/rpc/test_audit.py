"""The audit trail: one event per change, by whom, written atomically with the change, append-only."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import grpc
import pytest
from orflow_client import OrFlowClient, SlotTaken
from orflow_server.domain.access import Role
from orflow_server.ops.context import OpsContext
from orflow_server.ops.expiry import sweep_overdue_holds
from orflow_server.ops.scheduling import NoQueueExpiryScheduler

from ..auth import ADMIN_TOKEN, token_for
from ..factories import future, insert_slot, snapshot


async def _last_id(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT coalesce(max(id), 0) FROM audit_events"))


async def _events_since(db: asyncpg.Connection, since: int) -> list[tuple[str, str, str, str]]:
    rows = await db.fetch(
        "SELECT action, actor, actor_role, resource_id FROM audit_events WHERE id > $1 ORDER BY id", since
    )
    return [(r["action"], r["actor"], r["actor_role"], r["resource_id"]) for r in rows]


@pytest.fixture
async def admin_client(target: str) -> OrFlowClient:
    async with OrFlowClient(target, token=ADMIN_TOKEN) as client:
        yield client  # type: ignore[misc]


async def test_inventory_and_slot_changes_are_audited_with_the_admin(
    admin_client: OrFlowClient, db: asyncpg.Connection
) -> None:
    since = await _last_id(db)
    room = await admin_client.create_room(name="OR audit")
    doctor = await admin_client.create_doctor(name="Dr. Audit", specialty="Audit Surgery")
    vent = await admin_client.create_equipment(name="Audit vent", quantity=2)
    start = future()
    slot = await admin_client.create_slot(
        doctor_id=doctor.id,
        procedure_type="Audited",
        room_id=room.id,
        start_time=start,
        end_time=start + timedelta(hours=1),
        required_equipment={vent.id: 1},
    )

    assert await _events_since(db, since) == [
        ("room.created", "test-admin", "admin", str(room.id)),
        ("doctor.created", "test-admin", "admin", str(doctor.id)),
        ("equipment.created", "test-admin", "admin", str(vent.id)),
        ("slot.created", "test-admin", "admin", str(slot.id)),
        ("slot_equipment.created", "test-admin", "admin", str(slot.id)),
    ]


async def test_a_booking_life_is_audited_with_each_actor(
    target: str, admin_client: OrFlowClient, db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    first, second = await insert_slot(db, start=future(24)), await insert_slot(db, start=future(48))
    since = await _last_id(db)
    async with OrFlowClient(target, token=token_for(Role.PATIENT, "p-audit")) as patient:
        hold = await patient.create_booking(slot_id=first)
        await patient.confirm_booking(hold.id)
        other = await patient.create_booking(slot_id=second)
    await admin_client.cancel_booking(hold.id)
    await db.execute("UPDATE bookings SET expire_time = now() - interval '1 second' WHERE id = $1", other.id)
    overdue_since = await _last_id(db)
    await sweep_overdue_holds(
        OpsContext(pool=pool, hold_ttl=timedelta(seconds=120), turnover=timedelta(0), expiry=NoQueueExpiryScheduler())
    )

    events = await _events_since(db, since)
    assert events[:4] == [
        ("booking.created", "p-audit", "patient", str(hold.id)),
        ("booking.confirmed", "p-audit", "patient", str(hold.id)),
        ("booking.created", "p-audit", "patient", str(other.id)),
        ("booking.cancelled", "test-admin", "admin", str(hold.id)),
    ]
    # The test's own raw UPDATE is audited too, as the database role that made it.
    assert events[4] == ("booking.updated", "db:postgres", "database", str(other.id))
    assert await _events_since(db, overdue_since) == [("booking.expired", "expiry-worker", "system", str(other.id))]


async def test_events_carry_the_record_before_and_after(admin_client: OrFlowClient, db: asyncpg.Connection) -> None:
    started = await db.fetchval("SELECT clock_timestamp()")  # ids restart per test: earlier events share them
    hold = await admin_client.create_booking(slot_id=await insert_slot(db), patient_id="p-doc")
    await admin_client.confirm_booking(hold.id)

    events = [
        e
        async for e in admin_client.list_audit_events(
            resource_type="booking", resource_id=str(hold.id), start_time=started
        )
    ]

    assert [e.action for e in events] == ["booking.confirmed", "booking.created"]  # newest first
    confirmed, created = events
    assert (confirmed.before["status"], confirmed.after["status"]) == ("PENDING", "CONFIRMED")
    assert not created.HasField("before") and created.after["patient_id"] == "p-doc"
    assert confirmed.event_time.ToDatetime() >= created.event_time.ToDatetime()


async def test_a_refused_change_leaves_no_event(admin_client: OrFlowClient, db: asyncpg.Connection) -> None:
    slot_id = await insert_slot(db)
    await admin_client.create_booking(slot_id=slot_id, patient_id="p-1")
    before, since = await snapshot(db), await _last_id(db)

    with pytest.raises(SlotTaken):
        await admin_client.create_booking(slot_id=slot_id, patient_id="p-2")
    with pytest.raises(asyncpg.IntegrityConstraintViolationError):  # a raw insert the constraints refuse
        await db.execute(
            "INSERT INTO bookings (slot_id, room_id, doctor_id, start_time, end_time, room_free_time, patient_id,"
            " status, create_time, expire_time, update_time)"
            " SELECT id, room_id, doctor_id, start_time, end_time, end_time, 'p-1', 'PENDING', now(),"
            " now() + interval '1 minute', now() FROM slots WHERE id = $1",
            slot_id,
        )

    assert await _last_id(db) == since
    assert await snapshot(db) == before


async def test_the_trail_is_append_only(admin_client: OrFlowClient, db: asyncpg.Connection) -> None:
    await admin_client.create_room(name="OR append-only")
    for statement in ("UPDATE audit_events SET actor = 'nobody'", "DELETE FROM audit_events", "TRUNCATE audit_events"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await db.execute(statement)
    assert await db.fetchval("SELECT count(*) FROM audit_events WHERE actor = 'nobody'") == 0


async def test_a_reset_is_one_event_and_keeps_the_trail(admin_client: OrFlowClient, db: asyncpg.Connection) -> None:
    await admin_client.create_room(name="OR before reset")
    count_before = await db.fetchval("SELECT count(*) FROM audit_events")

    await admin_client.seed_database()

    resets = [e async for e in admin_client.list_audit_events(action="database.reset")]
    assert resets and resets[0].actor == "test-admin"
    assert await db.fetchval("SELECT count(*) FROM audit_events") > count_before  # nothing was wiped


async def test_list_audit_events_filters_and_pages(admin_client: OrFlowClient, db: asyncpg.Connection) -> None:
    since = await _last_id(db)
    for i in range(5):
        await admin_client.create_room(name=f"OR page {i}")

    rooms = [e async for e in admin_client.list_audit_events(action="room.created", page_size=2)]
    mine = [e for e in rooms if e.id > since]
    page = await admin_client.list_audit_events_page(action="room.created", page_size=2)

    assert [e.after["name"] for e in mine] == [f"OR page {i}" for i in reversed(range(5))]
    assert len(page.events) == 2 and page.next_page_token


async def test_list_audit_events_rejects_a_backwards_window(target: str, admin_client: OrFlowClient) -> None:
    from orflow_client import InvalidArgument

    with pytest.raises(InvalidArgument) as caught:
        await admin_client.list_audit_events_page(start_time=future(2), end_time=future(1))
    assert [v.field for v in caught.value.field_violations] == ["end_time"]
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
