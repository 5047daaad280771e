"""Retries through a proxy that fails on cue, in front of the real server, then checked in SQL."""

from __future__ import annotations

import json
from datetime import timedelta

import asyncpg
import pytest
from orflow.v1 import booking_service_pb2
from orflow_client import OrFlowClient, RetryPolicy, SlotTaken, Unavailable

from ..auth import ADMIN_TOKEN
from ..factories import insert_slot
from .flaky_proxy import FlakyProxy

CREATE = "/orflow.v1.BookingService/CreateBooking"
LIST_SLOTS = "/orflow.v1.SlotService/ListSlots"
FAST = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05)


async def test_lost_reply_is_retried_without_double_booking(proxy: FlakyProxy, db: asyncpg.Connection) -> None:
    slot_id = await insert_slot(db)
    proxy.plan(CREATE, "drop-reply")

    async with OrFlowClient(proxy.address, token=ADMIN_TOKEN, retry=FAST) as client:
        booking = await client.create_booking(slot_id=slot_id, patient_id="p-retry")

    sent = [booking_service_pb2.CreateBookingRequest.FromString(raw) for raw in proxy.calls_to(CREATE)]
    assert len(sent) == 2, "the server saw the call twice"
    assert sent[0].request_id == sent[1].request_id == booking.request_id != ""
    rows = await db.fetch("SELECT id, request_id FROM bookings WHERE slot_id = $1", slot_id)
    assert [(r["id"], r["request_id"]) for r in rows] == [(booking.id, booking.request_id)]


async def test_a_deadline_passing_is_retried_with_the_same_request_id(
    proxy: FlakyProxy, db: asyncpg.Connection
) -> None:
    slot_id = await insert_slot(db)
    proxy.slow_seconds = 1.0
    proxy.plan(CREATE, "slow-reply")

    async with OrFlowClient(proxy.address, token=ADMIN_TOKEN, retry=FAST, timeout=0.3) as client:
        booking = await client.create_booking(slot_id=slot_id, patient_id="p-slow")

    assert len(proxy.calls_to(CREATE)) == 2
    assert await db.fetchval("SELECT count(*) FROM bookings WHERE slot_id = $1", slot_id) == 1
    assert await db.fetchval("SELECT id FROM bookings WHERE slot_id = $1", slot_id) == booking.id


async def test_gives_up_after_max_attempts(proxy: FlakyProxy, db: asyncpg.Connection) -> None:
    slot_id = await insert_slot(db)
    proxy.plan(CREATE, "refuse", "refuse", "refuse", "refuse")

    async with OrFlowClient(proxy.address, token=ADMIN_TOKEN, retry=FAST) as client:
        with pytest.raises(Unavailable):
            await client.create_booking(slot_id=slot_id, patient_id="p-down")

    assert len(proxy.calls_to(CREATE)) == FAST.max_attempts
    assert await db.fetchval("SELECT count(*) FROM bookings") == 0


async def test_a_refusal_is_not_retried(proxy: FlakyProxy, db: asyncpg.Connection) -> None:
    slot_id = await insert_slot(db)
    async with OrFlowClient(proxy.address, token=ADMIN_TOKEN, retry=FAST) as client:
        await client.create_booking(slot_id=slot_id, patient_id="p-1")
        with pytest.raises(SlotTaken):
            await client.create_booking(slot_id=slot_id, patient_id="p-2")

    assert len(proxy.calls_to(CREATE)) == 2  # one each: ABORTED is an answer, not a failure to reach


async def test_reads_are_retried_by_the_service_config(proxy: FlakyProxy, db: asyncpg.Connection) -> None:
    slot_id = await insert_slot(db)
    proxy.plan(LIST_SLOTS, "refuse")

    async with OrFlowClient(proxy.address, token=ADMIN_TOKEN, retry=FAST) as client:
        page = await client.list_slots_page()

    assert [s.id for s in page.slots] == [slot_id]
    assert len(proxy.calls_to(LIST_SLOTS)) == 2


def test_the_service_config_retries_exactly_the_no_side_effects_methods() -> None:
    config = json.loads(RetryPolicy().service_config())
    names = {(n["service"].rsplit(".", 1)[1], n["method"]) for n in config["methodConfig"][0]["name"]}
    assert ("BookingService", "GetBooking") in names and ("SlotService", "ListSlots") in names
    assert not {("BookingService", "CreateBooking"), ("AdminService", "SeedDatabase")} & names


def test_backoffs_grow_to_the_cap_with_jitter() -> None:
    policy = RetryPolicy(max_attempts=6, initial_backoff=0.1, max_backoff=0.4, multiplier=2)
    ceilings = [0.1, 0.2, 0.4, 0.4, 0.4]
    pauses = list(policy.backoffs())
    assert len(pauses) == 5
    assert all(0 <= p <= c for p, c in zip(pauses, ceilings, strict=True))
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_a_retry_waits_at_least_the_servers_retry_info_delay() -> None:
    policy = RetryPolicy(initial_backoff=0.01, max_backoff=0.05)
    assert policy.pause(0.02, timedelta(seconds=0.5)) == 0.5  # the server said how long to stay away
    assert policy.pause(0.02, timedelta(seconds=0.001)) == 0.02  # never sooner than our own backoff
    assert policy.pause(0.02, None) == 0.02
