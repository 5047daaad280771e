"""One load-generating client process: `python -m orflow_tools.bench.load`.

One Python process cannot saturate a server, so the bench starts several of
these. Protocol (one JSON document or word per line):

1. the parent writes the job on stdin;
2. the process connects (channel READY, or asyncpg pool open, or every
   WatchSlots stream past its snapshot) and prints ``ready``;
3. the parent writes ``go`` to every process once all are ready;
4. the process runs the job and prints one JSON line with what it measured.

Jobs (``kind``):
- ``book``: CreateBooking (``mode`` "rpc" over gRPC, round robin over the
  addresses of an ``ipv4:a,b,c`` target when ``round_robin`` is set; "web" through the
  gRPC-web proxy as the portal sends it: one frame over HTTP/1.1 with
  aiohttp) or a ceiling form (``mode`` "sql": the multi-statement
  transaction; "sqlfn": one call of orflow_book()) on the job's slots, ``concurrency`` callers in a closed
  loop for ``seconds`` (or until the slots run out), or at a fixed ``rate``
  per second (open loop; latency counts from when the call was due); ``timeout_s``
  is each RPC call's deadline (default CALL_TIMEOUT_S);
- ``race``: every call of the list fired at once (the hot-slot races);
- ``list``: ListSlots requests, ``concurrency`` callers for ``seconds``;
- ``watch``: ``subscribers`` WatchSlots streams; records when each sees each
  expected slot BOOKED.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import struct
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import aiohttp
import asyncpg
import grpc
from google.protobuf import timestamp_pb2
from orflow.v1 import booking_service_pb2, booking_service_pb2_grpc, slot_service_pb2, slot_service_pb2_grpc
from orflow_server.db.connection import PooledConnection

from . import sql

CALL_TIMEOUT_S = 30.0
Job = dict[str, Any]
Outcome = tuple[float, str]  # (latency in ms, "OK" or the gRPC code name / "TAKEN")


def _channel(target: str, index: int = 0, *, is_balanced: bool = False) -> grpc.aio.Channel:
    """A channel of its own; `is_balanced`: round robin per call over every address of the target (the way
    callers of a headless Kubernetes Service balance), instead of gRPC's default pick_first."""
    # A local subchannel pool gives each channel its own TCP connection.
    options: list[tuple[str, str | int]] = [("grpc.use_local_subchannel_pool", 1), ("bench.index", index)]
    if is_balanced:
        options.append(("grpc.lb_policy_name", "round_robin"))
    return grpc.aio.insecure_channel(target, options=options)


class Booker:
    """Books one slot per call, through RPC or straight through asyncpg (the ceiling)."""

    def __init__(self, job: Job) -> None:
        self._job = job
        self._tag = job["tag"]
        self._counter = itertools.count()
        self._channel: grpc.aio.Channel | None = None
        self._stub: booking_service_pb2_grpc.BookingServiceStub | None = None
        self._pool: asyncpg.Pool | None = None
        self._http: aiohttp.ClientSession | None = None
        self._metadata = (("authorization", f"Bearer {job.get('token', '')}"),)
        self._turnover = timedelta(seconds=float(job.get("turnover_s", 0)))
        self._hold_ttl = timedelta(seconds=float(job.get("hold_ttl_s", 120)))

    async def open(self) -> None:
        if self._job["mode"] == "web":
            size = int(self._job.get("pool_size", 10))
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=max(size, int(self._job.get("concurrency", size)))),
                timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S),
            )
        elif self._job["mode"] == "rpc":
            self._channel = _channel(self._job["target"], is_balanced=bool(self._job.get("round_robin")))
            await asyncio.wait_for(self._channel.channel_ready(), CALL_TIMEOUT_S)
            self._stub = booking_service_pb2_grpc.BookingServiceStub(self._channel)
        else:
            size = int(self._job["pool_size"])
            # The server's connection class (no reset round trip on release), so the ceiling stays the fastest form.
            self._pool = await asyncpg.create_pool(
                self._job["dsn"], min_size=size, max_size=size, connection_class=PooledConnection
            )

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
        if self._pool is not None:
            await self._pool.close()
        if self._http is not None:
            await self._http.close()

    async def _book_web(self, request_pb: booking_service_pb2.CreateBookingRequest) -> str:
        """One CreateBooking as the portal sends it: a gRPC-web frame POSTed to the proxy, status in the trailer."""
        assert self._http is not None
        body = request_pb.SerializeToString()
        headers = {
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "authorization": self._metadata[0][1],
        }
        url = f"http://{self._job['web_target']}/orflow.v1.BookingService/CreateBooking"
        try:
            async with self._http.post(url, data=_WEB_FRAME.pack(0, len(body)) + body, headers=headers) as response:
                payload = await response.read()
                status = response.headers.get("grpc-status")
        except (aiohttp.ClientError, TimeoutError):
            return "UNAVAILABLE"
        if status is None:  # in the trailer frame (the last frame of the body)
            status = _trailer_status(payload)
        return "OK" if status == "0" else _GRPC_CODE_NAMES.get(status or "", f"HTTP_{status}")

    async def book(self, slot_id: int) -> str:
        n = next(self._counter)
        patient, request = f"{self._tag}-p{n}", f"{self._tag}-r{n}"
        if self._http is not None:
            return await self._book_web(
                booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id=patient, request_id=request)
            )
        if self._stub is not None:
            request_pb = booking_service_pb2.CreateBookingRequest(
                slot_id=slot_id, patient_id=patient, request_id=request
            )
            try:
                timeout = float(self._job.get("timeout_s", CALL_TIMEOUT_S))  # the call's gRPC deadline
                await self._stub.CreateBooking(request_pb, timeout=timeout, metadata=self._metadata)  # type: ignore[misc]  # aio stub, sync stubs
            except grpc.aio.AioRpcError as error:
                return error.code().name
            return "OK"
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            try:
                if self._job["mode"] == "sqlfn":
                    is_booked = await sql.ceiling_book_function(
                        conn, slot_id, patient, request, turnover=self._turnover, hold_ttl=self._hold_ttl
                    )
                else:
                    is_booked = await sql.ceiling_book(conn, slot_id, patient, request)
            except asyncpg.IntegrityConstraintViolationError:
                return "TAKEN"
            return "OK" if is_booked else "TAKEN"


