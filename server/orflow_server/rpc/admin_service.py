"""AdminService: reset demo data, publish slots, sites, inventory, bookings report, audit trail (admin role only,
but ListSites is open to every caller)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc
from orflow.v1 import admin_service_pb2 as pb
from orflow.v1 import admin_service_pb2_grpc, resources_pb2

from ..domain.filters import AuditFilters, BookingFilters
from ..domain.models import EquipmentNeed, NewSlot
from ..domain.paging import page_size_or_default
from ..domain.rules import MAX_EQUIPMENT_QUANTITY
from ..domain.sites import time_zone_violations, turnover_violations
from ..ops import audit as audit_ops
from ..ops import bookings as booking_ops
from ..ops import edits as edit_ops
from ..ops import inventory as inventory_ops
from ..ops import seed as seed_ops
from ..ops import slots as slot_ops
from ..ops.context import OpsContext
from . import convert
from .auth import current_actor
from .validate import RequestChecker

Context = grpc.aio.ServicerContext[Any, Any]
MAX_EQUIPMENT_PER_SLOT = 50
MAX_LISTED_SLOT_IDS = 1000  # ListBookings' slot_ids: a day board's slots, with room to spare

# Update masks (AIP-134): the paths each Update call can set, and those it must refuse as output only.
# A room moved to another site, or its own turnover changed (unset: back to the server's default), applies to
# bookings made from then on; a booking keeps the turnover in force when it was made.
ROOM_PATHS = frozenset({"name", "site_id", "turnover"})
DOCTOR_PATHS = frozenset({"name", "specialty"})
EQUIPMENT_PATHS = frozenset({"name", "quantity"})
SLOT_PATHS = frozenset({"procedure_type", "start_time", "end_time", "room.id", "doctor.id"})
_OUTPUT_ONLY = frozenset({"id", "etag", "retire_time"})
SLOT_OUTPUT_ONLY = _OUTPUT_ONLY | {
    "available",
    "create_time",
    "cancel_time",
    "room",
    "room.name",
    "room.etag",
    "room.retire_time",
    "doctor",
    "doctor.name",
    "doctor.specialty",
    "doctor.etag",
    "doctor.retire_time",
}


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
            slot_ids=check.id_list("slot_ids", request.slot_ids, max_items=MAX_LISTED_SLOT_IDS),
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

    async def CreateSite(self, request: pb.CreateSiteRequest, context: Context) -> pb.CreateSiteResponse:
        check = RequestChecker()
        name = check.text("name", request.name, max_length=64)
        display_name = check.text("display_name", request.display_name, max_length=200)
        check.violations.extend(time_zone_violations("time_zone", request.time_zone))
        check.raise_if_any()
        site = await inventory_ops.create_site(
            self._ctx.within(context),
            current_actor(),
            name=name,
            display_name=display_name,
            time_zone=request.time_zone,
        )
        return pb.CreateSiteResponse(site=convert.site_to_proto(site))

    async def ListSites(self, request: pb.ListSitesRequest, context: Context) -> pb.ListSitesResponse:
        sites = await inventory_ops.list_sites(self._ctx.within(context))
        return pb.ListSitesResponse(sites=[convert.site_to_proto(s) for s in sites])

    async def CreateRoom(self, request: pb.CreateRoomRequest, context: Context) -> pb.CreateRoomResponse:
        check = RequestChecker()
        name = check.text("name", request.name, max_length=200)
        site_id = check.optional_id("site_id", request.site_id)
        turnover = _room_turnover(check, "turnover", request)
        check.raise_if_any()
        room = await inventory_ops.create_room(
            self._ctx.within(context), current_actor(), name=name, site_id=site_id, turnover=turnover
        )
        return pb.CreateRoomResponse(room=convert.room_to_proto(room))

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

    # Edits (AIP-134) and retirements

    async def UpdateRoom(self, request: pb.UpdateRoomRequest, context: Context) -> pb.UpdateRoomResponse:
        check = RequestChecker()
        room_id = check.positive_id("room.id", request.room.id)
        paths = check.update_mask(request.update_mask, request.room, editable=ROOM_PATHS, output_only=_OUTPUT_ONLY)
        changes: dict[str, Any] = {}
        if "name" in paths:
            changes["name"] = check.text("room.name", request.room.name, max_length=200)
        if "site_id" in paths:
            changes["site_id"] = check.positive_id("room.site_id", request.room.site_id)
        if "turnover" in paths:
            changes["turnover"] = _room_turnover(check, "room.turnover", request.room)
        check.raise_if_any()
        room = await edit_ops.update_room(
            self._ctx.within(context), current_actor(), room_id, etag=request.room.etag, changes=changes
        )
        return pb.UpdateRoomResponse(room=convert.room_to_proto(room))

    async def UpdateDoctor(self, request: pb.UpdateDoctorRequest, context: Context) -> pb.UpdateDoctorResponse:
        check = RequestChecker()
        doctor = request.doctor
        doctor_id = check.positive_id("doctor.id", doctor.id)
        paths = check.update_mask(request.update_mask, doctor, editable=DOCTOR_PATHS, output_only=_OUTPUT_ONLY)
        changes = {path: check.text(f"doctor.{path}", getattr(doctor, path), max_length=200) for path in paths}
        check.raise_if_any()
        updated = await edit_ops.update_doctor(
            self._ctx.within(context), current_actor(), doctor_id, etag=doctor.etag, changes=changes
        )
        return pb.UpdateDoctorResponse(doctor=convert.doctor_to_proto(updated))

    async def UpdateEquipment(self, request: pb.UpdateEquipmentRequest, context: Context) -> pb.UpdateEquipmentResponse:
        check = RequestChecker()
        item = request.equipment
        equipment_id = check.positive_id("equipment.id", item.id)
        paths = check.update_mask(request.update_mask, item, editable=EQUIPMENT_PATHS, output_only=_OUTPUT_ONLY)
        changes: dict[str, Any] = {}
        if "name" in paths:
            changes["name"] = check.text("equipment.name", item.name, max_length=200)
        if "quantity" in paths:
            if not 0 <= item.quantity <= MAX_EQUIPMENT_QUANTITY:
                check.fail("equipment.quantity", f"must be between 0 and {MAX_EQUIPMENT_QUANTITY}")
            changes["quantity"] = item.quantity
        check.raise_if_any()
        updated = await edit_ops.update_equipment(
            self._ctx.within(context), current_actor(), equipment_id, etag=item.etag, changes=changes
        )
        return pb.UpdateEquipmentResponse(equipment=convert.equipment_to_proto(updated))

    async def UpdateSlot(self, request: pb.UpdateSlotRequest, context: Context) -> pb.UpdateSlotResponse:
        check = RequestChecker()
        slot = request.slot
        slot_id = check.positive_id("slot.id", slot.id)
        paths = check.update_mask(request.update_mask, slot, editable=SLOT_PATHS, output_only=SLOT_OUTPUT_ONLY)
        changes: dict[str, Any] = {}
        if "procedure_type" in paths:
            changes["procedure_type"] = check.text("slot.procedure_type", slot.procedure_type, max_length=200)
        for name in ("start_time", "end_time"):
            if name in paths:
                changes[name] = check.required_timestamp(f"slot.{name}", slot, name)
        if "room.id" in paths:
            changes["room_id"] = check.positive_id("slot.room.id", slot.room.id)
        if "doctor.id" in paths:
            changes["doctor_id"] = check.positive_id("slot.doctor.id", slot.doctor.id)
        check.raise_if_any()
        updated = await edit_ops.update_slot(
            self._ctx.within(context), current_actor(), slot_id, etag=slot.etag, changes=changes
        )
        return pb.UpdateSlotResponse(slot=convert.slot_to_proto(updated))

    async def RetireRoom(self, request: pb.RetireRoomRequest, context: Context) -> pb.RetireRoomResponse:
        room_id, how = _retire_request("room_id", request.room_id, request)
        room, cancelled = await edit_ops.retire_room(self._ctx.within(context), current_actor(), room_id, **how)
        return pb.RetireRoomResponse(
            room=convert.room_to_proto(room), cancelled_bookings=[convert.booking_to_proto(b) for b in cancelled]
        )

    async def RetireDoctor(self, request: pb.RetireDoctorRequest, context: Context) -> pb.RetireDoctorResponse:
        doctor_id, how = _retire_request("doctor_id", request.doctor_id, request)
        doctor, cancelled = await edit_ops.retire_doctor(self._ctx.within(context), current_actor(), doctor_id, **how)
        return pb.RetireDoctorResponse(
            doctor=convert.doctor_to_proto(doctor), cancelled_bookings=[convert.booking_to_proto(b) for b in cancelled]
        )

    async def RetireEquipment(self, request: pb.RetireEquipmentRequest, context: Context) -> pb.RetireEquipmentResponse:
        equipment_id, how = _retire_request("equipment_id", request.equipment_id, request)
        item, cancelled = await edit_ops.retire_equipment(
            self._ctx.within(context), current_actor(), equipment_id, **how
        )
        return pb.RetireEquipmentResponse(
            equipment=convert.equipment_to_proto(item),
            cancelled_bookings=[convert.booking_to_proto(b) for b in cancelled],
        )

    async def RetireSlot(self, request: pb.RetireSlotRequest, context: Context) -> pb.RetireSlotResponse:
        slot_id, how = _retire_request("slot_id", request.slot_id, request)
        slot, cancelled = await edit_ops.retire_slot(self._ctx.within(context), current_actor(), slot_id, **how)
        return pb.RetireSlotResponse(
            slot=convert.slot_to_proto(slot), cancelled_bookings=[convert.booking_to_proto(b) for b in cancelled]
        )


RetireRequest = pb.RetireRoomRequest | pb.RetireDoctorRequest | pb.RetireEquipmentRequest | pb.RetireSlotRequest


def _retire_request(field: str, resource_id: int, request: RetireRequest) -> tuple[int, dict[str, Any]]:
    """The four Retire requests share one shape: the id, then etag, cancel_bookings and note."""
    check = RequestChecker()
    check.positive_id(field, resource_id)
    note = check.text("note", request.note, max_length=500, is_required=False)
    etag = check.text("etag", request.etag, max_length=100, is_required=False)
    check.raise_if_any()
    return resource_id, {"etag": etag, "cancel_bookings": request.cancel_bookings, "note": note}


def _room_turnover(
    check: RequestChecker, field: str, message: pb.CreateRoomRequest | resources_pb2.Room
) -> timedelta | None:
    """A room's own turnover from `message.turnover` (None: unset, the server's default), checked: whole
    seconds on the wire (a timedelta drops nanoseconds), within domain/sites.py's bounds."""
    turnover = check.duration(field, message.turnover, is_set=message.HasField("turnover"))
    if turnover is not None and message.turnover.nanos:
        check.fail(field, "must be a whole number of seconds")
    elif turnover is not None:
        check.violations.extend(turnover_violations(field, turnover))
    return turnover
