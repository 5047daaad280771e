"""The proxy serves the built portal: caching headers, client routes, no escapes, a clear page when unbuilt."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.web.conftest import ProxyFactory

INDEX = "<!doctype html><title>OR Flow</title><script src=/assets/index-3f9a1c.js></script>"


def make_dist(root: Path) -> Path:
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(INDEX)
    (root / "assets" / "index-3f9a1c.js").write_text("console.log('portal')")
    (root / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (root.parent / "secret.txt").write_text("not for the web")
    return root


async def test_index_is_revalidated_and_hashed_assets_are_immutable(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory, target: str, tmp_path: Path
) -> None:
    url = await start_proxy(target, web_portal_dir=make_dist(tmp_path / "dist"))
    async with http.get(url + "/") as r:
        assert (r.status, await r.text()) == (200, INDEX)
        assert r.headers["Content-Type"].startswith("text/html")
        assert r.headers["Cache-Control"] == "no-cache"
    async with http.get(url + "/assets/index-3f9a1c.js") as r:
        assert r.status == 200
        assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert "javascript" in r.headers["Content-Type"]
    async with http.get(url + "/favicon.svg") as r:
        assert r.status == 200 and r.headers["Cache-Control"] == "no-cache"


async def test_client_routes_get_index_and_missing_files_404(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory, target: str, tmp_path: Path
) -> None:
    url = await start_proxy(target, web_portal_dir=make_dist(tmp_path / "dist"))
    async with http.get(url + "/admin") as r:
        assert (r.status, await r.text()) == (200, INDEX)
    async with http.get(url + "/assets/missing-123.js") as r:
        assert r.status == 404
    async with http.get(url + "/../secret.txt") as r:
        assert r.status in (200, 404) and "not for the web" not in await r.text()
    async with http.get(url + "/%2e%2e/secret.txt") as r:
        assert "not for the web" not in await r.text()


async def test_unbuilt_portal_says_how_to_build_it(http: aiohttp.ClientSession, proxy: str) -> None:
    async with http.get(proxy + "/") as r:
        assert r.status == 503
        assert "scripts/up" in await r.text()
