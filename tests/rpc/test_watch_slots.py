"""WatchSlots: a snapshot first, then every committed change, with resyncs instead of gaps."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import grpc
import pytest
import pytest_asyncio
from orflow.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    booking_service_pb2,
    booking_service_pb2_grpc,
    slot_service_pb2,
    slot_service_pb2_grpc,
)
from orflow.v1.slot_service_pb2 import WatchSlotsRequest, WatchSlotsResponse
from orflow_server.app import OrFlowServer, build_server
from orflow_server.db.changes import parse_notice
from orflow_server.db.slots import fetch_slot
from orflow_server.domain.changes import Signal, SlotChange, SlotChangeKind, SlotsReset
from orflow_server.domain.filters import SlotFilters
from orflow_server.domain.models import Slot
from orflow_server.live import SlotChangeHub
from orflow_server.ops.context import OpsContext
from orflow_server.ops.scheduling import NoQueueExpiryScheduler
from orflow_server.ops.watch import slot_reader, watch_slots
from orflow_server.rpc.convert import CHANGE_KIND_TO_PROTO, timestamp
from orflow_server.rpc.handlers import ResponseSerializers
from orflow_server.rpc.slot_service import SHARED_MESSAGES, _SharedMessages

from tests.auth import authorized_channel
from tests.conftest import TEST_SETTINGS
from tests.factories import future, insert_doctor, insert_room, insert_site, insert_slot

SNAPSHOT = slot_service_pb2.SLOT_CHANGE_KIND_SNAPSHOT
COMPLETE = slot_service_pb2.SLOT_CHANGE_KIND_SNAPSHOT_COMPLETE
CREATED = slot_service_pb2.SLOT_CHANGE_KIND_CREATED
BOOKED = slot_service_pb2.SLOT_CHANGE_KIND_BOOKED
CONFIRMED = slot_service_pb2.SLOT_CHANGE_KIND_CONFIRMED
RELEASED = slot_service_pb2.SLOT_CHANGE_KIND_RELEASED
AVAILABILITY = slot_service_pb2.SLOT_CHANGE_KIND_AVAILABILITY_CHANGED


@pytest_asyncio.fixture(loop_scope="session")
async def live_server(pool: asyncpg.Pool, database_url: str) -> AsyncIterator[OrFlowServer]:
    """A server of this test's own, so the test can look at its hub."""
    server = build_server(TEST_SETTINGS, pool=pool, expiry=NoQueueExpiryScheduler(), listen_dsn=database_url)
    await server.start()
    yield server
    await server.stop(grace=None)


@pytest_asyncio.fixture(loop_scope="session")
async def live_channel(live_server: OrFlowServer) -> AsyncIterator[grpc.aio.Channel]:
    async with authorized_channel(f"127.0.0.1:{live_server.port}") as channel:
        yield channel


class Watcher:
    def __init__(self, channel: grpc.aio.Channel, request: WatchSlotsRequest | None = None) -> None:
        self.call = slot_service_pb2_grpc.SlotServiceStub(channel).WatchSlots(request or WatchSlotsRequest())

    async def read(self) -> WatchSlotsResponse:
        message = await asyncio.wait_for(self.call.read(), 10)
        assert isinstance(message, WatchSlotsResponse), message
        return message

    async def snapshot(self) -> list[int]:
        """The ids of one whole snapshot (the next message must start it)."""
        ids = []
        while (message := await self.read()).kind == SNAPSHOT:
            ids.append(message.slot.id)
        assert message.kind == COMPLETE and not message.HasField("slot")
        return ids

    async def change(self) -> tuple[int, int, bool]:
        """(kind, slot id, available) of the next change; resync snapshots in between are skipped."""
        while (message := await self.read()).kind in (SNAPSHOT, COMPLETE):
            pass
        return message.kind, message.slot.id, message.slot.available


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


