"""The booking rule, model-checked: a hypothesis state machine drives the REAL server (gRPC, PostgreSQL).

Random create / replay / confirm / cancel / expire (expire_time moved back in SQL) / concurrent batches over a
small world: rooms A and B with a 30-minute turnover, surgeons X and Y, one ventilator, three patients, six
overlapping slots. After every step every booking as the server reads it (status and failure reason), every
refusal reason, and the SQL invariants are compared with `rule.World`, a pure-Python model written from the
README. A concurrent batch may come out as ANY serial order of its calls: the outcome must equal one of them.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, ClassVar

import asyncpg
import grpc
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from orflow.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    booking_pb2,
    booking_service_pb2,
    booking_service_pb2_grpc,
)
from orflow_server.app import build_server
from orflow_server.jobs import BufferedExpiryScheduler, SaqExpiryScheduler
from orflow_tools.testkit.databases import fresh_database
from orflow_tools.testkit.invariants import NO_VIOLATIONS, violations
from saq import Queue

from tests.auth import authorized_channel
from tests.conftest import TEST_SETTINGS
from tests.factories import error_details, future, insert_doctor, insert_equipment, insert_room, insert_slot
from tests.fuzz.conftest import Bridge

from .rule import Booking, Slot, World

TURNOVER = 30
PATIENTS = ("p-1", "p-2", "p-3")
# Minutes from 08:00 three days ahead. A: 0 and 4 clash; 1 follows 0 inside the turnover. B: 3 starts inside 2's
# turnover, 5 starts exactly when 3's ends. X: 0 and 2 overlap; Y: 1, 3 and 4 against each other. Vent: 0, 2, 4, 5.
SLOTS = (
    Slot("A", "X", 0, 120, (("vent", 1),)),
    Slot("A", "Y", 120, 240),
    Slot("B", "X", 60, 180, (("vent", 1),)),
    Slot("B", "Y", 195, 300),
    Slot("A", "Y", 0, 120, (("vent", 1),)),
    Slot("B", "Y", 330, 390, (("vent", 1),)),
)
STOCK = {"vent": 1}
# CI size (about 20-35 s here: marked slow); ORFLOW_MODEL_EXAMPLES / ORFLOW_MODEL_STEPS for a long run.
STEPS = int(os.environ.get("ORFLOW_MODEL_STEPS", "20"))
EXAMPLES = int(os.environ.get("ORFLOW_MODEL_EXAMPLES", "10"))
RUN: dict[str, float] = {"examples": 0, "steps": 0}

STATUS = {v: k.removeprefix("BOOKING_STATUS_") for k, v in booking_pb2.BookingStatus.items()}
FAILURE = {
    v: k.removeprefix("FAILURE_REASON_").replace("UNSPECIFIED", "") for k, v in booking_pb2.FailureReason.items()
}
Outcome = tuple[str, int | None]  # ("OK", booking id) or (ErrorInfo reason, None)


@dataclass(frozen=True)
class Target:
    bridge: Bridge
    pool: asyncpg.Pool
    stub: booking_service_pb2_grpc.BookingServiceStub
    admin: admin_service_pb2_grpc.AdminServiceStub


async def _reset(pool: asyncpg.Pool) -> list[int]:
    """The world in SQL, from nothing; returns the slot ids in SLOTS order."""
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE bookings, slot_equipment, slots, equipment, doctors, rooms RESTART IDENTITY")
        rooms = {name: await insert_room(conn, name=name) for name in ("A", "B")}
        surgeons = {name: await insert_doctor(conn, name=name) for name in ("X", "Y")}
        items = {name: await insert_equipment(conn, name=name, quantity=n) for name, n in STOCK.items()}
        base = future(72).replace(hour=8, minute=0)
        return [
            await insert_slot(
                conn,
                room_id=rooms[s.room],
                doctor_id=surgeons[s.surgeon],
                start=base + timedelta(minutes=s.start),
                hours=(s.end - s.start) / 60,
                equipment=[(items[name], n) for name, n in s.equipment],
            )
            for s in SLOTS
        ]


async def _create(target: Target, slot_id: int, patient: str, request_id: str) -> Outcome:
    request = booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id=patient, request_id=request_id)
    try:
        response = await target.stub.CreateBooking(request)
    except grpc.aio.AioRpcError as err:
        info, _ = error_details(err)
        return (info.reason if info else err.code().name), None
    return "OK", response.booking.id


async def _change(target: Target, method: str, booking_id: int) -> str | None:
    """Confirm or cancel; the refusal's reason, or None."""
    call = getattr(target.stub, method)
    request = getattr(booking_service_pb2, f"{method}Request")(booking_id=booking_id)
    try:
        await call(request)
    except grpc.aio.AioRpcError as err:
        info, _ = error_details(err)
        return info.reason if info else err.code().name
    return None


