"""Books the first free slot for a procedure and confirms it (run against `scripts/up`).

It needs a token in ORFLOW_TOKEN: a patient token for PATIENT_ID (or a service or admin token):

    export ORFLOW_TOKEN=$(.venv/bin/orflow token --role patient --patient MRN-1001)
    .venv/bin/python clients/python/examples/book_a_slot.py 127.0.0.1:50051 MRN-1001 [procedure]
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping, Sequence

from orflow.v1 import booking_pb2
from orflow_client import BookingConflict, OrFlowClient

USAGE = "usage: book_a_slot.py HOST:PORT PATIENT_ID [PROCEDURE]   (with a token in ORFLOW_TOKEN)"
NO_TOKEN = (
    "book_a_slot.py needs a token in ORFLOW_TOKEN, e.g.\n"
    "  export ORFLOW_TOKEN=$(.venv/bin/orflow token --role patient --patient MRN-1001)"
)


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


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    if len(argv) not in (2, 3):
        print(USAGE, file=sys.stderr)
        return 2
    token = environ.get("ORFLOW_TOKEN")
    if not token:
        print(NO_TOKEN, file=sys.stderr)
        return 2
    booking = asyncio.run(book_first_free_slot(*argv, token=token))
    if booking is None:
        print("no free slot")
        return 1
    status = booking_pb2.BookingStatus.Name(booking.status)
    print(f"booking {booking.id}: slot {booking.slot_id} for {booking.patient_id}, {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