async def barrier(db: asyncpg.Connection, *watchers: Watcher) -> None:
    """Publishes a slot and waits for it: the fixture's TRUNCATE (an earlier notification, so delivered
    earlier) can no longer interrupt the changes a test expects with a resync.

    A slot the test inserted before the watcher subscribed may be announced once more after the
    snapshot that already holds it: its NOTIFY reaches the server's LISTEN connection only after the
    commit, and a busy machine can delay it past the subscription. Delivery is at least once, so
    those CREATED announcements of earlier slots are skipped here; anything else fails."""
    marker = await insert_slot(db)
    for watcher in watchers:
        while (seen := await watcher.change())[:2] != (CREATED, marker):
            assert seen[0] == CREATED and seen[1] < marker, seen


async def test_two_watchers_see_snapshot_then_book_confirm_cancel_in_order(
    db: asyncpg.Connection, live_channel: grpc.aio.Channel
) -> None:
    slot_id = await insert_slot(db)
    watchers = [Watcher(live_channel), Watcher(live_channel)]
    for watcher in watchers:
        assert await watcher.snapshot() == [slot_id]
    await barrier(db, *watchers)
    bookings = booking_service_pb2_grpc.BookingServiceStub(live_channel)

    created = await bookings.CreateBooking(booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id="p-1"))
    await bookings.ConfirmBooking(booking_service_pb2.ConfirmBookingRequest(booking_id=created.booking.id))
    await bookings.CancelBooking(booking_service_pb2.CancelBookingRequest(booking_id=created.booking.id))

    for watcher in watchers:
        # `available` is read when a message is sent, which may be after the cancel: only kinds are ordered.
        assert (await watcher.change())[:2] == (BOOKED, slot_id)
        assert (await watcher.change())[:2] == (CONFIRMED, slot_id)
        assert await watcher.change() == (RELEASED, slot_id, True)
        watcher.call.cancel()


async def test_slots_blocked_by_a_booking_of_another_slot_are_announced(
    db: asyncpg.Connection, live_channel: grpc.aio.Channel
) -> None:
    """Booking slot A makes B (same room, overlapping) and C (same surgeon, overlapping) unavailable too;
    D (same room, later) and E (elsewhere) are untouched. Cancelling frees B and C again."""
    room, doctor = await insert_room(db), await insert_doctor(db)
    start = future(30)
    a = await insert_slot(db, room_id=room, doctor_id=doctor, start=start, hours=2)
    b = await insert_slot(db, room_id=room, start=start + timedelta(hours=1), hours=2)
    c = await insert_slot(db, doctor_id=doctor, start=start - timedelta(hours=1), hours=2)
    d = await insert_slot(db, room_id=room, start=start + timedelta(hours=2), hours=1)
    e = await insert_slot(db, start=start)
    watcher = Watcher(live_channel)
    assert sorted(await watcher.snapshot()) == sorted([a, b, c, d, e])
    await barrier(db, watcher)
    bookings = booking_service_pb2_grpc.BookingServiceStub(live_channel)

    held = await bookings.CreateBooking(booking_service_pb2.CreateBookingRequest(slot_id=a, patient_id="p-1"))
    booked = {await watcher.change() for _ in range(3)}
    await bookings.CancelBooking(booking_service_pb2.CancelBookingRequest(booking_id=held.booking.id))
    released = {await watcher.change() for _ in range(3)}
    await barrier(db, watcher)  # nothing else (D, E) was announced before this marker

    assert {(kind, slot) for kind, slot, _ in booked} == {(BOOKED, a), (AVAILABILITY, b), (AVAILABILITY, c)}
    assert {(kind, slot) for kind, slot, _ in released} == {(RELEASED, a), (AVAILABILITY, b), (AVAILABILITY, c)}
    # `available` is read when a message is sent: after the cancel, all are free again.
    assert all(available for _, _, available in released)
    watcher.call.cancel()


async def test_an_expired_hold_is_released(db: asyncpg.Connection, live_channel: grpc.aio.Channel) -> None:
    slot_id = await insert_slot(db)
    watcher = Watcher(live_channel)
    await watcher.snapshot()
    await barrier(db, watcher)
    bookings = booking_service_pb2_grpc.BookingServiceStub(live_channel)
    created = await bookings.CreateBooking(booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id="p-1"))
    assert (await watcher.change())[:2] == (BOOKED, slot_id)

    # What the expiry worker does, from another connection and process for all the server knows.
    await db.execute(
        "UPDATE bookings SET status = 'FAILED', failure_reason = 'HOLD_EXPIRED' WHERE id = $1", created.booking.id
    )
    assert await watcher.change() == (RELEASED, slot_id, True)
    watcher.call.cancel()


