"""The proxy serves the built portal: caching headers, client routes, no escapes, a clear page when unbuilt."""

from __future__ import annotations

import gzip
from pathlib import Path

import aiohttp
import pytest
from multidict import CIMultiDict

from tests.conftest import REPO_ROOT
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


SCRIPT = "console.log('portal');\n" * 400  # big enough that compression shows


def make_compressed_dist(root: Path) -> Path:
    """A dist as the build leaves it: the bundle with its .br and .gz copies, and a stray source map."""
    dist = make_dist(root)
    bundle = dist / "assets" / "index-3f9a1c.js"
    bundle.write_text(SCRIPT)
    (dist / "assets" / "index-3f9a1c.js.gz").write_bytes(gzip.compress(SCRIPT.encode()))
    (dist / "assets" / "index-3f9a1c.js.br").write_bytes(b"brotli bytes as the build wrote them")
    (dist / "assets" / "index-3f9a1c.js.map").write_text('{"sources": ["src/App.tsx"]}')
    return dist


async def get(http: aiohttp.ClientSession, url: str, accept: str | None) -> tuple[int, CIMultiDict[str], bytes]:
    """A GET that leaves the body as sent (no decompression), with this Accept-Encoding (None: no header)."""
    headers = {"Accept-Encoding": accept} if accept is not None else {"Accept-Encoding": ""}
    async with http.get(url, headers=headers, auto_decompress=False) as r:
        return r.status, CIMultiDict(r.headers), await r.read()


async def test_assets_go_brotli_or_gzip_as_accepted_with_vary(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory, target: str, tmp_path: Path
) -> None:
    url = await start_proxy(target, web_portal_dir=make_compressed_dist(tmp_path / "dist")) + "/assets/index-3f9a1c.js"
    status, headers, body = await get(http, url, "gzip, deflate, br, zstd")
    assert (status, headers["Content-Encoding"], body) == (200, "br", b"brotli bytes as the build wrote them")
    assert headers["Vary"] == "Accept-Encoding"
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "javascript" in headers["Content-Type"]

    status, headers, body = await get(http, url, "gzip")
    assert (status, headers["Content-Encoding"], gzip.decompress(body).decode()) == (200, "gzip", SCRIPT)
    assert int(headers["Content-Length"]) == len(body) < len(SCRIPT) / 10

    status, headers, body = await get(http, url, "br;q=0, gzip;q=0.5")  # refusing br is honoured
    assert headers["Content-Encoding"] == "gzip"

    for refusing in ("", "identity", "gzip;q=0, br;q=0"):
        status, headers, body = await get(http, url, refusing)
        assert (status, headers.get("Content-Encoding"), body.decode()) == (200, None, SCRIPT)
        assert headers["Vary"] == "Accept-Encoding"


async def test_a_file_without_copies_is_gzipped_once_and_index_revalidates(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory, target: str, tmp_path: Path
) -> None:
    url = await start_proxy(target, web_portal_dir=make_compressed_dist(tmp_path / "dist"))
    status, headers, body = await get(http, url + "/", "br, gzip")  # index.html has no copies here
    assert (status, headers["Content-Encoding"], gzip.decompress(body).decode()) == (200, "gzip", INDEX)
    assert headers["Cache-Control"] == "no-cache" and headers["Vary"] == "Accept-Encoding"
    again = await get(http, url + "/", "br, gzip")
    assert again[2] == body, "the same bytes: compressed once and kept"
    async with http.get(
        url + "/", headers={"Accept-Encoding": "gzip", "If-None-Match": headers["ETag"]}, auto_decompress=False
    ) as r:
        assert (r.status, await r.read()) == (304, b"")
    status, headers, _ = await get(http, url + "/favicon.svg", "gzip")
    assert (status, headers["Content-Encoding"]) == (200, "gzip")


async def test_no_source_map_and_no_copy_is_served_by_its_own_name(
    http: aiohttp.ClientSession, start_proxy: ProxyFactory, target: str, tmp_path: Path
) -> None:
    url = await start_proxy(target, web_portal_dir=make_compressed_dist(tmp_path / "dist"))
    for name in ("index-3f9a1c.js.map", "index-3f9a1c.js.br", "index-3f9a1c.js.gz"):
        status, _, body = await get(http, f"{url}/assets/{name}", "gzip, br")
        assert status == 404 and b"sources" not in body


def test_the_built_portal_ships_compressed_copies_and_no_source_map() -> None:
    """The real build (tests/e2e builds it; skipped until it exists): every script and stylesheet has its .br and
    .gz, each smaller than the original, and there is no .map anywhere."""
    dist = REPO_ROOT / "web-proxy" / "portal" / "dist"
    scripts = sorted((dist / "assets").glob("*.js")) + sorted((dist / "assets").glob("*.css"))
    if not scripts:
        pytest.skip("the portal is not built here (scripts/up or the browser tests build it)")
    for path in scripts:
        for suffix in (".br", ".gz"):
            copy = path.with_name(path.name + suffix)
            assert copy.is_file() and copy.stat().st_size < path.stat().st_size, copy
    assert gzip.decompress((scripts[0].with_name(scripts[0].name + ".gz")).read_bytes()) == scripts[0].read_bytes()
    assert not list(dist.rglob("*.map"))
