"""Serves the built portal (Vite's dist/): hashed assets cached for a year, everything else revalidated.

Text files go compressed when the browser accepts it: the build writes name.br and name.gz beside each one
(vite.config.mts), served as they are; a file without them (a dist built otherwise) is gzipped once, on its
first request, and kept. Every compressible response says `Vary: Accept-Encoding`. Source maps are never
served, nor the compressed copies under their own names.
"""

from __future__ import annotations

import asyncio
import gzip
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from aiohttp import hdrs, web

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
NOT_BUILT = (
    "<!doctype html><meta charset=utf-8><title>OR Flow</title>"
    "<p>The portal is not built yet: run <code>scripts/up</code> (it runs npm ci and vite build).</p>"
)
COMPRESSIBLE_SUFFIXES = frozenset({".js", ".css", ".html", ".svg", ".json", ".txt"})
PRECOMPRESSED = {"br": ".br", "gzip": ".gz"}  # encoding -> suffix of the build's copy, best first
_HIDDEN_SUFFIXES = (".map", ".br", ".gz")
_CACHE_LIMIT_BYTES = 32 * 1024 * 1024


PACKAGED_DIR = "portal_dist"  # where the wheel carries the built portal, inside this package


def default_portal_dir() -> Path:
    """The portal the wheel carries (orflow_web/portal_dist), else web-proxy/portal/dist in a checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / PACKAGED_DIR
    if (packaged / "index.html").is_file():
        return packaged
    return here.parent / "portal" / "dist"


def accepted_encodings(header: str) -> set[str]:
    """The content codings an Accept-Encoding header allows (q > 0); `*` stands for br and gzip."""
    accepted: set[str] = set()
    refused: set[str] = set()
    for item in header.lower().split(","):
        name, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        (accepted if quality > 0 else refused).add(name.strip())
    if "*" in accepted:
        accepted |= set(PRECOMPRESSED) - refused
    return accepted - refused


@dataclass(frozen=True)
class _Body:
    data: bytes
    encoding: str | None  # None: sent as it is
    etag: str  # of the file and the coding: a revalidated index.html answers 304 when unchanged


class Portal:
    """GET handler for `/` and below; unknown paths without a file extension get index.html (client routes)."""

    def __init__(self, root: Path) -> None:
        self._root = root.resolve()
        self._cache: dict[_CacheKey, bytes] = {}
        self._cached_bytes = 0

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
        headers = {"Cache-Control": cache, "Content-Type": content_type}
        if target.suffix not in COMPRESSIBLE_SUFFIXES:
            return web.FileResponse(target, headers=headers)
        body = await self._body(target, accepted_encodings(request.headers.get(hdrs.ACCEPT_ENCODING, "")))
        headers[hdrs.VARY] = hdrs.ACCEPT_ENCODING  # one URL, several bodies: caches must key on the header
        headers[hdrs.ETAG] = body.etag
        if body.encoding:
            headers[hdrs.CONTENT_ENCODING] = body.encoding
        if body.etag in request.headers.get(hdrs.IF_NONE_MATCH, ""):
            return web.Response(status=304, headers=headers)
        return web.Response(body=body.data, headers=headers)

    async def _body(self, target: Path, accepted: set[str]) -> _Body:
        """The best body the browser accepts: the build's .br or .gz copy, else gzip made once, else the file."""
        source, compress, encoding, etag, key = await asyncio.to_thread(_choose, target, accepted)
        data = self._cache.get(key)
        if data is None:
            data = await asyncio.to_thread(_load, source, compress)
            if self._cached_bytes + len(data) > _CACHE_LIMIT_BYTES:
                self._cache.clear()  # a rebuilt portal's old files: start again rather than grow
                self._cached_bytes = 0
            self._cache[key] = data
            self._cached_bytes += len(data)
        return _Body(data, encoding, etag)

    def _resolve(self, path: str) -> Path | None:
        """The file under the root for this URL path; None for directories, escapes and missing files."""
        relative = path.lstrip("/") or "index.html"
        if relative.endswith(_HIDDEN_SUFFIXES):
            return None  # source maps are never served, nor the compressed copies by their own names
        try:
            candidate = (self._root / relative).resolve()
            if not candidate.is_relative_to(self._root) or not candidate.is_file():
                return None
        except (OSError, ValueError):  # a NUL byte, a name too long for the file system
            return None
        return candidate


_CacheKey = tuple[Path, str | None, int, int]


def _choose(target: Path, accepted: set[str]) -> tuple[Path, str | None, str | None, str, _CacheKey]:
    """(file to read, compress it with, Content-Encoding, ETag, cache key) for the codings the browser accepts."""
    stat = target.stat()
    version = f"{stat.st_mtime_ns:x}-{stat.st_size:x}"
    for encoding, suffix in PRECOMPRESSED.items():
        copy = target.with_name(target.name + suffix)
        if encoding in accepted and copy.is_file():
            copied = copy.stat()
            return copy, None, encoding, f'"{version}-{encoding}"', (copy, None, copied.st_mtime_ns, copied.st_size)
    if "gzip" in accepted:
        return target, "gzip", "gzip", f'"{version}-gzip"', (target, "gzip", stat.st_mtime_ns, stat.st_size)
    return target, None, None, f'"{version}"', (target, None, stat.st_mtime_ns, stat.st_size)


def _load(path: Path, compress: str | None) -> bytes:
    data = path.read_bytes()
    return gzip.compress(data, compresslevel=9, mtime=0) if compress == "gzip" else data


def _no_cache() -> dict[str, str]:
    return {"Cache-Control": REVALIDATE}
