"""Booking load from several OS processes, each with the retrying Python client (`orflow_client`).

Each process runs a few concurrent callers that book random slots of a shared
set for patients of their own, until told to stop. A caller's CreateBooking is
the client's: UNAVAILABLE and DEADLINE_EXCEEDED are retried with the SAME
request_id, so an outcome here is what an application would see. The processes
share a counter of calls in flight, so a fault injected meanwhile can be
reported with how many calls it caught.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.synchronize
import queue as queue_module
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PROCESSES = 3
CALLERS_PER_PROCESS = 4
# Enough attempts to ride out a PostgreSQL restart or a drain; the delays follow RetryInfo when the server sends one.
MAX_ATTEMPTS = 12
MAX_BACKOFF_SECONDS = 1.0

Outcome = dict[str, Any]
_SPAWN = multiprocessing.get_context("spawn")


def _run_process(
    target: str,
    token: str,
    slot_ids: Sequence[int],
    name: str,
    stop: multiprocessing.synchronize.Event,
    in_flight: Any,
    results: Any,
) -> None:
    results.put(asyncio.run(_book_until_stopped(target, token, slot_ids, name, stop, in_flight)))


async def _book_until_stopped(
    target: str,
    token: str,
    slot_ids: Sequence[int],
    name: str,
    stop: multiprocessing.synchronize.Event,
    in_flight: Any,
) -> list[Outcome]:
    from orflow_client import OrFlowClient, RetryPolicy
    from orflow_client.errors import OrFlowError

    rng = random.Random(name)
    outcomes: list[Outcome] = []
    retry = RetryPolicy(max_attempts=MAX_ATTEMPTS, max_backoff=MAX_BACKOFF_SECONDS)
    options = [("grpc.lb_policy_name", "round_robin")]

    async def caller(number: int) -> None:
        call = 0
        while not stop.is_set():
            call += 1
            slot_id = rng.choice(slot_ids)
            patient_id = f"{name}-{number}-{rng.randrange(8)}"
            with in_flight.get_lock():
                in_flight.value += 1
            try:
                booking = await client.create_booking(slot_id=slot_id, patient_id=patient_id, timeout=5)
            except OrFlowError as exc:
                outcomes.append({"ok": False, "code": exc.code.name, "reason": exc.reason})
            else:
                outcomes.append({"ok": True, "booking_id": booking.id, "slot_id": slot_id, "patient_id": patient_id})
            finally:
                with in_flight.get_lock():
                    in_flight.value -= 1
            await asyncio.sleep(rng.uniform(0, 0.02))

    import grpc

    channel = grpc.aio.insecure_channel(target, options=options + _client_options(retry))
    async with OrFlowClient(target, token=token, retry=retry, channel=channel) as client:
        await asyncio.gather(*(caller(n) for n in range(CALLERS_PER_PROCESS)))
    return outcomes


def _client_options(retry: Any) -> list[tuple[str, Any]]:
    from orflow_client._channel import ClientOptions

    return ClientOptions("unused", retry=retry).channel_options()


@dataclass
class Load:
    """Booking load running in PROCESSES processes until `finish()`."""

    processes: list[multiprocessing.process.BaseProcess]
    stop: multiprocessing.synchronize.Event
    in_flight: Any
    results: Any
    outcomes: list[Outcome] = field(default_factory=list)

    @classmethod
    def start(cls, target: str, token: str, slot_ids: Sequence[int], *, label: str) -> Load:
        stop = _SPAWN.Event()
        in_flight = _SPAWN.Value("i", 0)
        results = _SPAWN.Queue()
        processes = [
            _SPAWN.Process(
                target=_run_process,
                args=(target, token, list(slot_ids), f"{label}-p{i}", stop, in_flight, results),
                daemon=True,
            )
            for i in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        return cls(processes, stop, in_flight, results)

    @property
    def calls_in_flight(self) -> int:
        return int(self.in_flight.value)

    def finish(self, timeout: float = 60.0) -> list[Outcome]:
        """Stops the callers (each finishes its call, retries included) and returns every outcome."""
        self.stop.set()
        for _ in self.processes:
            try:
                self.outcomes += self.results.get(timeout=timeout)
            except queue_module.Empty:
                break
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
        assert all(p.exitcode == 0 for p in self.processes), [p.exitcode for p in self.processes]
        return self.outcomes


def refusals(outcomes: Sequence[Outcome]) -> Counter[str]:
    return Counter(o["code"] for o in outcomes if not o["ok"])


def acknowledged(outcomes: Sequence[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o["ok"]]
