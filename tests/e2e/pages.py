"""Page helpers for the browser tests: signing in, opening the patient portal, finding a slot's card."""

from __future__ import annotations

from orflow.v1 import admin_service_pb2
from playwright.async_api import BrowserContext, Locator, Page, expect

from tests.auth import ADMIN_TOKEN
from tests.conftest import REPO_ROOT

LIVE_TIMEOUT_MS = 10_000


async def seed(admin: object) -> None:
    await admin.SeedDatabase(admin_service_pb2.SeedDatabaseRequest())  # type: ignore[attr-defined]


async def sign_in_patient(page: Page, portal: str, patient_id: str) -> None:
    """Through the sign-in page and the proxy's dev endpoint; lands back on the patient portal."""
    await page.goto(portal + "/#/sign-in")
    await page.get_by_label("Patient ID (MRN)").fill(patient_id)
    await page.get_by_role("button", name="Sign in as this patient").click()
    await expect(page.get_by_test_id("signed-in-patient")).to_contain_text(patient_id)


async def sign_in_admin(page: Page, portal: str, token: str = ADMIN_TOKEN) -> None:
    """The command center asks for an admin token when nobody is signed in."""
    await page.goto(portal + "/#/admin")
    await page.get_by_label("Admin token").fill(token)
    await page.get_by_role("button", name="Sign in as administrator").click()
    await expect(page.get_by_role("tablist", name="Command center sections")).to_be_visible()


async def open_patient(context: BrowserContext, portal: str, patient_id: str = "") -> Page:
    """The patient portal, signed in as `patient_id` (signed out when empty), with its live list up."""
    page = await context.new_page()
    if patient_id:
        await sign_in_patient(page, portal, patient_id)
    else:
        await page.goto(portal + "/")
    await expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    await expect(page.locator(".slot-card").first).to_be_visible()
    return page


def card(page: Page, slot_id: str) -> Locator:
    return page.locator(f'.slot-card[data-slot-id="{slot_id}"]')


AXE_SCRIPT = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"  # package.json's devDependency, from npm ci
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


async def assert_accessible(page: Page, state: str) -> None:
    """axe-core's WCAG 2.2 A/AA rules in the page as it is now: no violation, or each one named in the failure."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated through the DevTools protocol: the portal's CSP (script-src 'self') rightly blocks a script tag.
        await page.evaluate(AXE_SCRIPT.read_text())
    result = await page.evaluate("tags => axe.run(document, { runOnly: { type: 'tag', values: tags } })", AXE_TAGS)
    found = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
    ]
    assert not found, f"axe-core violations in state {state!r}:\n" + "\n".join(found)
    assert result["passes"], "axe-core ran no rule at all"
