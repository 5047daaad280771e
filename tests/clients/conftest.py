"""Clients under test talk to a real OR Flow server (the session's), directly or through a FlakyProxy."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from orflow_client import OrFlowClient

from ..auth import ADMIN_TOKEN
from .flaky_proxy import FlakyProxy


@pytest_asyncio.fixture(loop_scope="session")
async def client(target: str) -> AsyncIterator[OrFlowClient]:
    async with OrFlowClient(target, token=ADMIN_TOKEN) as made:
        yield made


@pytest_asyncio.fixture(loop_scope="session")
async def proxy(target: str) -> AsyncIterator[FlakyProxy]:
    made = FlakyProxy(target)
    await made.start()
    yield made
    await made.stop()
