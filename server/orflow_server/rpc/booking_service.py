"""BookingService: hold, confirm, cancel and read bookings, as the verified caller."""

from __future__ import annotations

from typing import Any

import grpc
from orflow.v1 import booking_service_pb2 as pb
from orflow.v1 import booking_service_pb2_grpc

from ..domain import day
from ..domain.access import Role
from ..domain.filters import BookingFilters
from ..domain.models import CancellationReason
from ..domain.paging import page_size_or_default
from ..ops import bookings as ops
from ..ops.context import OpsContext
from ..security.rate_limit import BookingRateLimits
from . import convert
from .auth import current_actor
from .validate import RequestChecker

Context = grpc.aio.ServicerContext[Any, Any]


class BookingService(booking_service_pb2_grpc.BookingServiceServicer):
    def __init__(self, ctx: OpsContext, *, limits: BookingRateLimits) -> None:
        self._ctx = ctx
        self._limits = limits

    async def CreateBooking(self, request: pb.CreateBookingRequest, context: Context) -> pb.CreateBookingResponse:
        actor = current_actor()
        check = RequestChecker()
        slot_id = check.positive_id("slot_id", request.slot_id)
        is_patient = actor.role is Role.PATIENT  # a patient may leave patient_id empty: it books as itself
        patient_id = check.text("patient_id", request.patient_id, max_length=64, is_required=not is_patient)
        request_id = check.text("request_id", request.request_id, max_length=128, is_required=False)
        check.raise_if_any()
        await self._limits.take(actor)
        created = await ops.create_booking(
            self._ctx.within(context), actor, slot_id=slot_id, patient_id=patient_id, request_id=request_id
        )
        return pb.CreateBookingResponse(booking=convert.booking_to_proto(created.booking), replayed=created.is_replay)

    async def GetBooking(self, request: pb.GetBookingRequest, context: Context) -> pb.GetBookingResponse:
        booking = await ops.get_booking(self._ctx.within(context), current_actor(), _booking_id(request.booking_id))
        return pb.GetBookingResponse(booking=convert.booking_to_proto(booking))

    async def ConfirmBooking(self, request: pb.ConfirmBookingRequest, context: Context) -> pb.ConfirmBookingResponse:
        booking = await ops.confirm_booking(self._ctx.within(context), current_actor(), _booking_id(request.booking_id))
        return pb.ConfirmBookingResponse(booking=convert.booking_to_proto(booking))

    async def ExtendHold(self, request: pb.ExtendHoldRequest, context: Context) -> pb.ExtendHoldResponse:
        check = RequestChecker()
        booking_id = check.positive_id("booking_id", request.booking_id)
        request_id = check.text("request_id", request.request_id, max_length=128, is_required=False)
        check.raise_if_any()
        booking = await ops.extend_hold(self._ctx.within(context), current_actor(), booking_id, request_id=request_id)
        return pb.ExtendHoldResponse(booking=convert.booking_to_proto(booking))

    async def CancelBooking(self, request: pb.CancelBookingRequest, context: Context) -> pb.CancelBookingResponse:
        check = RequestChecker()
        booking_id = check.positive_id("booking_id", request.booking_id)
        reason = check.enum_filter(
            "reason", request.reason, convert.CANCELLATION_REASON_FROM_PROTO, what="CancellationReason"
        )
        if reason is CancellationReason.SLOT_CANCELLED:
            check.fail("reason", "SLOT_CANCELLED is given only by CancelSlot")
        note = check.text("note", request.note, max_length=500, is_required=False)
        check.raise_if_any()
        booking = await ops.cancel_booking(
            self._ctx.within(context), current_actor(), booking_id, reason=reason, note=note
        )
        return pb.CancelBookingResponse(booking=convert.booking_to_proto(booking))

    async def RescheduleBooking(
        self, request: pb.RescheduleBookingRequest, context: Context
    ) -> pb.RescheduleBookingResponse:
        check = RequestChecker()
        booking_id = check.positive_id("booking_id", request.booking_id)
        slot_id = check.positive_id("slot_id", request.slot_id)
        request_id = check.text("request_id", request.request_id, max_length=128, is_required=False)
        check.raise_if_any()
        actor = current_actor()
        await self._limits.take(actor)  # a reschedule books a slot: the same budget as CreateBooking
        booking = await ops.reschedule_booking(
            self._ctx.within(context), actor, booking_id, slot_id=slot_id, request_id=request_id
        )
        return pb.RescheduleBookingResponse(booking=convert.booking_to_proto(booking))

    async def CheckInBooking(self, request: pb.CheckInBookingRequest, context: Context) -> pb.CheckInBookingResponse:
        booking = await ops.advance_booking(
            self._ctx.within(context), current_actor(), _booking_id(request.booking_id), day.CHECK_IN
        )
        return pb.CheckInBookingResponse(booking=convert.booking_to_proto(booking))

    async def StartBooking(self, request: pb.StartBookingRequest, context: Context) -> pb.StartBookingResponse:
        booking = await ops.advance_booking(
            self._ctx.within(context), current_actor(), _booking_id(request.booking_id), day.START
        )
        return pb.StartBookingResponse(booking=convert.booking_to_proto(booking))

    async def CompleteBooking(self, request: pb.CompleteBookingRequest, context: Context) -> pb.CompleteBookingResponse:
        booking = await ops.advance_booking(
            self._ctx.within(context), current_actor(), _booking_id(request.booking_id), day.COMPLETE
        )
        return pb.CompleteBookingResponse(booking=convert.booking_to_proto(booking))

    async def MarkBookingNoShow(
        self, request: pb.MarkBookingNoShowRequest, context: Context
    ) -> pb.MarkBookingNoShowResponse:
        booking = await ops.advance_booking(
            self._ctx.within(context), current_actor(), _booking_id(request.booking_id), day.NO_SHOW
        )
        return pb.MarkBookingNoShowResponse(booking=convert.booking_to_proto(booking))

    async def ListPatientBookings(
        self, request: pb.ListPatientBookingsRequest, context: Context
    ) -> pb.ListPatientBookingsResponse:
        actor = current_actor()
        check = RequestChecker()
        patient_id = check.text(
            "patient_id", request.patient_id, max_length=64, is_required=actor.role is not Role.PATIENT
        )
        status = check.enum_filter("status", request.status, convert.STATUS_FROM_PROTO, what="BookingStatus")
        check.raise_if_any()
        bookings, token = await ops.list_bookings(
            self._ctx.within(context),
            actor,
            BookingFilters(status=status, patient_id=patient_id),
            page_size=page_size_or_default(request.page_size),
            page_token=request.page_token,
        )
        return pb.ListPatientBookingsResponse(
            bookings=[convert.booking_to_proto(b) for b in bookings], next_page_token=token
        )


def _booking_id(value: int) -> int:
    check = RequestChecker()
    check.positive_id("booking_id", value)
    check.raise_if_any()
    return value
