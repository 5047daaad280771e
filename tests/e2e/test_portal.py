"""The portal in real headless Chromium, through the real proxy, against the real server and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import grpc
from orflow.v1 import booking_service_pb2
from playwright.async_api import Browser, BrowserContext, expect

from tests.conftest import ServerFactory
from tests.e2e.pages import LIVE_TIMEOUT_MS, assert_accessible, card, open_patient, seed, sign_in_admin, sign_in_patient
from tests.web.conftest import ProxyFactory


async def test_patient_books_confirms_and_a_second_browser_sees_the_slot_go_live(
    db: asyncpg.Connection, admin: object, browser: Browser, context: BrowserContext, portal: str, artifacts: Path
) -> None:
    await seed(admin)
    patient = await open_patient(context, portal, "MRN-E2E-1")
    other_context = await browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        other = await open_patient(other_context, portal)  # signed out: browsing needs no token

        await patient.get_by_label("Find a surgeon by name or specialty").fill("neuro")
        await patient.get_by_role("button", name="Dr. Arjun Mehta").click()
        first = patient.locator(".slot-card").first
        await expect(first).to_contain_text("Dr. Arjun Mehta")
        await expect(patient.locator(".slot-card").filter(has_not_text="Dr. Arjun Mehta")).to_have_count(0)
        slot_id = await first.get_attribute("data-slot-id")
        assert slot_id
        await expect(first).to_contain_text("Room")
        await expect(first).to_contain_text("MRI Machine")
        await patient.screenshot(path=artifacts / "01-patient-search.png")
        await assert_accessible(patient, "01-patient-search")
        await expect(card(other, slot_id)).to_be_visible()

        await card(patient, slot_id).get_by_role("button", name="Book").click()
        hold = patient.locator(".hold")
        await expect(hold.get_by_test_id("booking-status")).to_have_text("On hold")
        await expect(hold.get_by_role("timer")).to_contain_text("Held for you for 1:")
        await expect(card(patient, slot_id)).to_have_count(0)
        await patient.screenshot(path=artifacts / "02-patient-hold-countdown.png")
        await assert_accessible(patient, "02-patient-hold-countdown")

        # The second browser never reloads: WatchSlots (through the proxy) takes the slot away.
        await expect(card(other, slot_id)).to_have_count(0, timeout=LIVE_TIMEOUT_MS)
        await other.screenshot(path=artifacts / "03-second-browser-slot-gone.png")
        await assert_accessible(other, "03-second-browser-slot-gone")

        await hold.get_by_role("button", name="Confirm booking").click()
        await expect(hold.get_by_test_id("booking-status")).to_have_text("CONFIRMED")
        await patient.screenshot(path=artifacts / "04-patient-confirmed.png")
        await assert_accessible(patient, "04-patient-confirmed")
    finally:
        await other_context.close()
    row = await db.fetchrow("SELECT patient_id, status FROM bookings WHERE slot_id = $1", int(slot_id))
    assert row is not None and tuple(row) == ("MRN-E2E-1", "CONFIRMED")


async def test_a_conflict_shows_the_friendly_message(
    db: asyncpg.Connection, admin: object, bookings: object, context: BrowserContext, portal: str, artifacts: Path
) -> None:
    """A page whose live feed is cut keeps a stale slot; booking it gets SLOT_TAKEN, shown in words."""
    await seed(admin)
    await context.route("**/orflow.v1.SlotService/WatchSlots", lambda route: route.abort())
    page = await context.new_page()
    await sign_in_patient(page, portal, "MRN-E2E-2")
    await expect(page.get_by_role("status").filter(has_text="Reconnecting")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    first = page.locator(".slot-card").first
    slot_id = await first.get_attribute("data-slot-id")
    assert slot_id
    await bookings.CreateBooking(  # type: ignore[attr-defined]
        booking_service_pb2.CreateBookingRequest(slot_id=int(slot_id), patient_id="MRN-OTHER", request_id="e2e-taken")
    )
    await card(page, slot_id).get_by_role("button", name="Book").click()
    alert = page.get_by_role("alert")
    await expect(alert).to_have_text("That slot was just taken — pick another.")
    await expect(card(page, slot_id)).to_have_count(0)
    await page.screenshot(path=artifacts / "05-conflict-friendly-message.png")
    await assert_accessible(page, "05-conflict-friendly-message")
    html = await page.content()
    assert "SLOT_TAKEN" not in html and "aborted" not in html.lower()
    count = await db.fetchval("SELECT count(*) FROM bookings WHERE slot_id = $1", int(slot_id))
    assert count == 1


async def test_admin_creates_a_slot_after_field_violations_and_sees_it_listed(
    db: asyncpg.Connection, admin: object, context: BrowserContext, portal: str, artifacts: Path
) -> None:
    await seed(admin)
    page = await context.new_page()
    await sign_in_admin(page, portal)
    await expect(page.get_by_role("heading", name="Command center")).to_be_visible()
    day = (datetime.now() + timedelta(days=12)).strftime("%Y-%m-%d")

    # Nothing chosen, end before start: the server's BadRequest field violations show by the fields.
    await page.get_by_label("Date", exact=True).fill(day)
    await page.get_by_label("Start", exact=True).fill("10:00")
    await page.get_by_label("End", exact=True).fill("09:00")
    await page.get_by_role("button", name="Publish slot").click()
    await expect(page.locator("#doctor_id-error")).to_contain_text("Surgeon")
    await expect(page.locator("#procedure_type-error")).to_contain_text("Procedure")
    await expect(page.get_by_label("Procedure", exact=True)).to_have_attribute("aria-invalid", "true")
    await page.screenshot(path=artifacts / "06-admin-field-violations.png", full_page=True)
    await assert_accessible(page, "06-admin-field-violations")

    await page.get_by_label("Surgeon", exact=True).select_option(label="Dr. Priya Nair — General Surgery")
    await page.get_by_label("Room", exact=True).select_option(label="Max Care 303")
    await page.get_by_label("Procedure", exact=True).fill("Robotic Hernia Repair")
    await page.get_by_role("button", name="Publish slot").click()  # every field set, but it ends before it starts
    await expect(page.locator("#end_time-error")).to_have_text("End must be after Start.")
    await expect(page.locator("#doctor_id-error")).to_have_count(0)
    await page.get_by_label("Start", exact=True).fill("07:00")
    await page.get_by_label("End", exact=True).fill("08:30")
    await page.get_by_role("button", name="+ Add equipment").click()
    await page.get_by_label("Equipment 1", exact=True).select_option(label="ECG Monitor (10 in stock)")
    await page.get_by_role("button", name="Publish slot").click()
    await expect(page.get_by_role("status").filter(has_text="published")).to_be_visible()
    listed = page.get_by_role("table", name="Slots on this day").locator("tr", has_text="Robotic Hernia Repair")
    await expect(listed).to_contain_text("Max Care 303")
    await expect(listed).to_contain_text("Free")
    await expect(page.locator(".timeline .block-new")).to_contain_text("Robotic Hernia Repair")
    await page.screenshot(path=artifacts / "07-admin-schedule-day-view.png", full_page=True)
    await assert_accessible(page, "07-admin-schedule-day-view")
    stored = await db.fetchval("SELECT count(*) FROM slots WHERE procedure_type = 'Robotic Hernia Repair'")
    assert stored == 1


async def test_admin_reports_inventory_and_reset_with_confirmation(
    db: asyncpg.Connection, admin: object, bookings: object, context: BrowserContext, portal: str, artifacts: Path
) -> None:
    await seed(admin)
    made = 0
    for row in await db.fetch("SELECT id FROM slots ORDER BY start_time"):
        try:  # demo slots contend for rooms and equipment: skip the ones a previous hold blocks
            await bookings.CreateBooking(  # type: ignore[attr-defined]
                booking_service_pb2.CreateBookingRequest(
                    slot_id=row["id"], patient_id=f"MRN-R{made}", request_id=f"report-{made}"
                )
            )
        except grpc.aio.AioRpcError:
            continue
        made += 1
        if made == 12:
            break
    assert made == 12
    page = await context.new_page()
    await sign_in_admin(page, portal)
    await page.get_by_role("tab", name="Bookings").click()
    rows = page.locator("table").filter(has_text="Patient").locator("tbody tr")
    await expect(rows).to_have_count(12)
    await page.get_by_label("Per page").select_option("10")
    await expect(rows).to_have_count(10)
    await page.get_by_role("button", name="Next").click()
    await expect(page.get_by_text("Page 2")).to_be_visible()
    await expect(rows).to_have_count(2)
    await page.get_by_role("button", name="Previous").click()
    await expect(rows).to_have_count(10)
    await page.get_by_label("Patient ID").fill("MRN-R1")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text("On hold")
    await page.get_by_label("Patient ID").fill("")
    await expect(rows).to_have_count(10)
    await page.screenshot(path=artifacts / "08-admin-bookings-report.png", full_page=True)
    await assert_accessible(page, "08-admin-bookings-report")

    await page.get_by_role("tab", name="Inventory").click()
    await expect(page.get_by_role("heading", name="Operating rooms (6)")).to_be_visible()
    await expect(
        page.get_by_role("list", name="Equipment").get_by_role("listitem").filter(has_text="ECMO Machine")
    ).to_be_visible()
    await page.screenshot(path=artifacts / "09-admin-inventory.png", full_page=True)
    await assert_accessible(page, "09-admin-inventory")

    await page.get_by_role("tab", name="Demo data").click()
    await page.get_by_role("button", name="Reset demo data…").click()
    dialog = page.get_by_role("alertdialog")
    await expect(dialog).to_contain_text("cannot be undone")
    await expect(dialog.get_by_role("button", name="Keep my data")).to_be_focused()
    await page.screenshot(path=artifacts / "10-admin-reset-confirmation.png", full_page=True)
    await assert_accessible(page, "10-admin-reset-confirmation")
    assert await db.fetchval("SELECT count(*) FROM bookings") == 12, "nothing happens before the confirmation"
    await dialog.get_by_role("button", name="Yes, reset everything").click()
    await expect(page.get_by_role("status").filter(has_text="Demo data loaded")).to_be_visible()
    assert await db.fetchval("SELECT count(*) FROM bookings") == 0


async def test_phone_width_patient_page(
    db: asyncpg.Connection, admin: object, browser: Browser, portal: str, artifacts: Path
) -> None:
    await seed(admin)
    phone = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = await open_patient(phone, portal)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, "no sideways scrolling on a phone"
        book = page.locator(".slot-card").first.get_by_role("button", name="Book")
        box = await book.bounding_box()
        assert box is not None and box["width"] > 300, "the Book button spans the card on a phone"
        await page.screenshot(path=artifacts / "11-patient-phone-top.png")
        await assert_accessible(page, "11-patient-phone-top")
        await page.evaluate("document.getElementById('slots-title').scrollIntoView()")
        await page.screenshot(path=artifacts / "12-patient-phone-slots.png")
        await assert_accessible(page, "12-patient-phone-slots")
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        await sign_in_patient(page, portal, "MRN-PHONE-WITH-A-RATHER-LONG-IDENTIFIER")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390, "signed in: still no sideways scroll"
        await page.goto(portal + "/#/sign-in")
        await expect(page.get_by_label("Admin token")).to_be_visible()
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        await page.screenshot(path=artifacts / "18-sign-in-phone.png", full_page=True)
        await assert_accessible(page, "18-sign-in-phone")
    finally:
        await phone.close()


async def test_an_unconfirmed_hold_runs_out_and_says_so(
    db: asyncpg.Connection,
    admin: object,
    start_server: ServerFactory,
    start_proxy: ProxyFactory,
    portal_dist: Path,
    context: BrowserContext,
    artifacts: Path,
) -> None:
    """A server with 3 s holds: the countdown reaches zero and the page shows the server's FAILED status."""
    await seed(admin)
    short = await start_server(hold_ttl=timedelta(seconds=3))
    url = await start_proxy(short, web_portal_dir=portal_dist, web_dev_sign_in=True)
    page = await open_patient(context, url, "MRN-E2E-3")
    first = page.locator(".slot-card").first
    slot_id = await first.get_attribute("data-slot-id")
    await first.get_by_role("button", name="Book").click()
    status = page.get_by_test_id("booking-status")
    await expect(status).to_have_text("On hold")
    await expect(status).to_have_text("Not confirmed", timeout=10_000)
    await expect(page.locator(".hold")).to_contain_text("The hold ran out before it was confirmed")
    assert slot_id
    await expect(card(page, slot_id)).to_be_visible()  # free again: listed without waiting for a worker
    await page.screenshot(path=artifacts / "13-patient-hold-expired.png")
    await assert_accessible(page, "13-patient-hold-expired")
    held = await db.fetchval("SELECT expire_time - create_time FROM bookings WHERE slot_id = $1", int(slot_id))
    assert held == timedelta(seconds=3)
