"""100 concurrent POST Appointment on one Slot from several processes, each with its own HTTP client: exactly
one 201, the rest 409 OperationOutcomes (SLOT_TAKEN), and the SQL invariants clean (orflow_tools.testkit)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from typing import Any

import asyncpg
import pytest
from orflow_tools.testkit import invariants

from tests.auth import token_for
from tests.conftest import REPO_ROOT
from tests.factories import insert_equipment, insert_slot
from tests.fhir.conftest import validated

WORKERS = 4
CALLS = 100
TIMEOUT_SECONDS = 90.0


async def fire(base: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spreads `calls` over WORKERS processes released together (the barrier of tests/rpc/test_concurrency.py)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    shares = [calls[w::WORKERS] for w in range(WORKERS)]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.fhir.concurrent_client",
            cwd=REPO_ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in shares
    ]
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            token = token_for("service", "fhir-concurrency")
            for proc, share in zip(procs, shares, strict=True):
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write((json.dumps({"base": base, "token": token, "calls": share}) + "\n").encode())
                await proc.stdin.drain()
            for proc in procs:
                assert proc.stdout is not None
                line = await proc.stdout.readline()
                assert line.strip() == b"ready", (line, (await proc.communicate())[1].decode())
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(b"go\n")
            results = await asyncio.gather(*(p.communicate() for p in procs))
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    outcomes = []
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err.decode()
        outcomes.extend(json.loads(out.decode().strip().splitlines()[-1]))
    return outcomes


@pytest.mark.slow  # 8-30 s on this shared 2-core machine (4 client processes, 100 HTTP calls)
async def test_hundred_concurrent_holds_of_one_slot_make_exactly_one(db: asyncpg.Connection, fhir_base: str) -> None:
    ventilator = await insert_equipment(db, quantity=1)
    slot_id = await insert_slot(db, equipment=[(ventilator, 1)])
    calls = [{"slot_id": slot_id, "patient_id": f"fhir-race-{i}"} for i in range(CALLS)]

    outcomes = await fire(fhir_base, calls)

    counts = Counter((o["status"], o.get("reason", "")) for o in outcomes)
    print(f"\n{CALLS} concurrent POST Appointment on Slot/{slot_id}: {dict(counts)}")
    assert counts == {(201, ""): 1, (409, "SLOT_TAKEN"): CALLS - 1}
    for outcome in outcomes:
        validated(outcome["body"])
    [winner] = [o for o in outcomes if o["status"] == 201]
    assert await invariants.violations(db) == invariants.NO_VIOLATIONS
    assert all(used <= quantity for used, quantity in (await invariants.peak_use(db)).values())
    rows = await db.fetch("SELECT id, patient_id, status FROM bookings")
    assert [(str(r["id"]), r["patient_id"], r["status"]) for r in rows] == [
        (winner["id"], winner["patient_id"], "PENDING")
    ]
