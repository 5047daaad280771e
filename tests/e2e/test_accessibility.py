"""Every page and state the other browser tests do not reach, checked with axe-core; and the first look's fixes:
ListSlots once on start, the slot list in pages, the first slot on a phone's first screen, whole surgeon rows."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from playwright.async_api import Browser, BrowserContext, Request, expect

from tests.e2e.pages import assert_accessible, open_patient, seed, sign_in_admin

PHONE = {"width": 390, "height": 844}


async def test_patient_list_loads_once_pages_and_fits_a_phone(
    db: asyncpg.Connection, admin: object, browser: Browser, context: BrowserContext, portal: str, artifacts: Path
) -> None:
    await seed(admin)
    listed: list[str] = []

    def note(request: Request) -> None:
        if request.url.endswith("/orflow.v1.SlotService/ListSlots"):
            listed.append(request.url)

    context.on("request", note)
    page = await open_patient(context, portal)
    await page.wait_for_timeout(1_000)  # the stream's snapshot has arrived (Live): it must not ask again
    assert len(listed) == 1, f"ListSlots was called {len(listed)} times on start"
    await assert_accessible(page, "patient list, signed out")

    total = await db.fetchval("SELECT count(*) FROM slots WHERE start_time > now()")
    cards = page.locator(".slot-card")
    await expect(cards).to_have_count(10)
    await expect(page.get_by_test_id("slot-page")).to_contain_text(f"Page 1 of {-(-total // 10)}")
    first_on_page_one = await cards.first.get_attribute("data-slot-id")
    await page.get_by_role("navigation", name="Slot pages").get_by_role("button", name="Next").click()
    await expect(page.get_by_test_id("slot-page")).to_contain_text("Page 2 of")
    await expect(page.get_by_role("heading", name="Available slots")).to_be_focused()
    assert await cards.first.get_attribute("data-slot-id") != first_on_page_one
    height = await page.evaluate("document.documentElement.scrollHeight")
    assert height < 2_500, f"a page of slots is {height} px tall"
    await assert_accessible(page, "patient list, page 2")

    # The surgeon list shows whole rows only: its height is a whole number of rows.
    rows = page.locator(".doctor-list li")
    row_height = (await rows.first.bounding_box() or {"height": 0})["height"]
    list_height = await page.locator(".doctor-list").evaluate("e => e.clientHeight")
    assert row_height > 0 and abs(list_height / row_height - round(list_height / row_height)) < 0.05

    phone = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        small = await open_patient(phone, portal)
        top = await small.locator(".slot-card").first.bounding_box()
        assert top is not None and top["y"] + 60 < PHONE["height"], "the first slot starts on the first screen"
        await assert_accessible(small, "phone, search folded")
        await small.get_by_text("Search", exact=True).click()
        await expect(small.get_by_label("Find a surgeon by name or specialty")).to_be_visible()
        await small.screenshot(path=artifacts / "25-phone-search-open.png")
        await assert_accessible(small, "phone, search open")
    finally:
        await phone.close()


async def test_every_command_center_tab_and_the_admin_gate(
    admin: object, context: BrowserContext, portal: str, artifacts: Path
) -> None:
    await seed(admin)
    page = await context.new_page()
    await page.goto(portal + "/#/admin")
    await expect(page.get_by_label("Admin token")).to_be_visible()
    await assert_accessible(page, "command center, signed out")
    await sign_in_admin(page, portal)
    for tab in ("Schedule", "Day board", "Bookings", "Inventory", "Audit trail", "Demo data"):
        await page.get_by_role("tab", name=tab).click()
        panel = page.get_by_role("tabpanel")
        await expect(panel).to_be_visible()
        await expect(panel.locator("[aria-busy=true]")).to_have_count(0)
        await assert_accessible(page, f"command center, {tab}")
    await page.get_by_role("tab", name="Schedule").click()
    await expect(page.locator(".timeline-scale span").last).to_be_visible()
    # The last hour label sits inside the track, not clipped by its right edge.
    scale = await page.locator(".timeline-scale").bounding_box()
    last = await page.locator(".timeline-scale span").last.bounding_box()
    assert scale is not None and last is not None and last["x"] + last["width"] <= scale["x"] + scale["width"] + 0.5
    labels = await page.locator(".timeline .block-label").all_inner_texts()
    assert labels and all("AM" not in t and "PM" not in t for t in labels), labels