async def _server_view(target: Target) -> tuple[dict[int, tuple[int, str, str, str]], int, dict[str, int]]:
    """Every booking as the server reads it (admin ListBookings), the SQL row count, and the invariant checks."""
    seen: dict[int, tuple[int, str, str, str]] = {}
    token = ""
    while True:
        page = await target.admin.ListBookings(admin_service_pb2.ListBookingsRequest(page_size=200, page_token=token))
        for b in page.bookings:
            seen[b.id] = (b.slot_id, b.patient_id, STATUS[b.status], FAILURE[b.failure_reason])
        token = page.next_page_token
        if not token:
            break
    async with target.pool.acquire() as conn:
        return seen, int(await conn.fetchval("SELECT count(*) FROM bookings")), await violations(conn)


def _serial_world(world: World, calls: Sequence[tuple[int, str, str]], outcomes: Sequence[Outcome]) -> World | None:
    """The model after SOME serial order of `calls` that gives exactly `outcomes`, or None if no order does."""
    for order in itertools.permutations(range(len(calls))):
        trial = world.copy()
        for i in order:
            slot, patient, request_id = calls[i]
            expected, earlier = trial.create(slot, patient, request_id)
            got, booking_id = outcomes[i]
            if expected == "BOOKED":
                if got != "OK" or booking_id is None or booking_id in trial.bookings:
                    break
                trial.bookings[booking_id] = Booking(slot, patient, request_id)
            elif expected == "REPLAYED":
                if (got, booking_id) != ("OK", earlier):
                    break
            elif got != expected:
                break
        else:
            return trial
    return None


