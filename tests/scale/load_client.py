"""A client process that books across several servers, round robin, the way callers of a headless Service do.

Run from the repository root: ``python -m tests.scale.load_client``.

Protocol (one line each): the parent writes the job, ``{"targets": ["host:port", ...],
"calls": [{"slot_id": 1, "patient_id": "p-1", "request_id": "r-1", "confirm": true}, ...],
"concurrency": 8}``; the client prints ``ready`` once its channel is READY, waits for ``go``,
runs the calls (each retried with its request_id while a server is UNAVAILABLE: the same
request can never book twice) and prints one JSON list, one outcome per call.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import grpc
from orflow.v1 import booking_pb2, booking_service_pb2, booking_service_pb2_grpc

from tests.auth import bearer, token_for
from tests.factories import error_details

CALL_TIMEOUT_SECONDS = 30.0
RETRIES = 8


def round_robin_target(targets: list[str]) -> str:
    """One gRPC target over every address (what DNS of a headless Service returns), balanced per call."""
    return "ipv4:" + ",".join(targets)


ROUND_ROBIN = (("grpc.lb_policy_name", "round_robin"),)
METADATA = bearer(token_for("service", "scale-test"))  # a service token: one system booking for many patients


async def _retrying(call: Any, request: Any, outcome: dict[str, Any]) -> Any:
    """The call, repeated while servers are UNAVAILABLE (round robin moves on to a live one)."""
    for attempt in range(RETRIES):
        try:
            return await call(request, timeout=CALL_TIMEOUT_SECONDS, metadata=METADATA)
        except grpc.aio.AioRpcError as error:
            if error.code() is not grpc.StatusCode.UNAVAILABLE or attempt + 1 == RETRIES:
                raise
            outcome["unavailable"] += 1
            await asyncio.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


async def _create(stub: booking_service_pb2_grpc.BookingServiceStub, call: dict[str, Any]) -> dict[str, Any]:
    """CreateBooking (same request_id on every retry), then ConfirmBooking if asked; one outcome."""
    request = booking_service_pb2.CreateBookingRequest(
        slot_id=call["slot_id"], patient_id=call["patient_id"], request_id=call["request_id"]
    )
    outcome: dict[str, Any] = {"slot_id": call["slot_id"], "patient_id": call["patient_id"], "unavailable": 0}
    try:
        booking = (await _retrying(stub.CreateBooking, request, outcome)).booking
        if call.get("confirm") and booking.status == booking_pb2.BOOKING_STATUS_PENDING:
            confirm = booking_service_pb2.ConfirmBookingRequest(booking_id=booking.id)
            booking = await _confirm(stub, confirm, outcome)
    except grpc.aio.AioRpcError as error:
        info, _ = error_details(error)
        reason = info.reason if info else ""
        return {**outcome, "ok": False, "code": error.code().name, "reason": reason, "message": error.details()}
    status = booking_pb2.BookingStatus.Name(booking.status).removeprefix("BOOKING_STATUS_")
    return {**outcome, "ok": True, "booking_id": booking.id, "status": status, "time": time.time()}


async def _confirm(
    stub: booking_service_pb2_grpc.BookingServiceStub,
    request: booking_service_pb2.ConfirmBookingRequest,
    outcome: dict[str, Any],
) -> Any:
    """A confirm whose answer was lost with a killed server may have committed: a retry refused as not
    PENDING reads the booking back, and a CONFIRMED one is the confirm's success."""
    retried = outcome["unavailable"]
    try:
        return (await _retrying(stub.ConfirmBooking, request, outcome)).booking
    except grpc.aio.AioRpcError as error:
        if outcome["unavailable"] == retried or error.code() is not grpc.StatusCode.FAILED_PRECONDITION:
            raise
        get = booking_service_pb2.GetBookingRequest(booking_id=request.booking_id)
        booking = (await _retrying(stub.GetBooking, get, outcome)).booking
        if booking.status != booking_pb2.BOOKING_STATUS_CONFIRMED:
            raise
        return booking


async def run(job: dict[str, Any]) -> list[dict[str, Any]]:
    target = round_robin_target(job["targets"])
    async with grpc.aio.insecure_channel(target, options=ROUND_ROBIN) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=CALL_TIMEOUT_SECONDS)
        stub = booking_service_pb2_grpc.BookingServiceStub(channel)
        print("ready", flush=True)
        go = await asyncio.to_thread(sys.stdin.readline)
        if go.strip() != "go":
            raise SystemExit(f"expected 'go' on stdin, got {go!r}")
        gate = asyncio.Semaphore(job["concurrency"])

        async def one(call: dict[str, Any]) -> dict[str, Any]:
            async with gate:
                return await _create(stub, call)

        return list(await asyncio.gather(*(one(call) for call in job["calls"])))


def main() -> None:
    job = json.loads(sys.stdin.readline())
    print(json.dumps(asyncio.run(run(job))), flush=True)


if __name__ == "__main__":
    main()