async def test_created_slots_reach_only_matching_watchers(
    db: asyncpg.Connection, live_channel: grpc.aio.Channel
) -> None:
    room_id, other_room_id, doctor_id = await insert_room(db), await insert_room(db), await insert_doctor(db)
    everything, one_room = Watcher(live_channel), Watcher(live_channel, WatchSlotsRequest(room_id=room_id))
    assert await everything.snapshot() == [] and await one_room.snapshot() == []
    await barrier(db, everything)
    admin = admin_service_pb2_grpc.AdminServiceStub(live_channel)

    async def publish(room: int, hours: float) -> int:
        start = future(hours)
        request = admin_service_pb2.CreateSlotRequest(
            doctor_id=doctor_id,
            procedure_type="Hip Replacement",
            room_id=room,
            start_time=timestamp(start),
            end_time=timestamp(start + timedelta(hours=1)),
        )
        return (await admin.CreateSlot(request)).slot.id

    elsewhere, here = await publish(other_room_id, 30), await publish(room_id, 40)
    assert await everything.change() == (CREATED, elsewhere, True)
    assert await everything.change() == (CREATED, here, True)
    assert await one_room.change() == (CREATED, here, True)
    everything.call.cancel()
    one_room.call.cancel()


async def test_a_site_watcher_sees_only_its_sites_slots_with_their_zone(
    db: asyncpg.Connection, live_channel: grpc.aio.Channel
) -> None:
    london, kolkata = await insert_site(db, time_zone="Europe/London"), await insert_site(db, time_zone="Asia/Kolkata")
    london_room, kolkata_room = await insert_room(db, site_id=london), await insert_room(db, site_id=kolkata)
    before = await insert_slot(db, room_id=london_room, start=future(30))
    await insert_slot(db, room_id=kolkata_room, start=future(31))
    everything, one_site = Watcher(live_channel), Watcher(live_channel, WatchSlotsRequest(site_id=london))
    await everything.snapshot()
    assert await one_site.snapshot() == [before]
    await barrier(db, everything)

    elsewhere = await insert_slot(db, room_id=kolkata_room, start=future(40))
    here = await insert_slot(db, room_id=london_room, start=future(41))

    assert (await everything.change())[:2] == (CREATED, elsewhere)
    assert (await everything.change())[:2] == (CREATED, here)
    message = await one_site.read()
    while message.kind in (SNAPSHOT, COMPLETE):  # a resync after the fixture's TRUNCATE is allowed
        message = await one_site.read()
    assert (message.kind, message.slot.id, message.slot.site.time_zone) == (CREATED, here, "Europe/London")
    everything.call.cancel()
    one_site.call.cancel()


async def test_a_cancelled_stream_leaves_no_subscriber(
    db: asyncpg.Connection, live_server: OrFlowServer, live_channel: grpc.aio.Channel
) -> None:
    assert live_server.hub is not None
    watcher = Watcher(live_channel)
    await watcher.snapshot()
    assert live_server.hub.subscriber_count == 1
    watcher.call.cancel()
    await until(lambda: live_server.hub is not None and live_server.hub.subscriber_count == 0)


async def test_bad_filters_are_invalid_argument(live_channel: grpc.aio.Channel) -> None:
    watcher = Watcher(live_channel, WatchSlotsRequest(room_id=-1))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watcher.read()
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_stopping_the_server_ends_streams_with_unavailable(
    db: asyncpg.Connection, pool: asyncpg.Pool, database_url: str
) -> None:
    server = build_server(TEST_SETTINGS, pool=pool, expiry=NoQueueExpiryScheduler(), listen_dsn=database_url)
    await server.start()
    async with authorized_channel(f"127.0.0.1:{server.port}") as channel:
        watcher = Watcher(channel)
        await watcher.snapshot()
        await server.stop(grace=5)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await watcher.read()
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


