"""Signing in to the portal in real Chromium: patients through the proxy's dev sign-in, admins with a token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import grpc
from orflow.v1 import booking_service_pb2
from orflow_server.domain.access import Role
from orflow_server.security.tokens import issue_token
from playwright.async_api import BrowserContext, Page, expect

from tests.auth import token_for
from tests.e2e.pages import LIVE_TIMEOUT_MS, assert_accessible, card, open_patient, seed, sign_in_admin, sign_in_patient

EXPIRED = "Your session has expired — please sign in again."


async def stored_token(page: Page) -> str | None:
    value = await page.evaluate("sessionStorage.getItem('orflow.session')")
    return str(value) if value is not None else None


async def book_for(db: asyncpg.Connection, bookings: object, patient_id: str) -> int:
    """Holds the first free slot this patient can take (demo slots contend for rooms, surgeons and time)."""
    for slot_id in await db.fetch("SELECT id FROM slots WHERE id NOT IN (SELECT slot_id FROM bookings) ORDER BY id"):
        try:
            reply = await bookings.CreateBooking(  # type: ignore[attr-defined]
                booking_service_pb2.CreateBookingRequest(slot_id=slot_id["id"], patient_id=patient_id)
            )
        except grpc.aio.AioRpcError:
            continue
        return int(reply.booking.id)
    raise AssertionError(f"no slot left for {patient_id}")


async def test_signed_out_visitor_browses_but_signs_in_to_book(
    db: asyncpg.Connection, admin: object, context: BrowserContext, portal: str, artifacts: Path
) -> None:
    await seed(admin)
    page = await open_patient(context, portal)  # the live list needs no sign-in
    await expect(page.get_by_role("banner").get_by_role("link", name="Sign in")).to_be_visible()
    first = page.locator(".slot-card").first
    slot_id = await first.get_attribute("data-slot-id")
    assert slot_id
    await first.get_by_role("button", name="Book").click()

    await expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()
    await expect(page.get_by_role("status").filter(has_text="Sign in to book a slot")).to_be_visible()
    await expect(page.get_by_text("Development sign-in: any patient ID is accepted")).to_be_visible()
    await expect(page.get_by_label("Admin token")).to_be_visible()
    await page.screenshot(path=artifacts / "14-sign-in-page.png", full_page=True)
    await assert_accessible(page, "14-sign-in-page")
    assert await db.fetchval("SELECT count(*) FROM bookings") == 0, "nothing is booked signed out"

    await page.get_by_label("Patient ID (MRN)").fill("MRN-E2E-SIGN")
    await page.get_by_label("Patient ID (MRN)").press("Enter")  # the keyboard is enough
    await expect(page.get_by_test_id("signed-in-patient")).to_contain_text("MRN-E2E-SIGN")
    await expect(page.get_by_role("banner")).to_contain_text("Signed in as patient MRN-E2E-SIGN")
    await card(page, slot_id).get_by_role("button", name="Book").click()
    await expect(page.get_by_test_id("booking-status")).to_have_text("On hold")
    assert await db.fetchval("SELECT patient_id FROM bookings WHERE slot_id = $1", int(slot_id)) == "MRN-E2E-SIGN"

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("banner").get_by_role("link", name="Sign in")).to_be_visible()
    assert await stored_token(page) is None


async def test_a_patient_sees_only_their_own_bookings(
    db: asyncpg.Connection, admin: object, bookings: object, context: BrowserContext, portal: str, artifacts: Path
) -> None:
    await seed(admin)
    mine = [await book_for(db, bookings, "MRN-MINE"), await book_for(db, bookings, "MRN-MINE")]
    theirs = await book_for(db, bookings, "MRN-THEIRS")

    page = await open_patient(context, portal, "MRN-MINE")
    await page.get_by_role("link", name="My bookings").first.click()
    rows = page.get_by_role("table", name="My bookings").locator("tbody tr")
    await expect(rows).to_have_count(2)
    listed = {await row.get_attribute("data-booking-id") for row in await rows.all()}
    assert listed == {str(b) for b in mine}
    await expect(rows.first).to_contain_text("On hold")
    await expect(page.locator(f'tr[data-booking-id="{theirs}"]')).to_have_count(0)
    await page.screenshot(path=artifacts / "15-patient-my-bookings.png", full_page=True)
    await assert_accessible(page, "15-patient-my-bookings")


async def test_admin_pages_refuse_a_patient(context: BrowserContext, portal: str, artifacts: Path) -> None:
    """Signed in as a patient, or pasting a patient's token as the admin token: a sentence, no command center."""
    page = await context.new_page()
    await sign_in_patient(page, portal, "MRN-E2E-NOSY")
    await page.get_by_role("link", name="Command center").click()
    await expect(page.get_by_role("alert")).to_have_text(
        "The command center is for hospital administrators. You are signed in as patient MRN-E2E-NOSY,"
        " so it is not open to you."
    )
    await expect(page.get_by_role("tablist")).to_have_count(0)

    other = await context.new_page()  # a new tab starts signed out (sessionStorage is per tab)
    await other.goto(portal + "/#/admin")
    await other.get_by_label("Admin token").fill(token_for(Role.PATIENT, "MRN-E2E-NOSY"))
    await other.get_by_role("button", name="Sign in as administrator").click()
    await expect(other.get_by_role("alert")).to_have_text(
        "That is a patient's token, not an administrator's: the command center needs an admin token."
    )
    await expect(other.get_by_role("tablist")).to_have_count(0)
    assert await stored_token(other) is None, "a refused token is not kept"
    await other.screenshot(path=artifacts / "16-admin-refuses-a-patient-token.png", full_page=True)
    await assert_accessible(other, "16-admin-refuses-a-patient-token")


