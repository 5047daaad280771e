"""Sites, edits and retirements in real Chromium against the real server: a London day the clocks go forward on
the day board, the patient list and the day view (times on the site's clock, the zone named); an edit refused by
a stale etag (two pages, the second saves first); an equipment count refused while a booking needs it; a retire
refused while bookings depend on it, then done with "also cancel". axe-core checks every state."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from google.protobuf.timestamp_pb2 import Timestamp
from orflow.v1 import admin_service_pb2, booking_service_pb2
from playwright.async_api import BrowserContext, Page, expect

from tests.e2e.pages import LIVE_TIMEOUT_MS, assert_accessible, seed, sign_in_admin, sign_in_patient

LONDON = "St Thomas' Hospital, London (Europe/London)"
DST_DAY = "2027-03-28"  # London's clocks go forward at 01:00 UTC: 01:00 GMT becomes 02:00 BST


def timestamp(text: str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.fromisoformat(text).astimezone(UTC))
    return stamp


async def confirmed_booking(bookings: Any, slot_id: int, patient_id: str) -> int:
    held = await bookings.CreateBooking(
        booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id=patient_id, request_id=f"se-{slot_id}")
    )
    await bookings.ConfirmBooking(booking_service_pb2.ConfirmBookingRequest(booking_id=held.booking.id))
    return int(held.booking.id)


async def london_slot_across_the_change(db: asyncpg.Connection, admin: Any) -> int:
    """A 2-hour slot in St Thomas' Theatre 1 from 00:30 to 02:30 UTC on the spring-forward day."""
    room = await db.fetchval("SELECT id FROM rooms WHERE name = $1", "St Thomas' Theatre 1")
    doctor = await db.fetchval("SELECT id FROM doctors WHERE name = $1", "Dr. James Whitfield")
    reply = await admin.CreateSlot(
        admin_service_pb2.CreateSlotRequest(
            doctor_id=doctor,
            procedure_type="Night Trauma Fixation",
            room_id=room,
            start_time=timestamp("2027-03-28T00:30:00+00:00"),
            end_time=timestamp("2027-03-28T02:30:00+00:00"),
        )
    )
    return int(reply.slot.id)