@pytest_asyncio.fixture(loop_scope="session")
async def tiny_hub(database_url: str) -> AsyncIterator[SlotChangeHub]:
    hub = SlotChangeHub(dsn=database_url, queue_size=2, min_backoff=0.05)
    await hub.start()
    yield hub
    await hub.stop()


def context(pool: asyncpg.Pool) -> OpsContext:
    return OpsContext(pool=pool, hold_ttl=timedelta(minutes=2), turnover=timedelta(0), expiry=NoQueueExpiryScheduler())


async def test_a_watcher_that_falls_behind_gets_a_fresh_snapshot_not_a_gap(
    db: asyncpg.Connection, pool: asyncpg.Pool, tiny_hub: SlotChangeHub
) -> None:
    with tiny_hub.subscribe() as subscription:
        stream = watch_slots(subscription, context(pool), SlotFilters())
        assert await anext(stream) == (SlotChangeKind.SNAPSHOT_COMPLETE, None)
        async with db.transaction():
            new_ids = [await insert_slot(db, start=future(10 + i)) for i in range(5)]
        await until(lambda: tiny_hub.notice_count >= 5)  # 5 changes into a queue of 2: it overflowed

        resynced = [await anext(stream) for _ in range(6)]
        assert [kind for kind, _ in resynced] == [SlotChangeKind.SNAPSHOT] * 5 + [SlotChangeKind.SNAPSHOT_COMPLETE]
        assert [slot.id for _, slot in resynced if slot is not None] == new_ids
        await stream.aclose()
    assert tiny_hub.subscriber_count == 0


async def test_a_lost_listen_connection_reconnects_and_resyncs(db: asyncpg.Connection, tiny_hub: SlotChangeHub) -> None:
    with tiny_hub.subscribe() as subscription:
        pid = tiny_hub.connection_pid
        assert pid is not None
        await db.execute("SELECT pg_terminate_backend($1)", pid)
        assert await asyncio.wait_for(subscription.next(), 10) is Signal.RESYNC
        assert tiny_hub.connection_pid not in (None, pid)
        slot_id = await insert_slot(db)
        assert await asyncio.wait_for(subscription.next(), 10) == SlotChange(slot_id, SlotChangeKind.CREATED)


def test_every_change_kind_has_its_own_proto_value() -> None:
    values = [CHANGE_KIND_TO_PROTO[kind] for kind in SlotChangeKind]
    assert len(set(values)) == len(values)
    assert slot_service_pb2.SLOT_CHANGE_KIND_UNSPECIFIED not in values


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ('{"slot_id": 7, "kind": "BOOKED"}', SlotChange(7, SlotChangeKind.BOOKED)),
        ('{"kind": "RESET"}', SlotsReset()),
        ('{"slot_id": 7, "kind": "SNAPSHOT"}', None),  # not something the database announces
        ('{"slot_id": 7, "kind": "MOVED"}', None),  # a newer migration's kind: ignored
        ("not json", None),
        ("[]", None),
    ],
)
def test_notification_payloads(payload: str, expected: object) -> None:
    assert parse_notice(payload) == expected


async def test_watchers_share_one_reread_per_change_and_never_one_across_changes() -> None:
    """1,000 watchers must not cost 1,000 reads per change, yet a later change of the same slot is read anew."""
    hub = SlotChangeHub(dsn="postgresql://unused")
    reads = 0

    async def read() -> None:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.01)

    change = SlotChange(1, SlotChangeKind.BOOKED)
    await asyncio.gather(*(hub.shared_read(change, read) for _ in range(50)))
    assert reads == 1
    await hub.shared_read(change, read)
    assert reads == 1
    await hub.shared_read(SlotChange(1, SlotChangeKind.BOOKED), read)  # equal, but a new notification
    assert reads == 2
    # A watcher that goes away mid-read does not cancel the read for the others.
    later = SlotChange(1, SlotChangeKind.RELEASED)
    leaver = asyncio.ensure_future(hub.shared_read(later, read))
    stayer = asyncio.ensure_future(hub.shared_read(later, read))
    await asyncio.sleep(0)
    leaver.cancel()
    await stayer
    assert reads == 3


