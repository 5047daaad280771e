"""Serves the built portal (Vite's dist/): hashed assets cached for a year, everything else revalidated."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from aiohttp import web

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
NOT_BUILT = (
    "<!doctype html><meta charset=utf-8><title>OR Flow</title>"
    "<p>The portal is not built yet: run <code>scripts/up</code> (it runs npm ci and vite build).</p>"
)


PACKAGED_DIR = "portal_dist"  # where the wheel carries the built portal, inside this package


def default_portal_dir() -> Path:
    """The portal the wheel carries (orflow_web/portal_dist), else web-proxy/portal/dist in a checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / PACKAGED_DIR
    if (packaged / "index.html").is_file():
        return packaged
    return here.parent / "portal" / "dist"


class Portal:
    """GET handler for `/` and below; unknown paths without a file extension get index.html (client routes)."""

    def __init__(self, root: Path) -> None:
        self._root = root.resolve()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        index = self._root / "index.html"
        if not index.is_file():
            return web.Response(status=503, text=NOT_BUILT, content_type="text/html", headers=_no_cache())
        target = self._resolve(request.path)
        if target is None:
            if "." in request.path.rsplit("/", 1)[-1]:
                raise web.HTTPNotFound(text="not found")
            target = index
        cache = IMMUTABLE if target.parent == self._root / "assets" else REVALIDATE
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return web.FileResponse(target, headers={"Cache-Control": cache, "Content-Type": content_type})

    def _resolve(self, path: str) -> Path | None:
        """The file under the root for this URL path; None for directories, escapes and missing files."""
        relative = path.lstrip("/") or "index.html"
        if relative.endswith(".map"):
            return None  # source maps are never served, even if a development build left some
        try:
            candidate = (self._root / relative).resolve()
            if not candidate.is_relative_to(self._root) or not candidate.is_file():
                return None
        except (OSError, ValueError):  # a NUL byte, a name too long for the file system
            return None
        return candidate


def _no_cache() -> dict[str, str]:
    return {"Cache-Control": REVALIDATE}