async def test_a_london_day_the_clocks_go_forward_on_the_board_the_day_view_and_the_patient_list(
    db: asyncpg.Connection, admin: Any, bookings: Any, context: BrowserContext, portal: str, artifacts: Path
) -> None:
    await seed(admin)
    slot_id = await london_slot_across_the_change(db, admin)
    booking_id = await confirmed_booking(bookings, slot_id, "MRN-DST-1")
    page = await context.new_page()
    await sign_in_admin(page, portal)

    await page.get_by_role("tab", name="Day board").click()
    await page.get_by_label("Hospital").select_option(label=LONDON)
    await page.get_by_label("Day", exact=True).fill(DST_DAY)
    row = page.locator(f'.board-case[data-slot-id="{slot_id}"]')
    # 00:30 UTC is 00:30 GMT; 02:30 UTC is 03:30 BST: the local clock skipped an hour in between.
    await expect(row.get_by_test_id("case-time")).to_have_text("00:30 GMT\u201303:30 BST")
    await expect(row.get_by_test_id("case-state")).to_have_text("Confirmed")
    length = page.get_by_test_id("day-length")
    await expect(length).to_contain_text("Europe/London")
    await expect(length).to_contain_text("This day is 23 hours long: the clocks go forward (GMT → BST).")
    scale = page.get_by_test_id("timeline-scale")
    await expect(scale.locator(".tick-change")).to_have_text("02:00 BST")  # the axis's tick at 01:00 UTC
    assert "01:00" not in await scale.inner_text(), "01:00 London time does not exist on this day"
    await expect(page.get_by_test_id("board-live")).to_have_text("Live", timeout=LIVE_TIMEOUT_MS)
    await assert_accessible(page, "day board, London spring-forward day")
    await page.screenshot(path=artifacts / "40-day-board-dst.png", full_page=True)

    # Live: a check-in made elsewhere (another client) reaches the board through WatchSlots, no reload.
    await bookings.CheckInBooking(booking_service_pb2.CheckInBookingRequest(booking_id=booking_id))
    await expect(row.get_by_test_id("case-state")).to_have_text("Checked in", timeout=LIVE_TIMEOUT_MS)

    await page.get_by_role("tab", name="Schedule").click()
    await page.get_by_label("Hospital").select_option(label=LONDON)
    await page.get_by_label("Day", exact=True).fill(DST_DAY)
    listed = page.get_by_role("table", name="Slots on this day").locator(f'tr[data-slot-id="{slot_id}"]')
    await expect(listed.get_by_test_id("slot-times")).to_have_text("00:30 GMT\u201303:30 BST")
    await expect(page.get_by_test_id("day-length")).to_contain_text("23 hours long")
    await assert_accessible(page, "day view, London spring-forward day")

    # The patient list: each card on its hospital's clock, zone named (an Indian one in IST, this one across BST).
    patient = await context.new_page()
    await sign_in_patient(patient, portal, "MRN-DST-2")
    indian = patient.locator(".slot-card").filter(has_text="Asia/Kolkata").first
    await expect(indian.get_by_test_id("slot-time")).to_contain_text("IST")
    await patient.get_by_label("Hospital").select_option(label=LONDON)
    await patient.get_by_label("Date").fill(DST_DAY)
    await expect(patient.locator(".slot-card")).to_have_count(0)  # booked: not offered
    await bookings.CancelBooking(booking_service_pb2.CancelBookingRequest(booking_id=booking_id))
    card = patient.locator(f'.slot-card[data-slot-id="{slot_id}"]')
    await expect(card.get_by_test_id("slot-time")).to_have_text("00:30 GMT\u201303:30 BST", timeout=LIVE_TIMEOUT_MS)
    await expect(card).to_contain_text("Europe/London")
    await assert_accessible(patient, "patient list, London spring-forward day")


async def open_room_editor(page: Page, portal: str, room: str) -> None:
    await sign_in_admin(page, portal)
    await page.get_by_role("tab", name="Inventory").click()
    await page.get_by_role("button", name=f"Edit {room}", exact=True).click()
    await expect(page.get_by_role("heading", name=f"Edit {room}")).to_be_focused()