_WEB_FRAME = struct.Struct(">BI")  # gRPC-web: flag byte, big-endian length
_GRPC_CODE_NAMES = {str(code.value[0]): code.name for code in grpc.StatusCode}


def _trailer_status(body: bytes) -> str | None:
    """grpc-status from the gRPC-web body's trailer frame (flag 0x80), if there is one."""
    at = 0
    while at + _WEB_FRAME.size <= len(body):
        flag, length = _WEB_FRAME.unpack_from(body, at)
        frame = body[at + _WEB_FRAME.size : at + _WEB_FRAME.size + length]
        at += _WEB_FRAME.size + length
        if flag & 0x80:
            for line in frame.decode("ascii", "replace").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "grpc-status":
                    return value.strip()
    return None


async def _timed(call: Awaitable[str], due: float) -> Outcome:
    outcome = await call
    return (time.perf_counter() - due) * 1000.0, outcome


async def run_book(job: Job, booker: Booker, go: float) -> list[Outcome]:
    slots: Iterator[int] = iter(job["slots"])
    outcomes: list[Outcome] = []
    deadline = go + float(job["seconds"])
    if job.get("rate"):
        interval = 1.0 / float(job["rate"])
        pending: set[asyncio.Task[Outcome]] = set()
        for i, slot_id in enumerate(slots):
            due = go + i * interval
            if due >= deadline:
                break
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            pending.add(asyncio.create_task(_timed(booker.book(slot_id), due)))
        outcomes.extend(await asyncio.gather(*pending))
        return outcomes

    async def caller() -> None:
        for slot_id in slots:
            if time.perf_counter() >= deadline:
                return
            outcomes.append(await _timed(booker.book(slot_id), time.perf_counter()))

    await asyncio.gather(*(caller() for _ in range(int(job["concurrency"]))))
    return outcomes


async def run_race(job: Job, booker: Booker, go: float) -> list[Outcome]:
    return list(await asyncio.gather(*(_timed(booker.book(s), go) for s in job["slots"])))


def _list_request(spec: dict[str, Any]) -> slot_service_pb2.ListSlotsRequest:
    window = timestamp_pb2.Timestamp()
    window.FromMicroseconds(int(spec["window_start_us"]))
    return slot_service_pb2.ListSlotsRequest(
        page_size=int(spec["page_size"]),
        page_token=spec.get("page_token", ""),
        procedure_type=spec.get("procedure_type", ""),
        room_id=int(spec.get("room_id", 0)),
        available_only=bool(spec.get("available_only", False)),
        window_start=window,
    )


async def run_list(job: Job, stub: slot_service_pb2_grpc.SlotServiceStub, go: float) -> list[Outcome]:
    request = _list_request(job["request"])
    deadline = go + float(job["seconds"])
    outcomes: list[Outcome] = []

    async def caller() -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                response = await stub.ListSlots(request, timeout=CALL_TIMEOUT_S)  # type: ignore[misc]
                code = "OK" if len(response.slots) == request.page_size else "SHORT_PAGE"
            except grpc.aio.AioRpcError as error:
                code = error.code().name
            outcomes.append(((time.perf_counter() - start) * 1000.0, code))

    await asyncio.gather(*(caller() for _ in range(int(job["concurrency"]))))
    return outcomes


