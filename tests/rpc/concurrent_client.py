"""A worker process that fires CreateBooking (and RescheduleBooking, and admin edit) calls concurrently at a server.

Run from the repository root: ``python -m tests.rpc.concurrent_client``.

Protocol on stdin/stdout (one JSON document or word per line):

1. the parent writes the job: ``{"target": "host:port", "calls": [{"slot_id": 1,
   "patient_id": "p-1", "request_id": ""}, ...]}`` (a call with a ``booking_id`` is a
   RescheduleBooking of that booking to ``slot_id``; a call ``{"admin": "UpdateEquipment",
   "request": {...}}`` is that AdminService call, its request in protobuf JSON, made with an admin token);
2. the worker connects, waits until its channel is READY, and prints ``ready``;
3. the parent writes ``go`` to every worker once all are ready (the start
   barrier), and each worker fires all of its calls at once (asyncio.gather);
4. the worker prints one JSON line: a list with one outcome per call, in order:
   ``{"ok": true, "booking_id": 7, "slot_id": 1}`` or
   ``{"ok": false, "code": "ABORTED", "reason": "SLOT_TAKEN", "slot_id": 1}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from orflow.v1 import admin_service_pb2, admin_service_pb2_grpc, booking_service_pb2, booking_service_pb2_grpc

from tests.auth import authorized_channel, token_for
from tests.factories import error_details

CALL_TIMEOUT_SECONDS = 30.0


Request = booking_service_pb2.CreateBookingRequest | booking_service_pb2.RescheduleBookingRequest


async def _one_call(stub: booking_service_pb2_grpc.BookingServiceStub, request: Request) -> dict[str, Any]:
    try:
        if isinstance(request, booking_service_pb2.RescheduleBookingRequest):
            response = await stub.RescheduleBooking(request, timeout=CALL_TIMEOUT_SECONDS)
        else:
            response = await stub.CreateBooking(request, timeout=CALL_TIMEOUT_SECONDS)
    except grpc.aio.AioRpcError as error:
        info, _ = error_details(error)
        return {
            "ok": False,
            "slot_id": request.slot_id,
            "patient_id": getattr(request, "patient_id", ""),
            "code": error.code().name,
            "reason": info.reason if info is not None else "",
            "message": error.details() or "",
        }
    return {
        "ok": True,
        "slot_id": request.slot_id,
        "patient_id": response.booking.patient_id,
        "booking_id": response.booking.id,
    }


async def _admin_call(stub: admin_service_pb2_grpc.AdminServiceStub, rpc: str, request: Message) -> dict[str, Any]:
    try:
        await getattr(stub, rpc)(request, timeout=CALL_TIMEOUT_SECONDS)
    except grpc.aio.AioRpcError as error:
        info, _ = error_details(error)
        reason = info.reason if info is not None else ""
        return {"ok": False, "rpc": rpc, "code": error.code().name, "reason": reason, "message": error.details() or ""}
    return {"ok": True, "rpc": rpc}


def _booking_request(call: dict[str, Any]) -> Request:
    if "booking_id" in call:
        return booking_service_pb2.RescheduleBookingRequest(
            booking_id=call["booking_id"], slot_id=call["slot_id"], request_id=call.get("request_id", "")
        )
    return booking_service_pb2.CreateBookingRequest(
        slot_id=call["slot_id"], patient_id=call["patient_id"], request_id=call.get("request_id", "")
    )


async def run(job: dict[str, Any]) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = job["calls"]
    admin_requests = {
        i: json_format.ParseDict(call["request"], getattr(admin_service_pb2, call["admin"] + "Request")())
        for i, call in enumerate(calls)
        if "admin" in call
    }
    # A service token: an internal system booking for many patients; an admin token for the edits.
    async with (
        authorized_channel(job["target"], token_for("service", "concurrency-test")) as channel,
        authorized_channel(job["target"], token_for("admin", "concurrency-admin")) as admin_channel,
    ):
        await asyncio.wait_for(channel.channel_ready(), timeout=CALL_TIMEOUT_SECONDS)
        await asyncio.wait_for(admin_channel.channel_ready(), timeout=CALL_TIMEOUT_SECONDS)
        stub = booking_service_pb2_grpc.BookingServiceStub(channel)
        admin = admin_service_pb2_grpc.AdminServiceStub(admin_channel)
        print("ready", flush=True)
        go = await asyncio.to_thread(sys.stdin.readline)
        if go.strip() != "go":
            raise SystemExit(f"expected 'go' on stdin, got {go!r}")
        return list(
            await asyncio.gather(
                *(
                    _admin_call(admin, call["admin"], admin_requests[i])
                    if i in admin_requests
                    else _one_call(stub, _booking_request(call))
                    for i, call in enumerate(calls)
                )
            )
        )


def main() -> None:
    job = json.loads(sys.stdin.readline())
    outcomes = asyncio.run(run(job))
    print(json.dumps(outcomes), flush=True)


if __name__ == "__main__":
    main()
