"""The booking flow by keyboard and screen reader, in real Chromium against the real server: focus, announcements,
the warning before the hold runs out and its one extension (WCAG 2.2.1), checked with axe-core at each state."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import asyncpg
from playwright.async_api import BrowserContext, Page, expect

from tests.conftest import ServerFactory
from tests.e2e.pages import assert_accessible, open_patient, seed
from tests.web.conftest import ProxyFactory

MAX_TABS_FROM_BOOK_TO_CONFIRM = 3
SHORT_HOLD = timedelta(seconds=34)  # the warning comes at 30 s left: a few seconds after Book


async def tabs_until_focused(page: Page, name: str, limit: int = 100) -> int:
    """Presses Tab until the focused element is the button called `name`; how many presses that took."""
    for presses in range(1, limit + 1):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement?.textContent?.trim()") == name:
            return presses
    raise AssertionError(f"{name!r} was not reached in {limit} Tab presses")


async def test_keyboard_only_booking_is_announced_warned_extended_and_confirmed(
    db: asyncpg.Connection,
    admin: object,
    start_server: ServerFactory,
    start_proxy: ProxyFactory,
    portal_dist: Path,
    context: BrowserContext,
    artifacts: Path,
) -> None:
    await seed(admin)
    target = await start_server(hold_ttl=SHORT_HOLD)
    url = await start_proxy(target, web_portal_dir=portal_dist, web_dev_sign_in=True)
    page = await open_patient(context, url, "MRN-KEYS-1")
    await assert_accessible(page, "patient list, signed in")
    first = page.locator(".slot-card").first
    slot_id = await first.get_attribute("data-slot-id")
    assert slot_id

    await first.get_by_role("button", name="Book").focus()
    await page.keyboard.press("Enter")
    hold = page.locator(".hold")
    await expect(hold.get_by_test_id("booking-status")).to_have_text("On hold")
    await expect(hold.get_by_role("heading", level=2)).to_be_focused()  # not the page body
    announcer = page.get_by_test_id("hold-announcer")
    await expect(announcer).to_contain_text("Slot held for you")
    await expect(announcer).not_to_contain_text("just taken")
    presses = await tabs_until_focused(page, "Confirm booking")
    assert presses <= MAX_TABS_FROM_BOOK_TO_CONFIRM, f"Confirm took {presses} Tab presses after Book"
    await assert_accessible(page, "hold")

    # 30 s before the end: a visible warning, also announced, that offers the one extension.
    await expect(hold.get_by_test_id("hold-warning")).to_be_visible(timeout=10_000)
    await expect(announcer).to_contain_text("left on your hold")
    await expect(announcer).to_contain_text("extend the hold once")
    await page.screenshot(path=artifacts / "23-hold-warning.png")
    await assert_accessible(page, "hold, warning")
    await tabs_until_focused(page, "More time: extend hold")
    await page.keyboard.press("Enter")
    await expect(announcer).to_contain_text("Hold extended")
    await expect(hold.get_by_role("button", name="More time: extend hold")).to_have_count(0)  # once only
    await expect(hold.get_by_test_id("hold-warning")).to_have_count(0)
    row = await db.fetchrow(
        "SELECT expire_time - create_time AS held_for, hold_extended_at IS NOT NULL AS is_extended"
        " FROM bookings WHERE slot_id = $1",
        int(slot_id),
    )
    assert tuple(row) == (2 * SHORT_HOLD, True)
    await page.screenshot(path=artifacts / "24-hold-extended.png")
    await assert_accessible(page, "hold, extended")

    # The extend button is gone: focus went to Confirm, not to the page body.
    await expect(hold.get_by_role("button", name="Confirm booking")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(hold.get_by_test_id("booking-status")).to_have_text("CONFIRMED")
    await expect(announcer).to_contain_text("Booked")
    await expect(hold.get_by_role("heading", level=2)).to_be_focused()
    await assert_accessible(page, "confirmed")
    assert await db.fetchval("SELECT status FROM bookings WHERE slot_id = $1", int(slot_id)) == "CONFIRMED"
