"""Browser fixtures: Debian's Chromium driven by Playwright, the built portal, the real proxy and server.

Skips (with the reason) only when Chromium or npm is missing on this machine; CI installs both.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, async_playwright

from tests.conftest import REPO_ROOT
from tests.web.conftest import ProxyFactory, start_proxy  # noqa: F401 - the fixture, shared with the proxy tests

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PORTAL_DIST = REPO_ROOT / "web-proxy" / "portal" / "dist"
ARTIFACTS = REPO_ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def portal_dist() -> Path:
    """The built portal; built here (stamp-based, like scripts/up) when npm is present."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium); .ci/run installs it")
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed, so the portal cannot be built; .ci/run installs it")
    subprocess.run(["bash", "-c", ". scripts/lib.sh && ensure_node_tools && ensure_portal"], cwd=REPO_ROOT, check=True)
    assert (PORTAL_DIST / "index.html").is_file()
    return PORTAL_DIST


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(portal_dist: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest_asyncio.fixture(loop_scope="session")
async def portal(start_proxy: ProxyFactory, target: str, portal_dist: Path) -> str:  # noqa: F811
    """The portal's URL: the real proxy, serving the built bundle, in front of the real server (dev sign-in on)."""
    return await start_proxy(target, web_portal_dir=portal_dist, web_dev_sign_in=True)


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    yield ctx
    await ctx.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
