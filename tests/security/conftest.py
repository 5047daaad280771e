"""The proxy fixtures of tests/web (a real proxy on port 0 in front of the real test server), for the probes."""

from __future__ import annotations

from ..web.conftest import http, proxy, start_proxy

__all__ = ["http", "proxy", "start_proxy"]
