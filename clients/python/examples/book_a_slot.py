"""Books the first free slot for a procedure and confirms it (run against `scripts/up`).

python clients/python/examples/book_a_slot.py 127.0.0.1:50051 P-1001 [procedure]
"""

from __future__ import annotations

import asyncio
import os
import sys

from orflow.v1 import booking_pb2
from orflow_client import BookingConflict, OrFlowClient


async def book_first_free_slot(
    target: str, patient_id: str, procedure: str = "", *, token: str | None = None
) -> booking_pb2.Booking | None:
    async with OrFlowClient(target, token=token) as client:
        async for slot in client.list_slots(procedure_type=procedure, available_only=True):
            try:
                hold = await client.create_booking(slot_id=slot.id, patient_id=patient_id)
            except BookingConflict as exc:  # taken a moment ago, or this patient is busy then
                print(f"slot {slot.id}: {exc.reason}, trying the next one")
                continue
            return await client.confirm_booking(hold.id)
    return None


if __name__ == "__main__":
    booking = asyncio.run(book_first_free_slot(*sys.argv[1:4], token=os.environ.get("ORFLOW_TOKEN")))
    print(booking if booking is not None else "no free slot")
