"""Sites over the wire: time zones validated against tzdata, slots listed by site and by a site's local day
(daylight-saving days included), every slot and booking carrying its zone, and turnover per room."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import grpc
import pytest
import pytest_asyncio
from google.protobuf import duration_pb2, field_mask_pb2
from orflow.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    booking_service_pb2,
    booking_service_pb2_grpc,
    resources_pb2,
    slot_service_pb2,
)

from tests.auth import authorized_channel, token_for
from tests.factories import error_details, future, insert_room, insert_site, insert_slot, snapshot
from tests.rpc.test_bookings import book, refused

A = admin_service_pb2
S = slot_service_pb2
INVALID = grpc.StatusCode.INVALID_ARGUMENT
LONDON = "Europe/London"
SPRING_FORWARD = date(2027, 3, 28)  # 01:00 UTC: 01:00 GMT becomes 02:00 BST
AUTUMN_BACK = date(2027, 10, 31)  # 01:00 UTC: 02:00 BST becomes 01:00 GMT


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(stamp: Any, zone: str) -> datetime:
    """What a client shows: the instant on the wire in the zone the slot or booking carries."""
    return stamp.ToDatetime(tzinfo=UTC).astimezone(ZoneInfo(zone))


def minutes(n: int) -> duration_pb2.Duration:
    span = duration_pb2.Duration()
    span.FromTimedelta(timedelta(minutes=n))
    return span


async def listed(slots: Any, **request: Any) -> list[resources_pb2.Slot]:
    return list((await slots.ListSlots(S.ListSlotsRequest(page_size=1000, **request))).slots)


async def violations_of(call: Any) -> list[tuple[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    info, violations = error_details(caught.value)
    assert caught.value.code() == INVALID and info is not None and info.reason == "INVALID_ARGUMENT"
    return violations


# --- CreateSite / ListSites ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "zone",
    ["Mars/Olympus_Mons", "europe/london", "BST", "IST", "UTC+05:30", "Asia/Kolkata ", "../etc/passwd", ""],
)
async def test_a_time_zone_tzdata_does_not_know_is_refused_and_nothing_is_written(
    db: asyncpg.Connection, admin: Any, zone: str
) -> None:
    before = await db.fetch("SELECT * FROM sites ORDER BY id")

    violations = await violations_of(admin.CreateSite(A.CreateSiteRequest(name="x", display_name="X", time_zone=zone)))

    assert [field for field, _ in violations] == ["time_zone"]
    assert await db.fetch("SELECT * FROM sites ORDER BY id") == before


async def test_a_site_is_created_listed_by_anyone_and_audited_with_its_actor(
    db: asyncpg.Connection, admin: Any, target: str
) -> None:
    name = f"kings-{datetime.now(UTC).timestamp():.0f}"
    site = (
        await admin.CreateSite(A.CreateSiteRequest(name=name, display_name="King's College Hospital", time_zone=LONDON))
    ).site
    assert (site.name, site.display_name, site.time_zone) == (name, "King's College Hospital", LONDON)
    assert site.id > 0

    async with authorized_channel(target, token_for("patient", "MRN-sites")) as patient_channel:
        as_patient = admin_service_pb2_grpc.AdminServiceStub(patient_channel)
        seen = (await as_patient.ListSites(A.ListSitesRequest())).sites
    assert site in seen

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.CreateSite(A.CreateSiteRequest(name=name, display_name="Again", time_zone=LONDON))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS

    event = await db.fetchrow(
        "SELECT actor, actor_role, action, after FROM audit_events WHERE resource_type = 'site' AND resource_id = $1",
        str(site.id),
    )
    assert event is not None
    assert (event["actor"], event["actor_role"], event["action"]) == ("test-admin", "admin", "site.created")


# --- CreateRoom: the site and the room's own turnover ---------------------------------------------------


async def test_a_room_is_created_in_its_site_with_its_own_turnover(db: asyncpg.Connection, admin: Any) -> None:
    site = await insert_site(db, time_zone=LONDON)
    room = (await admin.CreateRoom(A.CreateRoomRequest(name="Hybrid 1", site_id=site, turnover=minutes(45)))).room
    plain = (await admin.CreateRoom(A.CreateRoomRequest(name="Minor 1", site_id=site))).room

    assert (room.site_id, room.turnover.ToTimedelta()) == (site, timedelta(minutes=45))
    assert plain.site_id == site and not plain.HasField("turnover")  # the server's default applies
    listed_rooms = {r.name: r for r in (await admin.ListRooms(A.ListRoomsRequest())).rooms}
    assert listed_rooms["Hybrid 1"] == room
    assert await db.fetchval("SELECT turnover FROM rooms WHERE id = $1", room.id) == timedelta(minutes=45)


async def test_a_room_is_moved_to_another_site_and_its_turnover_changed(
    db: asyncpg.Connection, admin: Any, bookings: Any
) -> None:
    """UpdateRoom's site_id and turnover paths (issue 14's edits meet sites): the next booking uses the new
    turnover, an unset turnover means the default again, and an unknown site changes nothing."""
    london, kolkata = await insert_site(db, time_zone=LONDON), await insert_site(db, time_zone="Asia/Kolkata")
    room = (await admin.CreateRoom(A.CreateRoomRequest(name="Movable", site_id=london))).room

    moved = (
        await admin.UpdateRoom(
            A.UpdateRoomRequest(
                room=resources_pb2.Room(id=room.id, etag=room.etag, site_id=kolkata, turnover=minutes(30)),
                update_mask=field_mask_pb2.FieldMask(paths=["site_id", "turnover"]),
            )
        )
    ).room
    assert (moved.site_id, moved.turnover.ToTimedelta()) == (kolkata, timedelta(minutes=30))
    start = future(60)
    first = await insert_slot(db, room_id=room.id, start=start, hours=1)
    second = await insert_slot(db, room_id=room.id, start=start + timedelta(hours=1), hours=1)
    await book(bookings, first, patient_id="p-turnover-1")
    await refused(book(bookings, second, patient_id="p-turnover-2"), grpc.StatusCode.ABORTED, "ROOM_BUSY")

    before = await snapshot(db)
    await refused(
        admin.UpdateRoom(
            A.UpdateRoomRequest(
                room=resources_pb2.Room(id=room.id, site_id=987_654),
                update_mask=field_mask_pb2.FieldMask(paths=["site_id"]),
            )
        ),
        grpc.StatusCode.NOT_FOUND,
        "SITE_NOT_FOUND",
    )
    assert await snapshot(db) == before

    cleared = (
        await admin.UpdateRoom(
            A.UpdateRoomRequest(
                room=resources_pb2.Room(id=room.id), update_mask=field_mask_pb2.FieldMask(paths=["turnover"])
            )
        )
    ).room
    assert not cleared.HasField("turnover")  # back to the server's default (0 here)
    assert await db.fetchval("SELECT turnover FROM rooms WHERE id = $1", room.id) is None


async def test_a_room_without_a_site_joins_the_default_site(db: asyncpg.Connection, admin: Any) -> None:
    """A client older than sites sends no site_id: the room goes to the oldest site."""
    room = (await admin.CreateRoom(A.CreateRoomRequest(name="Legacy Room"))).room
    assert room.site_id == await db.fetchval("SELECT min(id) FROM sites")


async def test_a_room_in_an_unknown_site_is_not_found(db: asyncpg.Connection, admin: Any) -> None:
    before = await snapshot(db)
    error = await refused(
        admin.CreateRoom(A.CreateRoomRequest(name="Nowhere", site_id=987_654)),
        grpc.StatusCode.NOT_FOUND,
        "SITE_NOT_FOUND",
    )
    assert "987654" in (error.details() or "")
    assert await snapshot(db) == before


@pytest.mark.parametrize(
    ("turnover", "field"),
    [
        (duration_pb2.Duration(seconds=-60), "turnover"),
        (duration_pb2.Duration(seconds=24 * 3600 + 1), "turnover"),
        (duration_pb2.Duration(seconds=60, nanos=5), "turnover"),
        (duration_pb2.Duration(seconds=60, nanos=-5), "turnover"),
    ],
)
async def test_a_turnover_out_of_bounds_is_refused(
    db: asyncpg.Connection, admin: Any, turnover: duration_pb2.Duration, field: str
) -> None:
    before = await snapshot(db)
    violations = await violations_of(admin.CreateRoom(A.CreateRoomRequest(name="Bad", turnover=turnover)))
    assert [f for f, _ in violations] == [field]
    assert await snapshot(db) == before


# --- ListSlots by site, and by a site's local day --------------------------------------------------------


async def test_slots_are_listed_by_site_and_carry_its_zone(db: asyncpg.Connection, slots: Any) -> None:
    london, kolkata = await insert_site(db, time_zone=LONDON), await insert_site(db, time_zone="Asia/Kolkata")
    in_london = await insert_slot(db, room_id=await insert_room(db, site_id=london), start=future(30))
    in_kolkata = await insert_slot(db, room_id=await insert_room(db, site_id=kolkata), start=future(31))

    only_london = await listed(slots, site_id=london)

    assert [s.id for s in only_london] == [in_london]
    assert only_london[0].site.id == london and only_london[0].site.time_zone == LONDON
    assert only_london[0].room.site_id == london
    assert [s.id for s in await listed(slots, site_id=kolkata)] == [in_kolkata]
    assert {s.id for s in await listed(slots)} == {in_london, in_kolkata}
    assert await listed(slots, site_id=london, room_id=only_london[0].room.id + 1) == []


async def test_a_booking_carries_its_site_and_zone(db: asyncpg.Connection, bookings: Any, admin: Any) -> None:
    site = await insert_site(db, time_zone="Asia/Kolkata")
    slot_id = await insert_slot(db, room_id=await insert_room(db, site_id=site))

    made = await book(bookings, slot_id, patient_id="p-zone")
    got = (await bookings.GetBooking(booking_service_pb2.GetBookingRequest(booking_id=made.id))).booking
    listed_bookings = (await admin.ListBookings(A.ListBookingsRequest(slot_id=slot_id))).bookings

    confirmed = (await bookings.ConfirmBooking(booking_service_pb2.ConfirmBookingRequest(booking_id=made.id))).booking
    cancelled = (await bookings.CancelBooking(booking_service_pb2.CancelBookingRequest(booking_id=made.id))).booking
    other_slot = await insert_slot(db, room_id=await insert_room(db, site_id=site), start=future(80))
    other = await book(bookings, other_slot, patient_id="p-zone-2")
    by_slot_cancel = (await admin.CancelSlot(A.CancelSlotRequest(slot_id=other_slot))).cancelled_booking
    assert by_slot_cancel.id == other.id

    for booking in (made, got, *listed_bookings, confirmed, cancelled, other, by_slot_cancel):
        assert (booking.site.id, booking.site.time_zone) == (site, "Asia/Kolkata")


async def test_day_needs_a_site_and_a_real_calendar_day(db: asyncpg.Connection, slots: Any) -> None:
    site = await insert_site(db, time_zone=LONDON)
    no_site = await violations_of(
        slots.ListSlots(S.ListSlotsRequest(day=resources_pb2.LocalDate(year=2027, month=3, day=28)))
    )
    assert [f for f, _ in no_site] == ["site_id"]
    bad_day = await violations_of(
        slots.ListSlots(S.ListSlotsRequest(site_id=site, day=resources_pb2.LocalDate(year=2027, month=2, day=30)))
    )
    assert [f for f, _ in bad_day] == ["day"]
    await refused(
        slots.ListSlots(S.ListSlotsRequest(site_id=987_654, day=resources_pb2.LocalDate(year=2027, month=3, day=28))),
        grpc.StatusCode.NOT_FOUND,
        "SITE_NOT_FOUND",
    )


async def day_of(slots: Any, site: int, day: date) -> list[resources_pb2.Slot]:
    return await listed(slots, site_id=site, day=resources_pb2.LocalDate(year=day.year, month=day.month, day=day.day))


async def test_spring_forward_day_is_23_hours_and_a_slot_across_the_change_shows_its_local_times(
    db: asyncpg.Connection, slots: Any
) -> None:
    site = await insert_site(db, time_zone=LONDON)
    room = await insert_room(db, site_id=site)
    at = {
        "day before, 23:30 GMT": await insert_slot(db, room_id=room, start=utc("2027-03-27T23:30"), hours=0.5),
        "first instant, 00:00 GMT": await insert_slot(db, room_id=room, start=utc("2027-03-28T00:00"), hours=0.25),
        "across the change": await insert_slot(db, room_id=room, start=utc("2027-03-28T00:30"), hours=2),
        "last half hour, 23:30 BST": await insert_slot(db, room_id=room, start=utc("2027-03-28T22:30"), hours=0.5),
        "next day, 00:00 BST": await insert_slot(db, room_id=room, start=utc("2027-03-28T23:00"), hours=0.5),
    }

    day = await day_of(slots, site, SPRING_FORWARD)

    # The window is [00:00 GMT, 00:00 BST next day) = [00:00Z, 23:00Z): 23 hours.
    assert [s.id for s in day] == [
        at["first instant, 00:00 GMT"],
        at["across the change"],
        at["last half hour, 23:30 BST"],
    ]
    across = next(s for s in day if s.id == at["across the change"])
    zone = across.site.time_zone
    assert zone == LONDON
    start, end = local(across.start_time, zone), local(across.end_time, zone)
    assert (start.strftime("%H:%M %Z"), end.strftime("%H:%M %Z")) == ("00:30 GMT", "03:30 BST")
    # Two hours of surgery, three on the wall clock (Python subtracts aware times of one zone as wall time).
    assert (end.astimezone(UTC) - start.astimezone(UTC), end - start) == (timedelta(hours=2), timedelta(hours=3))
    assert local(day[-1].start_time, zone).strftime("%Y-%m-%d %H:%M %Z") == "2027-03-28 23:30 BST"


async def test_autumn_day_is_25_hours_and_a_slot_in_the_repeated_hour_shows_its_local_times(
    db: asyncpg.Connection, slots: Any
) -> None:
    site = await insert_site(db, time_zone=LONDON)
    room = await insert_room(db, site_id=site)
    at = {
        "day before, 23:59 BST": await insert_slot(db, room_id=room, start=utc("2027-10-30T22:59"), hours=0.01),
        "first instant, 00:00 BST": await insert_slot(db, room_id=room, start=utc("2027-10-30T23:00"), hours=0.25),
        "the repeated hour": await insert_slot(db, room_id=room, start=utc("2027-10-31T00:30"), hours=1),
        "last half hour, 23:30 GMT": await insert_slot(db, room_id=room, start=utc("2027-10-31T23:30"), hours=0.5),
        "next day, 00:00 GMT": await insert_slot(db, room_id=room, start=utc("2027-11-01T00:00"), hours=0.5),
    }

    day = await day_of(slots, site, AUTUMN_BACK)

    # The window is [00:00 BST, 00:00 GMT next day) = [2027-10-30 23:00Z, 2027-11-01 00:00Z): 25 hours.
    expected = ["first instant, 00:00 BST", "the repeated hour", "last half hour, 23:30 GMT"]
    assert [s.id for s in day] == [at[name] for name in expected]
    repeated = next(s for s in day if s.id == at["the repeated hour"])
    start, end = local(repeated.start_time, repeated.site.time_zone), local(repeated.end_time, repeated.site.time_zone)
    # One hour of surgery that starts and ends at 01:30 on the wall clock: the first 01:30 (BST), then the second (GMT).
    assert (start.strftime("%H:%M %Z"), end.strftime("%H:%M %Z")) == ("01:30 BST", "01:30 GMT")
    assert (start.fold, end.fold) == (0, 1)
    assert (end.astimezone(UTC) - start.astimezone(UTC), end - start) == (timedelta(hours=1), timedelta(0))


async def test_day_pages_keep_their_filters(db: asyncpg.Connection, slots: Any) -> None:
    site = await insert_site(db, time_zone=LONDON)
    room = await insert_room(db, site_id=site)
    ids = [
        await insert_slot(db, room_id=room, start=utc("2027-03-28T00:00") + timedelta(hours=h), hours=0.5)
        for h in range(5)
    ]
    request = S.ListSlotsRequest(site_id=site, day=resources_pb2.LocalDate(year=2027, month=3, day=28), page_size=2)
    seen: list[int] = []
    while True:
        page = await slots.ListSlots(request)
        seen.extend(s.id for s in page.slots)
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    assert seen == ids
    first = await slots.ListSlots(
        S.ListSlotsRequest(site_id=site, day=resources_pb2.LocalDate(year=2027, month=3, day=28), page_size=2)
    )
    other_day = S.ListSlotsRequest(
        site_id=site, day=resources_pb2.LocalDate(year=2027, month=3, day=29), page_token=first.next_page_token
    )
    assert [f for f, _ in await violations_of(slots.ListSlots(other_day))] == ["page_token"]


# --- turnover per room ---------------------------------------------------------------------------------


async def back_to_back(db: asyncpg.Connection, room: int, base: datetime) -> tuple[int, int]:
    """Two one-hour slots in `room`, the second starting as the first ends, each with its own surgeon."""
    return (
        await insert_slot(db, room_id=room, start=base, hours=1),
        await insert_slot(db, room_id=room, start=base + timedelta(hours=1), hours=1),
    )


async def test_a_room_with_30_minutes_turnover_refuses_the_back_to_back_slot(
    db: asyncpg.Connection, bookings: Any, slots: Any
) -> None:
    room = await insert_room(db, turnover=timedelta(minutes=30))
    first, second = await back_to_back(db, room, future(40))

    held = await book(bookings, first, patient_id="p-t1")
    assert {s.id: s.available for s in await listed(slots, room_id=room)} == {first: False, second: False}
    await refused(book(bookings, second, patient_id="p-t2"), grpc.StatusCode.ABORTED, "ROOM_BUSY")
    assert await db.fetchval("SELECT room_free_time - end_time FROM bookings WHERE id = $1", held.id) == timedelta(
        minutes=30
    )

    # The other way round: the later slot held first leaves no room for the earlier one's turnover.
    later_room = await insert_room(db, turnover=timedelta(minutes=30))
    early, late = await back_to_back(db, later_room, future(44))
    await book(bookings, late, patient_id="p-t3")
    await refused(book(bookings, early, patient_id="p-t4"), grpc.StatusCode.ABORTED, "ROOM_BUSY")


async def test_a_room_without_turnover_books_both_back_to_back_slots(
    db: asyncpg.Connection, bookings: Any, slots: Any
) -> None:
    room = await insert_room(db)
    first, second = await back_to_back(db, room, future(48))

    await book(bookings, first, patient_id="p-n1")
    assert {s.id: s.available for s in await listed(slots, room_id=room)} == {first: False, second: True}
    await book(bookings, second, patient_id="p-n2")
    assert await db.fetchval("SELECT count(*) FROM bookings WHERE room_id = $1 AND status = 'PENDING'", room) == 2


async def test_a_reschedule_next_to_a_case_respects_the_rooms_turnover(db: asyncpg.Connection, bookings: Any) -> None:
    room = await insert_room(db, turnover=timedelta(minutes=30))
    first, second = await back_to_back(db, room, future(52))
    elsewhere = await insert_slot(db, start=future(60))
    await book(bookings, first, patient_id="p-r1")
    moving = await book(bookings, elsewhere, patient_id="p-r2")

    await refused(
        bookings.RescheduleBooking(booking_service_pb2.RescheduleBookingRequest(booking_id=moving.id, slot_id=second)),
        grpc.StatusCode.ABORTED,
        "ROOM_BUSY",
    )
    assert await db.fetchval("SELECT slot_id FROM bookings WHERE id = $1", moving.id) == elsewhere


@pytest_asyncio.fixture(loop_scope="session")
async def ten_minute_default(start_server: Any) -> AsyncIterator[Any]:
    """A server whose default turnover (ORFLOW_TURNOVER_MINUTES) is 10 minutes."""
    async with authorized_channel(await start_server(turnover=timedelta(minutes=10))) as channel:
        yield booking_service_pb2_grpc.BookingServiceStub(channel)


async def test_the_rooms_own_turnover_overrides_the_default_both_ways(
    db: asyncpg.Connection, ten_minute_default: Any
) -> None:
    defaulted = await insert_room(db)
    a, b = await back_to_back(db, defaulted, future(70))
    await book(ten_minute_default, a, patient_id="p-d1")
    await refused(book(ten_minute_default, b, patient_id="p-d2"), grpc.StatusCode.ABORTED, "ROOM_BUSY")

    none_needed = await insert_room(db, turnover=timedelta(0))  # its own zero beats the server's ten minutes
    c, d = await back_to_back(db, none_needed, future(74))
    await book(ten_minute_default, c, patient_id="p-d3")
    await book(ten_minute_default, d, patient_id="p-d4")
