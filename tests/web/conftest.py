"""Proxy fixtures: the real proxy app (aiohttp, port 0) in front of the real test server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from orflow_tools.testkit.ports import free_port
from orflow_web.app import start_proxy as start_proxy_site
from orflow_web.app import upstream_channel
from orflow_web.settings import ProxySettings

from tests.auth import TEST_SECRET

ProxyFactory = Callable[..., Awaitable[str]]
__all__ = ["ProxyFactory", "free_port"]  # test_proxy.py takes free_port from here

# What the test server expects: tokens dev sign-in mints are signed with the test secret.
PROXY_TEST_SETTINGS = ProxySettings(auth_secret=TEST_SECRET)


@pytest_asyncio.fixture(loop_scope="session")
async def start_proxy() -> AsyncIterator[ProxyFactory]:
    """Starts a proxy on port 0 in front of `upstream` with settings overrides; returns its base URL."""
    cleanups: list[Callable[[], Awaitable[Any]]] = []

    async def start(upstream: str, **overrides: Any) -> str:
        settings = replace(PROXY_TEST_SETTINGS, grpc_addr=upstream, **overrides)
        channel = upstream_channel(settings)  # the channel `orflow proxy` dials (round robin)
        runner = await start_proxy_site(replace(settings, web_addr="127.0.0.1:0"), channel=channel)
        cleanups.extend([runner.cleanup, channel.close])
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield start
    for cleanup in cleanups:
        await cleanup()


@pytest_asyncio.fixture(loop_scope="session")
async def proxy(start_proxy: ProxyFactory, target: str, tmp_path: Path) -> str:
    """The proxy in front of the shared test server (1 MiB body limit, portal dir with no build)."""
    return await start_proxy(target, web_portal_dir=tmp_path / "no-portal")


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session