async def test_an_edit_made_on_a_stale_etag_is_refused_and_the_form_reloads(
    db: asyncpg.Connection, admin: Any, bookings: Any, context: BrowserContext, portal: str, artifacts: Path
) -> None:
    await seed(admin)
    first, second = await context.new_page(), await context.new_page()
    await open_room_editor(first, portal, "Max Care 303")
    await open_room_editor(second, portal, "Max Care 303")
    await assert_accessible(first, "inventory, room editor open")

    form = first.locator("form.edit-form")  # its title follows the room's name, which the other page changes
    await form.get_by_label("Room name").fill("Max Care Theatre A")
    await form.get_by_label("Turnover (minutes)").fill("30")

    other = second.get_by_role("form", name="Edit Max Care 303")
    await other.get_by_label("Room name").fill("Max Care Theatre B")
    await other.get_by_role("button", name="Save changes").click()
    await expect(second.get_by_test_id("inventory-announcer")).to_have_text("Room “Max Care Theatre B” saved.")

    await form.get_by_role("button", name="Save changes").click()
    refusal = form.get_by_test_id("edit-error")
    await expect(refusal).to_have_text(
        "This operating room was changed since you opened it — nothing was saved. "
        "It has been reloaded: check its current values and try again."
    )
    await expect(form.get_by_label("Room name")).to_have_value("Max Care Theatre B")  # the fresh value, reloaded
    await expect(form.get_by_label("Turnover (minutes)")).to_have_value("")
    await assert_accessible(first, "inventory, stale etag refused")
    await first.screenshot(path=artifacts / "41-stale-etag-refused.png", full_page=True)
    assert await db.fetchval("SELECT name FROM rooms WHERE name LIKE 'Max Care%'") == "Max Care Theatre B"

    # Decided again on the fresh reading: saved with the current etag, turnover in whole minutes.
    await form.get_by_label("Turnover (minutes)").fill("30")
    await form.get_by_role("button", name="Save changes").click()
    await expect(first.get_by_test_id("inventory-announcer")).to_have_text("Room “Max Care Theatre B” saved.")
    await expect(first.get_by_role("list", name="Operating rooms")).to_contain_text("turnover 30 min")
    stored = await db.fetchrow("SELECT name, turnover FROM rooms WHERE name LIKE 'Max Care%'")
    assert (stored["name"], stored["turnover"].total_seconds()) == ("Max Care Theatre B", 1800)

    # An equipment count below what a booking needs: refused, naming the booking in the way.
    heart = await db.fetchval("SELECT id FROM slots WHERE procedure_type = 'Heart Valve Repair' ORDER BY id LIMIT 1")
    booking_id = await confirmed_booking(bookings, heart, "MRN-ECMO-1")
    await first.get_by_role("button", name="Edit ECMO Machine", exact=True).click()
    ecmo = first.get_by_role("form", name="Edit ECMO Machine")
    await ecmo.get_by_label("Units").fill("0")
    await ecmo.get_by_role("button", name="Save changes").click()
    await expect(ecmo.get_by_test_id("edit-error")).to_contain_text(f"In the way: booking #{booking_id}.")
    await assert_accessible(first, "inventory, equipment in use")
    assert await db.fetchval("SELECT quantity FROM equipment WHERE name = 'ECMO Machine'") == 1


async def test_retiring_a_room_with_bookings_is_refused_then_done_with_cancel(
    db: asyncpg.Connection, admin: Any, bookings: Any, context: BrowserContext, portal: str, artifacts: Path
) -> None:
    await seed(admin)
    room = "St Thomas' Theatre 1"
    slots = await db.fetch(
        "SELECT s.id FROM slots s JOIN rooms r ON r.id = s.room_id WHERE r.name = $1 ORDER BY s.start_time LIMIT 2",
        room,
    )
    booked = [await confirmed_booking(bookings, s["id"], f"MRN-RET-{i}") for i, s in enumerate(slots)]
    page = await context.new_page()
    await sign_in_admin(page, portal)
    await page.get_by_role("tab", name="Inventory").click()
    await page.get_by_role("button", name=f"Retire {room}", exact=True).click()
    panel = page.get_by_role("form", name=f"Retire {room}?")
    await expect(panel.get_by_role("heading")).to_be_focused()
    await assert_accessible(page, "inventory, retire confirmation")
    await panel.get_by_label("Why (optional; each cancelled booking's patient sees it)").fill("flooded")
    await panel.get_by_role("button", name="Retire operating room").click()
    names = f"bookings #{booked[0]} and #{booked[1]}"
    await expect(panel.get_by_test_id("retire-error")).to_contain_text(f"needed by future {names}")
    also = panel.get_by_label(f"Also cancel these 2 bookings ({names})")
    await expect(also).not_to_be_checked()
    await assert_accessible(page, "inventory, retire refused")
    await page.screenshot(path=artifacts / "42-retire-refused.png", full_page=True)
    assert await db.fetchval("SELECT retire_time FROM rooms WHERE name = $1", room) is None

    await also.check()
    await panel.get_by_role("button", name="Retire and cancel 2 bookings").click()
    await expect(page.get_by_test_id("inventory-announcer")).to_have_text(f"{room} retired; 2 bookings were cancelled.")
    row = page.get_by_role("list", name="Operating rooms").get_by_role("listitem").filter(has_text=room)
    await expect(row).to_contain_text("Retired")
    await expect(row.get_by_role("button")).to_have_count(0)  # nothing to edit or retire any more
    await assert_accessible(page, "inventory, room retired")
    assert await db.fetchval("SELECT retire_time IS NOT NULL FROM rooms WHERE name = $1", room)
    cancelled = await db.fetch(
        "SELECT status, cancellation_reason, cancellation_note FROM bookings WHERE id = ANY($1::bigint[])", booked
    )
    assert [tuple(r) for r in cancelled] == [("CANCELLED", "OTHER", "flooded")] * 2


