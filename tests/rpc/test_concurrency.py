"""No double booking under real concurrency: hundreds of CreateBooking calls from several OS processes.

Each scenario inserts its rows, then starts WORKERS client processes
(tests/rpc/concurrent_client.py). Every worker opens its own channel to the
test server (which lives in this process's event loop, so the loop keeps
running while they fire), reports ready, and waits; when all are ready the
test releases them together and each fires its share of the calls at once.
The outcomes are checked call by call, and SQL then checks the invariants in
the database itself (orflow_tools.testkit.invariants, whose planted-violation
test is tests/tools/test_invariants.py): no two active bookings on one slot, or
overlapping in one room, for one surgeon or for one patient, and no equipment
type ever used beyond its quantity at any instant.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import asyncpg
import grpc
from orflow.v1 import booking_service_pb2, booking_service_pb2_grpc
from orflow_tools.testkit import invariants

from tests.conftest import REPO_ROOT
from tests.factories import error_details, future, insert_doctor, insert_equipment, insert_room, insert_slot

WORKERS = 4
CALLS = 200
SCENARIO_TIMEOUT_SECONDS = 60.0

Outcome = dict[str, Any]


# --- firing calls from several processes ----------------------------------------------------------


async def fire(target: str, calls: Sequence[dict[str, Any]], *, workers: int = WORKERS) -> list[Outcome]:
    """Runs `calls` spread over `workers` processes released together; outcomes in call order."""
    assert len(calls) >= workers
    shares = [list(range(w, len(calls), workers)) for w in range(workers)]  # round robin
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), str(REPO_ROOT / "server"), env.get("PYTHONPATH", "")) if p
    )
    procs: list[asyncio.subprocess.Process] = []
    try:
        async with asyncio.timeout(SCENARIO_TIMEOUT_SECONDS):
            for share in shares:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "tests.rpc.concurrent_client",
                    cwd=REPO_ROOT,
                    env=env,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                procs.append(proc)
                job = {"target": target, "calls": [calls[i] for i in share]}
                assert proc.stdin is not None
                proc.stdin.write((json.dumps(job) + "\n").encode())
                await proc.stdin.drain()
            # The start barrier: nobody fires until every worker is connected and waiting.
            for proc in procs:
                assert proc.stdout is not None
                line = await proc.stdout.readline()
                if line.strip() != b"ready":
                    _, err = await proc.communicate()
                    raise AssertionError(f"worker not ready: {line!r}\n{err.decode()}")
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(b"go\n")
            await asyncio.gather(*(p.stdin.drain() for p in procs if p.stdin is not None))
            results = await asyncio.gather(*(p.communicate() for p in procs))
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    outcomes: list[Outcome | None] = [None] * len(calls)
    for proc, share, (out, err) in zip(procs, shares, results, strict=True):
        assert proc.returncode == 0, f"worker failed ({proc.returncode}):\n{err.decode()}"
        reported = json.loads(out.decode().strip().splitlines()[-1])
        assert len(reported) == len(share)
        for index, outcome in zip(share, reported, strict=True):
            outcomes[index] = outcome
    assert all(o is not None for o in outcomes)
    return [o for o in outcomes if o is not None]


def failures(outcomes: Sequence[Outcome]) -> Counter[tuple[str, str]]:
    return Counter((o["code"], o["reason"]) for o in outcomes if not o["ok"])


def successes(outcomes: Sequence[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o["ok"]]


# --- invariants, checked in SQL (the test kit's one set of checks) ------------------------------------


async def assert_invariants(conn: asyncpg.Connection, outcomes: Sequence[Outcome]) -> None:
    """No clash, no over-use, and the active bookings are exactly the calls that succeeded."""
    assert await invariants.violations(conn) == invariants.NO_VIOLATIONS
    over = {e: pq for e, pq in (await invariants.peak_use(conn)).items() if pq[0] > pq[1]}
    assert over == {}
    active = await conn.fetch(
        "SELECT id, slot_id, patient_id FROM bookings WHERE status = ANY($1::text[])", list(invariants.ACTIVE_STATUSES)
    )
    assert sorted((r["id"], r["slot_id"], r["patient_id"]) for r in active) == sorted(
        (o["booking_id"], o["slot_id"], o["patient_id"]) for o in successes(outcomes)
    )
    # A refused call writes nothing.
    assert await conn.fetchval("SELECT count(*) FROM bookings") == len(active)


def calls_for(slot_ids: Sequence[int], scenario: str) -> list[dict[str, Any]]:
    """One call per slot id given, each for its own patient."""
    return [{"slot_id": s, "patient_id": f"{scenario}-patient-{i}"} for i, s in enumerate(slot_ids)]


# --- the scenarios ---------------------------------------------------------------------------------


async def test_one_slot_exactly_one_wins(db: asyncpg.Connection, target: str) -> None:
    slot_id = await insert_slot(db)

    outcomes = await fire(target, calls_for([slot_id] * CALLS, "a"))

    assert len(successes(outcomes)) == 1
    assert failures(outcomes) == {("ABORTED", "SLOT_TAKEN"): CALLS - 1}
    await assert_invariants(db, outcomes)


async def test_scarce_equipment_across_rooms_exactly_stock_wins(db: asyncpg.Connection, target: str) -> None:
    """CALLS slots, each in its own room with its own surgeon, all overlapping, all needing 1 of 2 units."""
    item = await insert_equipment(db, name="C-arm", quantity=2)
    base = future(48)
    slot_ids = [
        await insert_slot(db, start=base + timedelta(seconds=10 * i), hours=2, equipment=[(item, 1)])
        for i in range(CALLS)
    ]

    outcomes = await fire(target, calls_for(slot_ids, "b"))

    assert len(successes(outcomes)) == 2
    assert failures(outcomes) == {("ABORTED", "EQUIPMENT_UNAVAILABLE"): CALLS - 2}
    await assert_invariants(db, outcomes)
    assert (await invariants.peak_use(db))[item] == (2, 2)


async def test_one_room_overlapping_slots_exactly_one_wins(db: asyncpg.Connection, target: str) -> None:
    """CALLS slots in one room, each with its own surgeon, all overlapping one another."""
    room = await insert_room(db)
    base = future(72)
    slot_ids = [
        await insert_slot(db, room_id=room, start=base + timedelta(seconds=15 * i), hours=2) for i in range(CALLS)
    ]

    outcomes = await fire(target, calls_for(slot_ids, "c"))

    assert len(successes(outcomes)) == 1
    assert failures(outcomes) == {("ABORTED", "ROOM_BUSY"): CALLS - 1}
    await assert_invariants(db, outcomes)


async def test_mixed_contention_keeps_every_invariant(db: asyncpg.Connection, target: str) -> None:
    """Slots sharing rooms, surgeons, a one-off item and a two-unit item, at partly overlapping times."""
    rng = random.Random(20240601)
    rooms = [await insert_room(db) for _ in range(6)]
    doctors = [await insert_doctor(db) for _ in range(8)]
    scarce = await insert_equipment(db, name="Robot", quantity=1)
    pair = await insert_equipment(db, name="Laser", quantity=2)
    base = future(96)
    slot_ids = []
    for _ in range(60):
        needs = []
        if rng.random() < 0.4:
            needs.append((scarce, 1))
        if rng.random() < 0.5:
            needs.append((pair, rng.choice((1, 1, 2))))
        slot_ids.append(
            await insert_slot(
                db,
                room_id=rng.choice(rooms),
                doctor_id=rng.choice(doctors),
                start=base + timedelta(minutes=30 * rng.randrange(16)),
                hours=rng.choice((1.0, 1.5, 2.0, 3.0)),
                equipment=needs,
            )
        )

    outcomes = await fire(target, calls_for([rng.choice(slot_ids) for _ in range(CALLS)], "d"))

    assert successes(outcomes)
    conflict_reasons = {"SLOT_TAKEN", "ROOM_BUSY", "SURGEON_BUSY", "EQUIPMENT_UNAVAILABLE"}
    assert {code for code, _ in failures(outcomes)} <= {"ABORTED"}
    assert {reason for _, reason in failures(outcomes)} <= conflict_reasons
    await assert_invariants(db, outcomes)


async def test_one_patient_racing_for_many_rooms_gets_one(db: asyncpg.Connection, target: str) -> None:
    """One patient, CALLS overlapping slots with their own rooms and surgeons: the patient is not a
    locked row, so only the patient exclusion constraint stands between the racers."""
    base = future(120)
    slot_ids = [await insert_slot(db, start=base + timedelta(seconds=10 * i), hours=2) for i in range(CALLS)]
    calls = [{"slot_id": s, "patient_id": "e-the-patient"} for s in slot_ids]

    outcomes = await fire(target, calls)

    await assert_invariants(db, outcomes)
    assert len(successes(outcomes)) == 1
    assert failures(outcomes) == {("ABORTED", "PATIENT_BUSY"): CALLS - 1}


async def test_room_turnover_back_to_back_pairs_exactly_one_per_pair(db: asyncpg.Connection, target: str) -> None:
    """PAIRS pairs of back-to-back one-hour slots in a room with 30 minutes turnover, each slot raced by several
    patients: in each pair exactly one wins (the room's own turnover, read under its row lock, makes the pair
    overlap), while the same layout in a room without turnover books both slots of every pair."""
    pairs = 20
    rooms = {"turnover": await insert_room(db, turnover=timedelta(minutes=30)), "none": await insert_room(db)}
    base = future(160)
    slot_pairs: dict[str, list[tuple[int, int]]] = {}
    for kind, room in rooms.items():
        slot_pairs[kind] = []
        for k in range(pairs):
            start = base + timedelta(hours=3 * k)  # pairs 3 h apart: the second ends at 2 h, its turnover at 2.5 h
            first = await insert_slot(db, room_id=room, start=start, hours=1)
            second = await insert_slot(db, room_id=room, start=start + timedelta(hours=1), hours=1)
            slot_pairs[kind].append((first, second))
    racers = 3
    calls = [
        {"slot_id": slot, "patient_id": f"t-{kind}-{slot}-{i}"}
        for i in range(racers)
        for kind in rooms
        for pair in slot_pairs[kind]
        for slot in pair
    ]

    outcomes = await fire(target, calls)

    won = Counter(o["slot_id"] for o in successes(outcomes))
    assert all(won[a] + won[b] == 1 for a, b in slot_pairs["turnover"])
    assert all(won[a] == won[b] == 1 for a, b in slot_pairs["none"])
    # Every racer of a pair's losing slot meets the winner's room time; the other racers of a winning slot find
    # it taken.
    assert failures(outcomes) == {
        ("ABORTED", "ROOM_BUSY"): pairs * racers,
        ("ABORTED", "SLOT_TAKEN"): 3 * pairs * (racers - 1),
    }
    await assert_invariants(db, outcomes)
    # Each active booking holds its room until its end plus the room's own turnover (the default here is 0).
    held = await db.fetch(
        "SELECT b.room_id, b.room_free_time - b.end_time AS buffer FROM bookings b WHERE b.status = ANY($1::text[])",
        list(invariants.ACTIVE_STATUSES),
    )
    assert {(r["room_id"], r["buffer"]) for r in held} == {
        (rooms["turnover"], timedelta(minutes=30)),
        (rooms["none"], timedelta(0)),
    }


async def test_retries_of_one_request_all_get_the_same_booking(db: asyncpg.Connection, target: str) -> None:
    slot_id = await insert_slot(db)
    calls = [{"slot_id": slot_id, "patient_id": "f-patient", "request_id": "req-1"}] * CALLS

    outcomes = await fire(target, calls)

    assert failures(outcomes) == {}
    assert len({o["booking_id"] for o in outcomes}) == 1
    assert await db.fetchval("SELECT count(*) FROM bookings") == 1


async def test_one_request_id_reused_for_many_slots_concurrently(db: asyncpg.Connection, target: str) -> None:
    """The same patient and request_id sent for different, non-overlapping slots of one surgeon at once:
    one booking, every other call INVALID_ARGUMENT/REQUEST_ID_REUSED, as when they come one by one.

    The request_id is read under the SLOT lock only; the racers then queue on the surgeon's row lock,
    so many read "no earlier booking" before the first commits, and their inserts then hit the
    bookings_request_id_key unique index.
    """
    doctor = await insert_doctor(db)
    base = future(144)
    slot_ids = [
        await insert_slot(db, doctor_id=doctor, start=base + timedelta(hours=3 * i), hours=2) for i in range(CALLS)
    ]
    calls = [{"slot_id": s, "patient_id": "g-patient", "request_id": "req-1"} for s in slot_ids]

    outcomes = await fire(target, calls)

    await assert_invariants(db, outcomes)
    assert len(successes(outcomes)) == 1
    assert failures(outcomes) == {("INVALID_ARGUMENT", "REQUEST_ID_REUSED"): len(calls) - 1}


async def test_request_id_race_made_deterministic(
    db: asyncpg.Connection, pool: asyncpg.Pool, bookings: booking_service_pb2_grpc.BookingServiceStub
) -> None:
    """The race above without luck: hold the surgeon's row lock until both calls have read request_id
    and wait on it, then let them go. The loser must get REQUEST_ID_REUSED, not INTERNAL."""
    doctor = await insert_doctor(db)
    base = future(150)
    first = await insert_slot(db, doctor_id=doctor, start=base, hours=2)
    second = await insert_slot(db, doctor_id=doctor, start=base + timedelta(hours=3), hours=2)

    async with pool.acquire() as locker:
        lock = locker.transaction()
        await lock.start()
        try:
            await locker.execute("SELECT 1 FROM doctors WHERE id = $1 FOR UPDATE", doctor)
            calls = [
                asyncio.ensure_future(
                    bookings.CreateBooking(
                        booking_service_pb2.CreateBookingRequest(slot_id=s, patient_id="h-patient", request_id="r")
                    )
                )
                for s in (first, second)
            ]
            async with asyncio.timeout(10):
                while await db.fetchval(WAITING_ON_LOCKER_SQL, locker.get_server_pid()) < 2:  # noqa: ASYNC110 - polling PostgreSQL
                    await asyncio.sleep(0.01)
        finally:
            await lock.rollback()
        results = await asyncio.gather(*calls, return_exceptions=True)

    errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(errors) == 1, results
    info, _ = error_details(errors[0])
    assert (errors[0].code(), info.reason if info else "") == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED")
    assert await db.fetchval("SELECT count(*) FROM bookings") == 1


# Backends waiting behind the locker (which holds only the doctor's row lock): directly, or queued behind
# the first waiter on the same row (the second waiter for a row waits on the first one's tuple lock). By
# blocker, not by query text: the booking transaction is one function call whose text names no table.
WAITING_ON_LOCKER_SQL = """
WITH direct AS (SELECT pid FROM pg_stat_activity WHERE $1::int = ANY(pg_blocking_pids(pid)))
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'
  AND (pid IN (SELECT pid FROM direct) OR pg_blocking_pids(pid) && ARRAY(SELECT pid FROM direct))
"""