class BookingMachine(RuleBasedStateMachine):
    target: ClassVar[Target]

    def __init__(self) -> None:
        super().__init__()
        self.slot_ids = self.run(_reset(self.target.pool))
        self.world = World(list(SLOTS), dict(STOCK), TURNOVER)
        self.requests: list[tuple[int, str, str]] = []  # every (slot, patient, request_id) sent
        RUN["examples"] += 1

    def run(self, coro: Any) -> Any:
        return self.target.bridge.run(coro)

    def _apply_create(self, slot: int, patient: str, request_id: str) -> None:
        self.requests.append((slot, patient, request_id))
        got = self.run(_create(self.target, self.slot_ids[slot], patient, request_id))
        world = _serial_world(self.world, [(slot, patient, request_id)], [got])
        assert world is not None, f"create(slot {slot}, {patient}, {request_id}): server {got}, model disagrees"
        self.world = world

    @rule(slot=st.integers(0, len(SLOTS) - 1), patient=st.sampled_from(PATIENTS))
    def create(self, slot: int, patient: str) -> None:
        self._apply_create(slot, patient, uuid.uuid4().hex)

    @precondition(lambda self: self.requests)
    @rule(data=st.data(), same_slot=st.booleans())
    def replay(self, data: st.DataObject, same_slot: bool) -> None:
        """A retry of an earlier request_id (a client retry), on its slot or, wrongly, on another."""
        slot, patient, request_id = data.draw(st.sampled_from(self.requests))
        other = data.draw(st.integers(0, len(SLOTS) - 1))
        self._apply_create(slot if same_slot else other, patient, request_id)

    @rule(
        calls=st.lists(st.tuples(st.integers(0, len(SLOTS) - 1), st.sampled_from(PATIENTS)), min_size=2, max_size=4),
        duplicate=st.booleans(),
    )
    def concurrent(self, calls: list[tuple[int, str]], duplicate: bool) -> None:
        """Several CreateBooking at once (asyncio.gather); with `duplicate` the first is also sent twice more."""
        batch = [(slot, patient, uuid.uuid4().hex) for slot, patient in calls]
        if duplicate:
            batch += [batch[0], batch[0]]
        self.requests.extend(batch)

        async def together() -> list[Outcome]:
            return list(await asyncio.gather(*(_create(self.target, self.slot_ids[s], p, r) for s, p, r in batch)))

        outcomes = self.run(together())
        world = _serial_world(self.world, batch, outcomes)
        assert world is not None, f"batch {batch}: server {outcomes} matches no serial order of the model"
        self.world = world

    def _booking(self, data: st.DataObject) -> int:
        return data.draw(st.sampled_from(sorted(self.world.bookings)))

    @precondition(lambda self: self.world.bookings)
    @rule(data=st.data())
    def confirm(self, data: st.DataObject) -> None:
        booking_id = self._booking(data)
        got = self.run(_change(self.target, "ConfirmBooking", booking_id))
        assert got == self.world.confirm(booking_id), f"confirm {booking_id}: server {got}"

    @precondition(lambda self: self.world.bookings)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        booking_id = self._booking(data)
        got = self.run(_change(self.target, "CancelBooking", booking_id))
        assert got == self.world.cancel(booking_id), f"cancel {booking_id}: server {got}"

    @precondition(lambda self: any(b.status == "PENDING" for b in self.world.bookings.values()))
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        """The hold's TTL passes: expire_time moved back in SQL (no job runs; readers and CreateBooking see it)."""
        booking_id = data.draw(
            st.sampled_from(sorted(i for i, b in self.world.bookings.items() if b.status == "PENDING"))
        )

        async def move_back() -> None:
            async with self.target.pool.acquire() as conn:
                await conn.execute(
                    "UPDATE bookings SET expire_time = now() - interval '1 second'"
                    " WHERE id = $1 AND status = 'PENDING'",
                    booking_id,
                )

        self.run(move_back())
        self.world.expire(booking_id)

    @invariant()
    def server_reads_as_the_model(self) -> None:
        RUN["steps"] += 1
        seen, rows, broken = self.run(_server_view(self.target))
        expected = {i: (self.slot_ids[b.slot], b.patient, b.status, b.failure) for i, b in self.world.bookings.items()}
        assert seen == expected
        assert rows == len(expected), "a refused call wrote a booking"
        assert broken == NO_VIOLATIONS


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def model_target(server_url: str, saq_queue: Queue) -> AsyncIterator[Target]:
    """A server with a 30-minute turnover and hour-long holds (no hold expires by itself mid-example)."""
    async with fresh_database(server_url, prefix="orflow_model") as url:
        pool = await asyncpg.create_pool(url, min_size=2, max_size=10)
        assert pool is not None
        scheduler = BufferedExpiryScheduler(SaqExpiryScheduler(saq_queue))
        overrides = {"turnover": timedelta(minutes=TURNOVER), "hold_ttl": timedelta(hours=1)}
        server = build_server(replace(TEST_SETTINGS, **overrides), pool=pool, expiry=scheduler, listen_dsn=url)
        await server.start()
        channel = authorized_channel(f"127.0.0.1:{server.port}")
        try:
            yield Target(
                Bridge(asyncio.get_running_loop()),
                pool,
                booking_service_pb2_grpc.BookingServiceStub(channel),
                admin_service_pb2_grpc.AdminServiceStub(channel),
            )
        finally:
            await channel.close()
            await server.stop(grace=None)
            await scheduler.flush()
            await pool.close()


def _machine(target: Target) -> type[BookingMachine]:
    return type("Machine", (BookingMachine,), {"target": target})


@pytest.mark.slow
async def test_the_server_follows_the_booking_rule(model_target: Target) -> None:
    machine = _machine(model_target)
    started = time.monotonic()
    run_settings = settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, suppress_health_check=list(HealthCheck)
    )
    await asyncio.to_thread(run_state_machine_as_test, machine, settings=run_settings)
    print(
        f"\nbooking state machine: {RUN['examples']:.0f} examples, {RUN['steps']:.0f} checked steps, "
        f"{time.monotonic() - started:.1f} s"
    )
    assert RUN["steps"] >= EXAMPLES