# --- routed watchers: one re-read per change, an index by filter, a shared Slot ---------------------------


def counting_reader(pool: asyncpg.Pool) -> tuple[list[int], Callable[[int], Awaitable[Slot | None]]]:
    reads: list[int] = []

    async def read(slot_id: int) -> Slot | None:
        reads.append(slot_id)
        async with pool.acquire() as conn:
            return await fetch_slot(conn, slot_id, turnover=timedelta(0))

    return reads, read


async def test_routed_watchers_get_only_what_their_filters_index_from_one_read(
    db: asyncpg.Connection, pool: asyncpg.Pool, tiny_hub: SlotChangeHub
) -> None:
    room_a, room_b = await insert_room(db), await insert_room(db)
    reads, read = counting_reader(pool)
    with (
        tiny_hub.subscribe(SlotFilters(room_id=room_a), read) as in_a,
        tiny_hub.subscribe(SlotFilters(room_id=room_b), read) as in_b,
        tiny_hub.subscribe(SlotFilters(), read) as everything,
    ):
        assert tiny_hub.subscriber_count == 3
        slot_a = await insert_slot(db, room_id=room_a)
        got_a, got_all = await asyncio.wait_for(in_a.next(), 10), await asyncio.wait_for(everything.next(), 10)
        assert isinstance(got_a, tuple) and isinstance(got_all, tuple)
        assert got_a[0] == SlotChange(slot_a, SlotChangeKind.CREATED) and got_a[1] is not None
        assert got_a[1].room.id == room_a
        assert got_all[1] is got_a[1]  # the same object for every watcher: converted once, sent to all
        slot_b = await insert_slot(db, room_id=room_b)
        # Delivery is in order, so room B's first item being its own slot proves room A's never reached it.
        got_b = await asyncio.wait_for(in_b.next(), 10)
        assert isinstance(got_b, tuple) and got_b[0] == SlotChange(slot_b, SlotChangeKind.CREATED)
        assert reads == [slot_a, slot_b]  # one re-read per change, however many watchers
    assert tiny_hub.subscriber_count == 0


async def test_a_slow_routed_watcher_is_resynced_and_delays_no_other(
    db: asyncpg.Connection, pool: asyncpg.Pool, tiny_hub: SlotChangeHub
) -> None:
    _, read = counting_reader(pool)
    with tiny_hub.subscribe(SlotFilters(), read) as slow, tiny_hub.subscribe(SlotFilters(), read) as fast:
        seen = []
        for _ in range(5):  # the queue holds 2: the slow watcher, never reading, overflows
            slot_id = await insert_slot(db)
            item = await asyncio.wait_for(fast.next(), 10)
            assert isinstance(item, tuple)
            seen.append((slot_id, item[0].slot_id))
        assert all(inserted == delivered for inserted, delivered in seen)
        assert await asyncio.wait_for(slow.next(), 10) is Signal.RESYNC


async def test_an_open_stream_keeps_none_of_its_snapshot_rows(
    db: asyncpg.Connection, pool: asyncpg.Pool, tiny_hub: SlotChangeHub
) -> None:
    """A stream lives for hours: rows its frame kept were walked by every full garbage-collector pass meanwhile
    (1,000 watchers kept 18,000 slots, and those passes held every stream's updates 100-200 ms)."""
    room = await insert_room(db)
    ids = {await insert_slot(db, room_id=room, start=future(10 + i)) for i in range(20)}
    ctx = context(pool)
    with tiny_hub.subscribe(SlotFilters(room_id=room), slot_reader(ctx)) as subscription:
        stream = watch_slots(subscription, ctx, SlotFilters(room_id=room))
        seen = set()
        while (item := await anext(stream))[0] is SlotChangeKind.SNAPSHOT:
            assert item[1] is not None
            seen.add(item[1].id)
        assert seen == ids and item == (SlotChangeKind.SNAPSHOT_COMPLETE, None)
        del item
        # What the suspended stream's frame still refers to (by identity: other tests' slots share these ids).
        assert stream.ag_frame is not None
        kept = [
            slot
            for value in stream.ag_frame.f_locals.values()
            for slot in (value if isinstance(value, list | tuple) else [value])
            if isinstance(slot, Slot)
        ]
        assert kept == [], f"the open stream still holds {len(kept)} of its snapshot's slots"
        await stream.aclose()


