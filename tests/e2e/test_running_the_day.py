"""Running the day in real Chromium against the real server: the command center's day board (one-click
day-of-surgery transitions, cancelling a slot with a reason) and the patient's reschedule and cancel from
"My bookings". The board is one site's local day (the London demo hospital here). axe-core checks every
state; screenshots go to test-artifacts/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
from orflow.v1 import booking_service_pb2
from playwright.async_api import BrowserContext, Locator, Page, expect

from tests.e2e.pages import assert_accessible, seed, sign_in_admin, sign_in_patient


async def confirmed_booking(bookings: Any, slot_id: int, patient_id: str) -> int:
    held = await bookings.CreateBooking(
        booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id=patient_id, request_id=f"day-{slot_id}")
    )
    await bookings.ConfirmBooking(booking_service_pb2.ConfirmBookingRequest(booking_id=held.booking.id))
    return int(held.booking.id)


LONDON = "St Thomas' Hospital, London (Europe/London)"  # the site picker's option


async def first_london_day_slots(db: asyncpg.Connection) -> tuple[str, list[asyncpg.Record]]:
    """The London demo hospital's first local day with slots, and its slots (earliest first): two theatres,
    08:00 and 13:00 London time, so no two of them share a room, a surgeon or an instant."""
    rows = await db.fetch(
        "SELECT s.id, s.room_id, (s.start_time AT TIME ZONE 'Europe/London')::date AS day FROM slots s"
        " JOIN rooms r ON r.id = s.room_id JOIN sites t ON t.id = r.site_id"
        " WHERE t.time_zone = 'Europe/London' ORDER BY s.start_time, s.id"
    )
    day = rows[0]["day"]
    return day.isoformat(), [r for r in rows if r["day"] == day]


def case(page: Page, slot_id: int) -> Locator:
    return page.locator(f'.board-case[data-slot-id="{slot_id}"]')


async def offered(row: Locator) -> list[str]:
    """The buttons a case offers now, by name."""
    return [name.strip() for name in await row.locator(".board-actions button").all_inner_texts()]


async def test_day_board_runs_cases_through_their_states_and_cancels_a_slot_with_a_reason(
    db: asyncpg.Connection, admin: object, bookings: Any, context: BrowserContext, portal: str, artifacts: Path
) -> None:
    await seed(admin)
    day, slots = await first_london_day_slots(db)
    run, absent, doomed, free = [slot["id"] for slot in slots][:4]
    run_booking = await confirmed_booking(bookings, run, "MRN-DAY-1")
    absent_booking = await confirmed_booking(bookings, absent, "MRN-DAY-2")
    doomed_booking = await confirmed_booking(bookings, doomed, "MRN-DAY-3")

    page = await context.new_page()
    await sign_in_admin(page, portal)
    await page.get_by_role("tab", name="Day board").click()
    await page.get_by_label("Hospital").select_option(label=LONDON)
    await page.get_by_label("Day", exact=True).fill(day)
    await expect(page.get_by_test_id("day-length")).to_contain_text("Europe/London")
    await expect(case(page, run).get_by_test_id("case-state")).to_have_text("Confirmed")
    await expect(case(page, run).get_by_test_id("case-time")).to_have_text("08:00\u201310:00 GMT")  # December: no BST
    await expect(case(page, free).get_by_test_id("case-state")).to_have_text("Free")
    assert await offered(case(page, run)) == ["Check in", "No-show", "Cancel slot…"]
    assert await offered(case(page, free)) == ["Cancel slot…"]  # no booking: nothing to check in
    await assert_accessible(page, "day board")

    # Check in -> Start -> Complete, each the only forward step offered; the booking's actual times are stamped.
    for button, state, next_offered in (
        ("Check in", "Checked in", ["Start", "Cancel slot…"]),
        ("Start", "In surgery", ["Complete"]),
        ("Complete", "Completed", []),
    ):
        await case(page, run).get_by_role("button", name=button, exact=True).click()
        await expect(case(page, run).get_by_test_id("case-state")).to_have_text(state)
        assert await offered(case(page, run)) == next_offered
    await expect(page.get_by_test_id("board-announcer")).to_contain_text("Complete done")
    await expect(case(page, run)).to_contain_text("started")
    await expect(case(page, run)).to_contain_text("ended")

    await case(page, absent).get_by_role("button", name="No-show").click()
    await expect(case(page, absent).get_by_test_id("case-state")).to_have_text("No-show")
    assert await offered(case(page, absent)) == ["Cancel slot…"]
    await page.screenshot(path=artifacts / "30-day-board.png", full_page=True)

    # Cancel a booked slot with a coded reason: the booking is cancelled too, with the reason in its note.
    await case(page, doomed).get_by_role("button", name="Cancel slot…").click()
    form = case(page, doomed).get_by_role("form")
    await expect(form.get_by_label("Reason")).to_be_focused()
    await form.get_by_label("Reason").select_option("Surgeon unavailable")
    await form.get_by_label("Note (optional)").fill("Dr. ill with flu")
    await assert_accessible(page, "day board, cancel-slot form")
    await page.screenshot(path=artifacts / "31-day-board-cancel-slot.png", full_page=True)
    await form.get_by_role("button", name="Cancel this slot").click()
    await expect(case(page, doomed).get_by_test_id("case-state")).to_have_text("Slot cancelled")
    assert await offered(case(page, doomed)) == []
    await case(page, free).get_by_role("button", name="Cancel slot…").click()
    await case(page, free).get_by_role("button", name="Cancel this slot").click()
    await expect(case(page, free).get_by_test_id("case-state")).to_have_text("Slot cancelled")
    await assert_accessible(page, "day board, after the transitions")

    rows = {
        r["id"]: tuple(r)[1:]
        for r in await db.fetch(
            "SELECT id, status, actual_start_time IS NOT NULL, actual_end_time IS NOT NULL, cancellation_reason,"
            " cancellation_note FROM bookings WHERE id = ANY($1::bigint[])",
            [run_booking, absent_booking, doomed_booking],
        )
    }
    assert rows == {
        run_booking: ("COMPLETED", True, True, None, None),
        absent_booking: ("NO_SHOW", False, False, None, None),
        doomed_booking: ("CANCELLED", False, False, "SLOT_CANCELLED", "Surgeon unavailable: Dr. ill with flu"),
    }
    cancelled = await db.fetch("SELECT id FROM slots WHERE cancel_time IS NOT NULL ORDER BY id")
    assert [r["id"] for r in cancelled] == sorted([doomed, free])


async def test_patient_reschedules_then_cancels_with_a_reason_from_my_bookings(
    db: asyncpg.Connection, admin: object, bookings: Any, context: BrowserContext, portal: str, artifacts: Path
) -> None:
    await seed(admin)
    first = await db.fetchrow("SELECT id, procedure_type FROM slots ORDER BY start_time, id LIMIT 1")
    booking_id = await confirmed_booking(bookings, int(first["id"]), "MRN-MINE-1")
    page = await context.new_page()
    await sign_in_patient(page, portal, "MRN-MINE-1")
    await page.get_by_role("link", name="My bookings").first.click()
    row = page.locator(f'tr[data-booking-id="{booking_id}"]')
    await expect(row.get_by_test_id("booking-state")).to_have_text("Confirmed")
    await assert_accessible(page, "my bookings")

    await row.get_by_role("button", name="Reschedule…").click()
    picker = page.get_by_role("region", name=f"Move booking #{booking_id} to another slot")
    await expect(picker.get_by_role("heading", level=3)).to_be_focused()
    choices = picker.locator("li[data-slot-id]")
    await expect(choices.first).to_be_visible()
    await expect(choices.filter(has_not_text=first["procedure_type"])).to_have_count(0)  # same procedure first
    await picker.get_by_label("Show every procedure").check()
    await expect(choices.filter(has_not_text=first["procedure_type"]).first).to_be_visible()
    target = choices.first
    new_slot = int(await target.get_attribute("data-slot-id") or 0)
    await assert_accessible(page, "my bookings, reschedule picker")
    await page.screenshot(path=artifacts / "32-reschedule-picker.png", full_page=True)
    await target.get_by_role("button", name="Move here").click()
    await expect(page.get_by_test_id("bookings-announcer")).to_contain_text(f"Booking #{booking_id} moved")
    await expect(row.get_by_test_id("booking-state")).to_have_text("Confirmed")
    await page.screenshot(path=artifacts / "33-rescheduled.png", full_page=True)
    moved = await db.fetchrow("SELECT slot_id, status FROM bookings WHERE id = $1", booking_id)
    assert tuple(moved) == (new_slot, "CONFIRMED")

    await row.get_by_role("button", name="Cancel…").click()
    form = page.get_by_role("form", name=f"Cancel booking #{booking_id}")
    await expect(form.get_by_label("Why are you cancelling?")).to_be_focused()
    await form.get_by_label("Why are you cancelling?").select_option(label="A medical reason")
    await form.get_by_label("Anything to add? (optional)").fill("fever this week")
    await assert_accessible(page, "my bookings, cancel form")
    await form.get_by_role("button", name="Cancel booking").click()
    await expect(row.get_by_test_id("booking-state")).to_have_text("Cancelled")
    await expect(row.get_by_test_id("cancel-reason")).to_contain_text("a medical reason: fever this week")
    await expect(row.get_by_role("button", name="Cancel…")).to_have_count(0)
    await assert_accessible(page, "my bookings, cancelled")
    stored = await db.fetchrow(
        "SELECT status, cancellation_reason, cancellation_note, cancelled_by FROM bookings WHERE id = $1", booking_id
    )
    assert tuple(stored) == ("CANCELLED", "MEDICAL", "fever this week", "MRN-MINE-1")
