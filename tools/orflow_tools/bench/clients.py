"""Starts load processes (bench/load.py), releases them together, and gathers what they measured."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

START_TIMEOUT_S = 180.0


class ClientGroup:
    """Several load processes behind one start barrier: `start` waits until every one is ready, `go` releases them."""

    def __init__(self, jobs: Sequence[dict[str, Any]]) -> None:
        self._jobs = list(jobs)
        self._procs: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        for job in self._jobs:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "orflow_tools.bench.load",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                limit=64 * 1024 * 1024,  # results arrive as one JSON line
            )
            self._procs.append(proc)
            assert proc.stdin is not None
            proc.stdin.write((json.dumps(job) + "\n").encode())
            await proc.stdin.drain()
        async with asyncio.timeout(START_TIMEOUT_S):
            for proc in self._procs:
                assert proc.stdout is not None
                line = await proc.stdout.readline()
                if line.strip() != b"ready":
                    await self._fail(proc, f"a load process was not ready: {line[:200]!r}")

    async def go(self) -> None:
        for proc in self._procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()

    async def results(self, wait_s: float) -> list[dict[str, Any]]:
        results = []
        async with asyncio.timeout(wait_s):
            for proc in self._procs:
                assert proc.stdout is not None
                line = await proc.stdout.readline()
                if not line.strip():
                    await self._fail(proc, "a load process ended without a result")
                results.append(json.loads(line))
            for proc in self._procs:
                await proc.wait()
        return results

    async def _fail(self, proc: asyncio.subprocess.Process, message: str) -> None:
        assert proc.stderr is not None
        self.kill()
        err = await proc.stderr.read()
        raise RuntimeError(f"{message}\n{err.decode(errors='replace')[-3000:]}")

    def kill(self) -> None:
        for proc in self._procs:
            if proc.returncode is None:
                proc.kill()


async def run_clients(jobs: Sequence[dict[str, Any]], *, wait_s: float) -> list[dict[str, Any]]:
    """Start, release together, collect: the whole life of a group that needs nothing in between."""
    group = ClientGroup(jobs)
    try:
        await group.start()
        await group.go()
        return await group.results(wait_s)
    finally:
        group.kill()