async def test_a_routed_watcher_sees_snapshot_then_only_matching_changes(
    db: asyncpg.Connection, pool: asyncpg.Pool, tiny_hub: SlotChangeHub
) -> None:
    room = await insert_room(db)
    ctx = context(pool)
    with tiny_hub.subscribe(SlotFilters(room_id=room), slot_reader(ctx)) as subscription:
        stream = watch_slots(subscription, ctx, SlotFilters(room_id=room))
        assert await anext(stream) == (SlotChangeKind.SNAPSHOT_COMPLETE, None)
        await insert_slot(db)  # another room: not for this watcher
        mine = await insert_slot(db, room_id=room)
        kind, slot = await asyncio.wait_for(anext(stream), 10)
        assert kind is SlotChangeKind.CREATED and slot is not None and slot.id == mine
        await stream.aclose()


async def test_a_change_reaches_every_watcher_as_the_bytes_its_message_serializes_to(
    db: asyncpg.Connection, live_channel: grpc.aio.Channel
) -> None:
    """Serialized once for all watchers (rpc/slot_service.py), and on the wire exactly the message's own bytes."""
    raw_watch = live_channel.unary_stream(
        "/orflow.v1.SlotService/WatchSlots",
        request_serializer=WatchSlotsRequest.SerializeToString,
        response_deserializer=bytes,
    )
    calls = [raw_watch(WatchSlotsRequest()) for _ in range(3)]

    async def next_message(call: Any) -> tuple[bytes, WatchSlotsResponse]:
        data = await asyncio.wait_for(call.read(), 10)
        return data, WatchSlotsResponse.FromString(data)

    for call in calls:
        while (await next_message(call))[1].kind != COMPLETE:
            pass
    marker = await insert_slot(db)
    seen = []
    for call in calls:
        while (got := await next_message(call))[1].slot.id != marker or got[1].kind != CREATED:
            pass
        seen.append(got[0])
    assert seen[0] == seen[1] == seen[2]
    assert WatchSlotsResponse.FromString(seen[0]).SerializeToString() == seen[0]
    for call in calls:
        call.cancel()


async def test_a_shared_change_message_is_serialized_once_and_others_as_usual(db: asyncpg.Connection) -> None:
    shared = _SharedMessages()
    slot = await fetch_slot(db, await insert_slot(db), turnover=timedelta(0))
    assert slot is not None
    message = shared.get(SlotChangeKind.BOOKED, slot)
    assert shared.get(SlotChangeKind.BOOKED, slot) is message
    assert shared.serialize(message) is shared.serialize(message)  # kept bytes, not serialized again
    assert shared.serialize(message) == message.SerializeToString()
    other = WatchSlotsResponse(kind=BOOKED, slot=message.slot)
    assert shared.serialize(other) == other.SerializeToString()
    for _ in range(SHARED_MESSAGES):  # pushed out of the cache: still serialized, now on its own
        shared.get(SlotChangeKind.BOOKED, dataclasses.replace(slot))
    assert shared.serialize(message) == message.SerializeToString()
    assert shared.serialize(message) is not shared.serialize(message)


async def test_replacing_the_serializer_of_a_method_the_service_lacks_fails_at_registration() -> None:
    server = grpc.aio.server()
    with pytest.raises(ValueError, match="NoSuchMethod"):
        slot_service_pb2_grpc.add_SlotServiceServicer_to_server(
            slot_service_pb2_grpc.SlotServiceServicer(),
            ResponseSerializers(server, {"NoSuchMethod": bytes}),  # type: ignore[arg-type]
        )
