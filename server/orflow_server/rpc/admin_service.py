"""AdminService: reset demo data, publish slots, inventory, bookings report, audit trail (admin role only)."""

from __future__ import annotations

from typing import Any

import grpc
from orflow.v1 import admin_service_pb2 as pb
from orflow.v1 import admin_service_pb2_grpc

from ..domain.filters import AuditFilters, BookingFilters
from ..domain.models import EquipmentNeed, NewSlot
from ..domain.paging import page_size_or_default
from ..domain.rules import MAX_EQUIPMENT_QUANTITY
from ..ops import audit as audit_ops
from ..ops import bookings as booking_ops
from ..ops import inventory as inventory_ops
from ..ops import seed as seed_ops
from ..ops import slots as slot_ops
from ..ops.context import OpsContext
from . import convert
from .auth import current_actor
from .validate import RequestChecker

Context = grpc.aio.ServicerContext[Any, Any]
MAX_EQUIPMENT_PER_SLOT = 50


class AdminService(admin_service_pb2_grpc.AdminServiceServicer):
    def __init__(self, ctx: OpsContext) -> None:
        self._ctx = ctx

    async def SeedDatabase(self, request: pb.SeedDatabaseRequest, context: Context) -> pb.SeedDatabaseResponse:
        rooms, doctors, equipment, slots = await seed_ops.seed_database(self._ctx.within(context), current_actor())
        return pb.SeedDatabaseResponse(
            room_count=rooms, doctor_count=doctors, equipment_count=equipment, slot_count=slots
        )

    async def ListBookings(self, request: pb.ListBookingsRequest, context: Context) -> pb.ListBookingsResponse:
        check = RequestChecker()
        filters = BookingFilters(
            status=check.enum_filter("status", request.status, convert.STATUS_FROM_PROTO, what="BookingStatus"),
            patient_id=check.text("patient_id", request.patient_id, max_length=64, is_required=False),
            slot_id=check.optional_id("slot_id", request.slot_id),
        )
        check.raise_if_any()
        bookings, token = await booking_ops.list_bookings(
            self._ctx.within(context),
            current_actor(),
            filters,
            page_size=page_size_or_default(request.page_size),
            page_token=request.page_token,
        )
        return pb.ListBookingsResponse(bookings=[convert.booking_to_proto(b) for b in bookings], next_page_token=token)

    async def CreateSlot(self, request: pb.CreateSlotRequest, context: Context) -> pb.CreateSlotResponse:
        check = RequestChecker()
        start = check.required_timestamp("start_time", request, "start_time")
        end = check.required_timestamp("end_time", request, "end_time")
        if len(request.required_equipment) > MAX_EQUIPMENT_PER_SLOT:
            check.fail("required_equipment", f"must list at most {MAX_EQUIPMENT_PER_SLOT} equipment types")
        needs = tuple(
            EquipmentNeed(
                equipment_id=check.positive_id(f"required_equipment[{i}].equipment_id", need.equipment_id),
                quantity=need.quantity,
            )
            for i, need in enumerate(request.required_equipment)
        )
        new = NewSlot(
            doctor_id=check.positive_id("doctor_id", request.doctor_id),
            procedure_type=check.text("procedure_type", request.procedure_type, max_length=200),
            room_id=check.positive_id("room_id", request.room_id),
            start_time=start,  # type: ignore[arg-type]  # None only with a violation raised below
            end_time=end,  # type: ignore[arg-type]
            required_equipment=needs,
        )
        check.raise_if_any()
        return pb.CreateSlotResponse(
            slot=convert.slot_to_proto(await slot_ops.create_slot(self._ctx.within(context), current_actor(), new))
        )

    async def CancelSlot(self, request: pb.CancelSlotRequest, context: Context) -> pb.CancelSlotResponse:
        check = RequestChecker()
        slot_id = check.positive_id("slot_id", request.slot_id)
        note = check.text("note", request.note, max_length=500, is_required=False)
        check.raise_if_any()
        slot, booking = await slot_ops.cancel_slot(self._ctx.within(context), current_actor(), slot_id, note=note)
        return pb.CancelSlotResponse(
            slot=convert.slot_to_proto(slot),
            cancelled_booking=None if booking is None else convert.booking_to_proto(booking),
        )

    async def CreateRoom(self, request: pb.CreateRoomRequest, context: Context) -> pb.CreateRoomResponse:
        check = RequestChecker()
        name = check.text("name", request.name, max_length=200)
        check.raise_if_any()
        return pb.CreateRoomResponse(
            room=convert.room_to_proto(
                await inventory_ops.create_room(self._ctx.within(context), current_actor(), name=name)
            )
        )

    async def ListRooms(self, request: pb.ListRoomsRequest, context: Context) -> pb.ListRoomsResponse:
        rooms = await inventory_ops.list_rooms(self._ctx.within(context))
        return pb.ListRoomsResponse(rooms=[convert.room_to_proto(r) for r in rooms])

    async def CreateDoctor(self, request: pb.CreateDoctorRequest, context: Context) -> pb.CreateDoctorResponse:
        check = RequestChecker()
        name = check.text("name", request.name, max_length=200)
        specialty = check.text("specialty", request.specialty, max_length=200)
        check.raise_if_any()
        doctor = await inventory_ops.create_doctor(
            self._ctx.within(context), current_actor(), name=name, specialty=specialty
        )
        return pb.CreateDoctorResponse(doctor=convert.doctor_to_proto(doctor))

    async def CreateEquipment(self, request: pb.CreateEquipmentRequest, context: Context) -> pb.CreateEquipmentResponse:
        check = RequestChecker()
        name = check.text("name", request.name, max_length=200)
        if not 0 <= request.quantity <= MAX_EQUIPMENT_QUANTITY:
            check.fail("quantity", f"must be between 0 and {MAX_EQUIPMENT_QUANTITY}")
        check.raise_if_any()
        equipment = await inventory_ops.create_equipment(
            self._ctx.within(context), current_actor(), name=name, quantity=request.quantity
        )
        return pb.CreateEquipmentResponse(equipment=convert.equipment_to_proto(equipment))

    async def ListEquipment(self, request: pb.ListEquipmentRequest, context: Context) -> pb.ListEquipmentResponse:
        equipment = await inventory_ops.list_equipment(self._ctx.within(context))
        return pb.ListEquipmentResponse(equipment=[convert.equipment_to_proto(e) for e in equipment])

    async def ListAuditEvents(self, request: pb.ListAuditEventsRequest, context: Context) -> pb.ListAuditEventsResponse:
        check = RequestChecker()
        filters = AuditFilters(
            action=check.text("action", request.action, max_length=100, is_required=False),
            actor=check.text("actor", request.actor, max_length=100, is_required=False),
            resource_type=check.text("resource_type", request.resource_type, max_length=100, is_required=False),
            resource_id=check.text("resource_id", request.resource_id, max_length=100, is_required=False),
            start_time=check.timestamp("start_time", request.start_time, is_set=request.HasField("start_time")),
            end_time=check.timestamp("end_time", request.end_time, is_set=request.HasField("end_time")),
        )
        if filters.start_time and filters.end_time and filters.end_time <= filters.start_time:
            check.fail("end_time", "must be after start_time")
        check.raise_if_any()
        events, token = await audit_ops.list_audit_events(
            self._ctx.within(context),
            filters,
            page_size=page_size_or_default(request.page_size),
            page_token=request.page_token,
        )
        return pb.ListAuditEventsResponse(
            events=[convert.audit_event_to_proto(e) for e in events], next_page_token=token
        )