async def test_a_token_the_server_refuses_sends_you_back_to_sign_in(context: BrowserContext, portal: str) -> None:
    """Well-formed and unexpired, but signed with another key: the first call's UNAUTHENTICATED ends the session."""
    forged = issue_token(
        "not-the-servers-secret-0123456789-abcdef",
        subject="mallory",
        role=Role.ADMIN,
        ttl=timedelta(hours=1),
        issuer="orflow",
        audience="orflow",
    )
    page = await context.new_page()
    await page.goto(portal + "/")
    await page.evaluate("token => sessionStorage.setItem('orflow.session', token)", forged)
    await page.goto(portal + "/#/admin")
    await page.reload()
    await expect(page.get_by_role("alert").filter(has_text=EXPIRED)).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    await expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()
    assert await stored_token(page) is None


async def test_admin_reads_the_audit_trail(
    db: asyncpg.Connection, admin: object, bookings: object, context: BrowserContext, portal: str, artifacts: Path
) -> None:
    await seed(admin)
    booking_id = await book_for(db, bookings, "MRN-AUDIT")
    since = datetime.now(UTC) - timedelta(minutes=5)
    page = await context.new_page()
    await sign_in_admin(page, portal)
    await page.get_by_role("tab", name="Audit trail").click()
    rows = page.get_by_role("table", name="Audit events").locator("tbody tr")
    await expect(rows).to_have_count(20)
    await expect(rows.first).to_contain_text("booking.created")
    await expect(rows.first).to_contain_text(f"booking #{booking_id}")
    await expect(rows.first).to_contain_text("test-admin")  # the actor: the admin token's subject
    await page.get_by_role("button", name="Next").click()
    await expect(page.get_by_text("Page 2")).to_be_visible()
    await page.get_by_role("button", name="Previous").click()

    await page.get_by_label("Action").select_option(label="Slot published")
    await expect(rows.first).to_contain_text("slot.created")
    await expect(rows.filter(has_not_text="slot.created")).to_have_count(0)
    await page.get_by_label("Action").select_option(label="Any action")
    await expect(rows.first).to_contain_text("booking.created")
    await page.screenshot(path=artifacts / "17-admin-audit-trail.png", full_page=True)
    await assert_accessible(page, "17-admin-audit-trail")
    assert await db.fetchval("SELECT count(*) FROM audit_events WHERE event_time >= $1", since) > 20
