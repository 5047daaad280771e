"""Refuses to build the proxy's wheel without the built portal it must carry (portal/dist)."""

from pathlib import Path

from setuptools import setup

_DIST = Path(__file__).resolve().parent / "portal" / "dist"

if not (_DIST / "index.html").is_file():
    raise SystemExit(
        f"{_DIST}/index.html is missing: build the portal first (scripts/up, or npm ci && npm run portal:build)"
    )

setup()
