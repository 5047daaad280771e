"""BookingService: hold, confirm, cancel and read bookings."""

from __future__ import annotations

from typing import Any

import grpc
from orflow.v1 import booking_service_pb2 as pb
from orflow.v1 import booking_service_pb2_grpc

from ..ops import bookings as ops
from ..ops.context import OpsContext
from . import convert
from .validate import RequestChecker

Context = grpc.aio.ServicerContext[Any, Any]


class BookingService(booking_service_pb2_grpc.BookingServiceServicer):
    def __init__(self, ctx: OpsContext) -> None:
        self._ctx = ctx

    async def CreateBooking(self, request: pb.CreateBookingRequest, context: Context) -> pb.CreateBookingResponse:
        check = RequestChecker()
        slot_id = check.positive_id("slot_id", request.slot_id)
        patient_id = check.text("patient_id", request.patient_id, max_length=64)
        request_id = check.text("request_id", request.request_id, max_length=128, is_required=False)
        check.raise_if_any()
        booking = await ops.create_booking(self._ctx, slot_id=slot_id, patient_id=patient_id, request_id=request_id)
        return pb.CreateBookingResponse(booking=convert.booking_to_proto(booking))

    async def GetBooking(self, request: pb.GetBookingRequest, context: Context) -> pb.GetBookingResponse:
        booking_id = _booking_id(request.booking_id)
        return pb.GetBookingResponse(booking=convert.booking_to_proto(await ops.get_booking(self._ctx, booking_id)))

    async def ConfirmBooking(self, request: pb.ConfirmBookingRequest, context: Context) -> pb.ConfirmBookingResponse:
        booking_id = _booking_id(request.booking_id)
        booking = await ops.confirm_booking(self._ctx, booking_id)
        return pb.ConfirmBookingResponse(booking=convert.booking_to_proto(booking))

    async def CancelBooking(self, request: pb.CancelBookingRequest, context: Context) -> pb.CancelBookingResponse:
        booking_id = _booking_id(request.booking_id)
        booking = await ops.cancel_booking(self._ctx, booking_id)
        return pb.CancelBookingResponse(booking=convert.booking_to_proto(booking))


def _booking_id(value: int) -> int:
    check = RequestChecker()
    check.positive_id("booking_id", value)
    check.raise_if_any()
    return value