# Anonymous watchers see a hold as AVAILABILITY_CHANGED (issue 17, F10); staff see BOOKED.
_TAKEN = (slot_service_pb2.SLOT_CHANGE_KIND_BOOKED, slot_service_pb2.SLOT_CHANGE_KIND_AVAILABILITY_CHANGED)


class Watchers:
    """`subscribers` WatchSlots streams over a few connections; each records when it first sees a slot BOOKED."""

    def __init__(self, job: Job) -> None:
        self._job = job
        per_channel = int(job.get("streams_per_channel", 100))
        count = int(job["subscribers"])
        self._channels = [_channel(job["target"], i) for i in range(-(-count // per_channel))]
        self._per_channel = per_channel
        self._expected = set(job["expect_slots"])
        self.seen: list[dict[int, float]] = [{} for _ in range(count)]
        self.errors: Counter[str] = Counter()
        self._ready = 0
        self._all_ready = asyncio.Event()
        self._done = 0
        self._all_done = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self) -> None:
        await asyncio.gather(*(asyncio.wait_for(c.channel_ready(), CALL_TIMEOUT_S) for c in self._channels))
        for i in range(len(self.seen)):
            self._tasks.append(asyncio.create_task(self._watch(i)))
        await asyncio.wait_for(self._all_ready.wait(), 120)

    async def _watch(self, index: int) -> None:
        stub = slot_service_pb2_grpc.SlotServiceStub(self._channels[index // self._per_channel])
        request = slot_service_pb2.WatchSlotsRequest(room_id=int(self._job["room_id"]))
        seen = self.seen[index]
        is_ready = False
        try:
            async for message in stub.WatchSlots(request):
                now = time.time()
                if message.kind == slot_service_pb2.SLOT_CHANGE_KIND_SNAPSHOT_COMPLETE and not is_ready:
                    is_ready = True
                    self._mark(ready=True)
                elif message.kind in _TAKEN and not message.slot.available and message.slot.id in self._expected:
                    seen.setdefault(message.slot.id, now)
                    if len(seen) == len(self._expected):
                        break
        except grpc.aio.AioRpcError as error:
            self.errors[error.code().name] += 1
        finally:
            if not is_ready:
                self._mark(ready=True)
            self._mark(ready=False)

    def _mark(self, *, ready: bool) -> None:
        if ready:
            self._ready += 1
            if self._ready == len(self.seen):
                self._all_ready.set()
        else:
            self._done += 1
            if self._done == len(self.seen):
                self._all_done.set()

    async def wait(self, wait_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_done.wait(), wait_s)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for channel in self._channels:
            await channel.close(None)


async def _wait_for_go() -> float:
    print("ready", flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)
    if line.strip() != "go":
        raise SystemExit(f"expected 'go' on stdin, got {line!r}")
    return time.perf_counter()


def _summary(outcomes: list[Outcome], elapsed: float) -> dict[str, Any]:
    return {
        "latencies_ms": [round(ms, 3) for ms, _ in outcomes],
        "codes": [code for _, code in outcomes],
        "elapsed_s": elapsed,
    }


async def run(job: Job) -> dict[str, Any]:
    kind = job["kind"]
    if kind in ("book", "race"):
        booker = Booker(job)
        await booker.open()
        try:
            go = await _wait_for_go()
            runner: Callable[[Job, Booker, float], Awaitable[list[Outcome]]] = run_book if kind == "book" else run_race
            outcomes = await runner(job, booker, go)
            return _summary(outcomes, time.perf_counter() - go)
        finally:
            await booker.close()
    if kind == "list":
        async with _channel(job["target"]) as channel:
            await asyncio.wait_for(channel.channel_ready(), CALL_TIMEOUT_S)
            go = await _wait_for_go()
            outcomes = await run_list(job, slot_service_pb2_grpc.SlotServiceStub(channel), go)
            return _summary(outcomes, time.perf_counter() - go)
    if kind == "watch":
        watchers = Watchers(job)
        await watchers.open()
        await _wait_for_go()
        await watchers.wait(float(job["seconds"]))
        return {"seen": [{str(k): v for k, v in s.items()} for s in watchers.seen], "errors": dict(watchers.errors)}
    raise SystemExit(f"unknown job kind {kind!r}")


def main() -> None:
    job = json.loads(sys.stdin.readline())
    if niceness := int(job.get("nice", 0)):  # yields the shared cores to the measured server (the overload run)
        os.nice(niceness)
    result = asyncio.run(run(job))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