async def test_a_slot_is_moved_then_retired_with_its_booking_from_the_day_view(
    db: asyncpg.Connection, admin: Any, bookings: Any, context: BrowserContext, portal: str
) -> None:
    await seed(admin)
    slot_id = await london_slot_across_the_change(db, admin)
    page = await context.new_page()
    await sign_in_admin(page, portal)
    await page.get_by_label("Hospital").select_option(label=LONDON)
    await page.get_by_label("Day", exact=True).fill(DST_DAY)
    await page.get_by_role("button", name=f"Edit slot #{slot_id}").click()
    form = page.get_by_role("form", name=f"Edit slot #{slot_id}")
    await expect(form.get_by_label("Start")).to_have_value("00:30")
    await expect(form.get_by_label("End")).to_have_value("03:30")
    await form.get_by_label("Start").fill("09:00")  # London time: BST by then
    await form.get_by_label("End").fill("11:00")
    await assert_accessible(page, "day view, slot editor")
    await form.get_by_role("button", name="Save changes").click()
    await expect(page.get_by_test_id("schedule-announcer")).to_contain_text(f"Slot #{slot_id} saved")
    listed = page.get_by_role("table", name="Slots on this day").locator(f'tr[data-slot-id="{slot_id}"]')
    await expect(listed.get_by_test_id("slot-times")).to_have_text("09:00\u201311:00 BST")
    stored = await db.fetchrow("SELECT start_time, end_time FROM slots WHERE id = $1", slot_id)
    assert (stored["start_time"].astimezone(UTC).isoformat(), stored["end_time"].astimezone(UTC).isoformat()) == (
        "2027-03-28T08:00:00+00:00",
        "2027-03-28T10:00:00+00:00",
    )

    # Retire it while a booking holds it: refused, naming the booking; then retired with "also cancel".
    booking_id = await confirmed_booking(bookings, slot_id, "MRN-MOVE-1")
    await page.get_by_role("button", name=f"Retire slot #{slot_id}").click()
    panel = page.get_by_role("form", name=f"Retire Slot #{slot_id}?")
    await panel.get_by_role("button", name="Retire slot").click()
    await expect(panel.get_by_test_id("retire-error")).to_contain_text(f"needed by future booking #{booking_id}.")
    # The pointer rests on the danger button, as after a real click: its hover colours are checked too.
    await panel.get_by_role("button", name="Retire slot").hover()
    await assert_accessible(page, "day view, slot retire refused")
    await panel.get_by_label(f"Also cancel this booking (booking #{booking_id})").check()
    await panel.get_by_role("button", name="Retire and cancel 1 booking").click()
    await expect(page.get_by_test_id("schedule-announcer")).to_have_text(
        f"Slot #{slot_id} retired; 1 booking was cancelled."
    )
    await expect(listed).to_have_count(0)  # ListSlots leaves retired slots out
    await assert_accessible(page, "day view, slot retired")
    assert await db.fetchval("SELECT retire_time IS NOT NULL FROM slots WHERE id = $1", slot_id)
    stored_booking = await db.fetchrow("SELECT status, cancellation_reason FROM bookings WHERE id = $1", booking_id)
    assert tuple(stored_booking) == ("CANCELLED", "SLOT_CANCELLED")
