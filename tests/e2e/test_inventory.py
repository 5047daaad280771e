"""The Inventory tab's "Add …" forms in real headless Chromium, through the real proxy, server and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
from orflow.v1 import admin_service_pb2
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.e2e.pages import assert_accessible, seed, sign_in_admin


async def open_inventory(page: Page, portal: str) -> None:
    await sign_in_admin(page, portal)
    await page.get_by_role("tab", name="Inventory").click()
    await expect(page.get_by_role("heading", name="Operating rooms (6)")).to_be_visible()


async def test_admin_adds_a_room_a_surgeon_and_an_equipment_type_and_sees_each_listed(
    db: asyncpg.Connection, admin: object, context: BrowserContext, portal: str, artifacts: Path
) -> None:
    await seed(admin)
    page = await context.new_page()
    await open_inventory(page, portal)

    # A room, submitted from the keyboard: type the name, press Enter.
    await page.get_by_label("Room name", exact=True).fill("Hybrid OR 7")
    await page.get_by_label("Room name", exact=True).press("Enter")
    await expect(page.get_by_role("status").filter(has_text="Room “Hybrid OR 7” added.")).to_be_visible()
    await expect(page.get_by_role("heading", name="Operating rooms (7)")).to_be_visible()
    rooms = page.get_by_role("list", name="Operating rooms")
    await expect(rooms.get_by_role("listitem").filter(has_text="Hybrid OR 7")).to_have_class(re.compile(r"\brow-new\b"))
    await expect(page.get_by_label("Room name", exact=True)).to_have_value("")
    await expect(page.get_by_label("Room name", exact=True)).to_be_focused()

    surgeons_before = await db.fetchval("SELECT count(*) FROM doctors")
    await page.get_by_label("Surgeon name", exact=True).fill("Dr. Amara Okafor")
    await page.get_by_label("Specialty", exact=True).fill("Vascular Surgery")
    await page.get_by_role("button", name="Add surgeon").click()
    await expect(page.get_by_role("status").filter(has_text="Surgeon “Dr. Amara Okafor” added.")).to_be_visible()
    await expect(page.get_by_role("heading", name=f"Surgeons ({surgeons_before + 1})")).to_be_visible()
    surgeon = page.get_by_role("list", name="Surgeons").get_by_role("listitem").filter(has_text="Dr. Amara Okafor")
    await expect(surgeon).to_contain_text("Vascular Surgery")

    await page.get_by_label("Equipment name", exact=True).fill("Cell Saver")
    await page.get_by_label("Units", exact=True).fill("3")
    await page.get_by_role("button", name="Add equipment").click()
    await expect(
        page.get_by_role("status").filter(has_text="Equipment “Cell Saver” added with 3 units.")
    ).to_be_visible()
    row = page.get_by_role("list", name="Equipment").get_by_role("listitem").filter(has_text="Cell Saver")
    await expect(row.get_by_test_id("units")).to_contain_text("3 units")
    await page.screenshot(path=artifacts / "19-admin-inventory-added.png", full_page=True)
    await assert_accessible(page, "19-admin-inventory-added")

    # Stored: in PostgreSQL, and listed again after a reload (read back through the API).
    assert await db.fetchval("SELECT count(*) FROM rooms WHERE name = 'Hybrid OR 7'") == 1
    stored = await db.fetchrow("SELECT specialty FROM doctors WHERE name = 'Dr. Amara Okafor'")
    assert stored is not None and stored["specialty"] == "Vascular Surgery"
    assert await db.fetchval("SELECT quantity FROM equipment WHERE name = 'Cell Saver'") == 3
    listed = await admin.ListRooms(admin_service_pb2.ListRoomsRequest())  # type: ignore[attr-defined]
    assert "Hybrid OR 7" in [r.name for r in listed.rooms]
    await page.reload()
    await page.get_by_role("tab", name="Inventory").click()
    await expect(page.get_by_role("list", name="Operating rooms")).to_contain_text("Hybrid OR 7")
    await expect(page.get_by_role("list", name="Surgeons")).to_contain_text("Dr. Amara Okafor")
    await expect(page.get_by_role("list", name="Equipment")).to_contain_text("Cell Saver")


async def test_inventory_forms_show_duplicates_and_field_violations(
    db: asyncpg.Connection, admin: object, context: BrowserContext, portal: str, artifacts: Path
) -> None:
    await seed(admin)
    page = await context.new_page()
    await open_inventory(page, portal)
    rooms_before = await db.fetchval("SELECT count(*) FROM rooms")
    name = page.get_by_label("Room name", exact=True)

    # An empty name: the server's BadRequest field violation, beside the field and tied to it.
    await page.get_by_role("button", name="Add room").click()
    await expect(page.locator("#add-room-name-error")).to_have_text("Room name is required.")
    await expect(name).to_have_attribute("aria-invalid", "true")
    await expect(name).to_have_attribute("aria-describedby", "add-room-name-error")
    await expect(page.get_by_role("alert")).to_have_text("Some details need fixing — see the highlighted fields.")
    await page.screenshot(path=artifacts / "20-admin-inventory-field-violation.png", full_page=True)
    await assert_accessible(page, "20-admin-inventory-field-violation")

    # A name the seed already uses: ALREADY_EXISTS in words, and the field's old violation is gone.
    await name.fill("Max Care 303")
    await page.get_by_role("button", name="Add room").click()
    await expect(page.get_by_role("alert")).to_have_text("A room with that name already exists — choose another name.")
    await expect(page.locator("#add-room-name-error")).to_have_count(0)
    await expect(name).to_have_attribute("aria-invalid", "false")
    await expect(page.get_by_role("heading", name=f"Operating rooms ({rooms_before})")).to_be_visible()
    await page.screenshot(path=artifacts / "21-admin-inventory-duplicate-room.png", full_page=True)
    await assert_accessible(page, "21-admin-inventory-duplicate-room")
    assert await db.fetchval("SELECT count(*) FROM rooms WHERE name = 'Max Care 303'") == 1

    # The other forms: a surgeon without a specialty, too many units, a duplicate equipment name.
    await page.get_by_label("Surgeon name", exact=True).fill("Dr. No Specialty")
    await page.get_by_role("button", name="Add surgeon").click()
    await expect(page.locator("#add-surgeon-specialty-error")).to_have_text("Specialty is required.")
    await expect(page.locator("#add-surgeon-name-error")).to_have_count(0)
    await page.get_by_label("Equipment name", exact=True).fill("Too Many Monitors")
    await page.get_by_label("Units", exact=True).fill("200000")
    await page.get_by_role("button", name="Add equipment").click()
    await expect(page.locator("#add-equipment-quantity-error")).to_have_text("Units must be between 0 and 100000.")
    await page.get_by_label("Units", exact=True).fill("2.5")  # an int32 field cannot carry it: said before sending
    await page.get_by_role("button", name="Add equipment").click()
    await expect(page.locator("#add-equipment-quantity-error")).to_have_text("Units must be a whole number.")
    await page.get_by_label("Equipment name", exact=True).fill("ECMO Machine")
    await page.get_by_label("Units", exact=True).fill("2")
    await page.get_by_role("button", name="Add equipment").click()
    equipment_form = page.get_by_role("form", name="Add an equipment type")
    await expect(equipment_form.get_by_role("alert")).to_have_text(
        "An equipment type with that name already exists — choose another name."
    )
    assert await db.fetchval("SELECT count(*) FROM doctors WHERE name = 'Dr. No Specialty'") == 0
    assert await db.fetchval("SELECT count(*) FROM equipment WHERE name = 'Too Many Monitors'") == 0


async def test_inventory_forms_at_phone_width(
    db: asyncpg.Connection, admin: object, browser: Browser, portal: str, artifacts: Path
) -> None:
    await seed(admin)
    phone = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = await phone.new_page()
        await open_inventory(page, portal)
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390, "no sideways scrolling on a phone"
        add = page.get_by_role("button", name="Add room")
        box = await add.bounding_box()
        assert box is not None and box["width"] > 300, "the Add button spans the panel on a phone"
        await page.get_by_label("Room name", exact=True).fill("Phone OR 1")
        await add.click()
        await expect(page.get_by_role("list", name="Operating rooms")).to_contain_text("Phone OR 1")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        await page.screenshot(path=artifacts / "22-admin-inventory-phone.png", full_page=True)
        await assert_accessible(page, "22-admin-inventory-phone")
        assert await db.fetchval("SELECT count(*) FROM rooms WHERE name = 'Phone OR 1'") == 1
    finally:
        await phone.close()
