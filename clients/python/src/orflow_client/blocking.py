# Generated from aio.py by clients/python/tools/async_to_sync.py. DO NOT EDIT:
# change aio.py (or the tool's replacement table) and run `.venv/bin/python clients/python/tools/async_to_sync.py`.
"""`BlockingOrFlowClient`: the blocking client, one typed method per RPC of the three services."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
from orflow.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    audit_pb2,
    booking_pb2,
    booking_service_pb2,
    booking_service_pb2_grpc,
    resources_pb2,
    slot_service_pb2,
    slot_service_pb2_grpc,
)

from . import _requests
from ._channel import ClientOptions, RetryPolicy, new_request_id
from .errors import OrFlowError, from_rpc_error

T = TypeVar("T")
Page = TypeVar("Page")


class BlockingOrFlowClient:
    """A blocking client for OR Flow. Use it as `with BlockingOrFlowClient("host:50051") as client:`.

    Every call gets the client's default deadline unless given `timeout=`;
    failures raise `orflow_client.errors` exceptions; List methods return
    iterators that follow `next_page_token` (the `*_page` twins return
    one page).
    """

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        timeout: float | None = 10.0,
        retry: RetryPolicy | None = None,
        channel: grpc.Channel | None = None,
    ) -> None:
        """`channel`, when given, is used as it is (its owner sets credentials and options) and closed by `close()`."""
        self._options = ClientOptions(
            target,
            token=token,
            tls=tls,
            root_certificates=root_certificates,
            timeout=timeout,
            retry=retry or RetryPolicy(),
        )
        opts = self._options.channel_options()
        self._channel = channel or (
            grpc.secure_channel(target, self._options.credentials(), options=opts)
            if self._options.uses_tls
            else grpc.insecure_channel(target, options=opts)
        )
        self._slots = slot_service_pb2_grpc.SlotServiceStub(self._channel)
        self._bookings = booking_service_pb2_grpc.BookingServiceStub(self._channel)
        self._admin = admin_service_pb2_grpc.AdminServiceStub(self._channel)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, send: Callable[..., T], request: object, timeout: float | None) -> T:
        try:
            return send(request, timeout=self._options.deadline(timeout), metadata=self._options.metadata())
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc

    @staticmethod
    def _walk(fetch: Callable[[str], Page], items: Callable[[Page], Sequence[T]]) -> Iterator[T]:
        token = ""
        while True:
            page = fetch(token)
            yield from items(page)
            token = page.next_page_token  # type: ignore[attr-defined]
            if not token:
                return

    # SlotService

    def list_slots_page(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        procedure_type: str = "",
        doctor_id: int = 0,
        room_id: int = 0,
        window_start: datetime | None = None,
        window_end: datetime | None = None,
        available_only: bool = False,
        site_id: int = 0,
        day: date | None = None,
        show_retired: bool = False,
        timeout: float | None = None,
    ) -> slot_service_pb2.ListSlotsResponse:
        """One page of slots; `day` (with `site_id`) is a calendar day in the site's time zone."""
        request = _requests.list_slots(
            page_size=page_size,
            page_token=page_token,
            procedure_type=procedure_type,
            doctor_id=doctor_id,
            room_id=room_id,
            window_start=window_start,
            window_end=window_end,
            available_only=available_only,
            site_id=site_id,
            day=day,
            show_retired=show_retired,
        )
        return self._call(self._slots.ListSlots, request, timeout)

    def list_slots(
        self,
        *,
        procedure_type: str = "",
        doctor_id: int = 0,
        room_id: int = 0,
        window_start: datetime | None = None,
        window_end: datetime | None = None,
        available_only: bool = False,
        site_id: int = 0,
        day: date | None = None,
        show_retired: bool = False,
        page_size: int = 0,
    ) -> Iterator[resources_pb2.Slot]:
        """Every matching slot in start-time order, fetching pages as the caller iterates.

        `day` with `site_id`: the slots starting on that calendar day in the site's time zone (the
        server computes the day's window, 23 or 25 hours long when the clocks change). Each slot
        carries `site.time_zone` to show its times in.
        """

        query: dict[str, Any] = {
            "page_size": page_size,
            "procedure_type": procedure_type,
            "doctor_id": doctor_id,
            "room_id": room_id,
            "window_start": window_start,
            "window_end": window_end,
            "available_only": available_only,
            "site_id": site_id,
            "day": day,
            "show_retired": show_retired,
        }
        return self._walk(lambda token: self.list_slots_page(page_token=token, **query), lambda page: page.slots)

    def get_slot(self, slot_id: int, *, timeout: float | None = None) -> resources_pb2.Slot:
        reply = self._call(self._slots.GetSlot, slot_service_pb2.GetSlotRequest(slot_id=slot_id), timeout)
        return reply.slot

    def list_doctors_page(
        self,
        *,
        query: str = "",
        show_retired: bool = False,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> slot_service_pb2.ListDoctorsResponse:
        request = slot_service_pb2.ListDoctorsRequest(
            query=query, show_retired=show_retired, page_size=page_size, page_token=page_token
        )
        return self._call(self._slots.ListDoctors, request, timeout)

    def list_doctors(
        self, *, query: str = "", show_retired: bool = False, page_size: int = 0
    ) -> Iterator[resources_pb2.Doctor]:
        """Surgeons whose name or specialty matches `query` (all when empty); retired ones only if asked."""
        return self._walk(
            lambda token: self.list_doctors_page(
                query=query, show_retired=show_retired, page_size=page_size, page_token=token
            ),
            lambda page: page.doctors,
        )

    def watch_slots(
        self, *, procedure_type: str = "", doctor_id: int = 0, room_id: int = 0, site_id: int = 0
    ) -> Iterator[slot_service_pb2.WatchSlotsResponse]:
        """Live slot changes: a SNAPSHOT of the matching slots first, then each change as it commits.

        The stream has no deadline; stop iterating (or close the generator) to end it.
        """
        request = slot_service_pb2.WatchSlotsRequest(
            procedure_type=procedure_type, doctor_id=doctor_id, room_id=room_id, site_id=site_id
        )
        call = self._slots.WatchSlots(request, metadata=self._options.metadata())
        try:
            yield from call
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        finally:
            call.cancel()  # type: ignore[no-untyped-call]  # grpc-stubs leaves it untyped

    # BookingService

    def create_booking(
        self, *, slot_id: int, patient_id: str = "", request_id: str | None = None, timeout: float | None = None
    ) -> booking_pb2.Booking:
        """Holds the slot for the patient (PENDING until confirmed or expired).

        With a patient token `patient_id` may be left empty: the patient books as itself.

        Retries UNAVAILABLE, DEADLINE_EXCEEDED and a server's CANCELLED with the same `request_id`
        (a new one is made when none is given), waiting at least the delay the
        server's RetryInfo asks for, so a retry after a lost reply
        returns the booking the first attempt made, never a second booking.
        """
        request = booking_service_pb2.CreateBookingRequest(
            slot_id=slot_id, patient_id=patient_id, request_id=request_id or new_request_id()
        )
        backoffs = self._options.retry.backoffs()
        while True:
            try:
                reply = self._call(self._bookings.CreateBooking, request, timeout)
            except OrFlowError as exc:
                backoff = next(backoffs, None) if exc.code in self._options.retry.retryable_codes else None
                if backoff is None:
                    raise
                time.sleep(self._options.retry.pause(backoff, exc.retry_delay))
            else:
                return reply.booking

    def get_booking(self, booking_id: int, *, timeout: float | None = None) -> booking_pb2.Booking:
        request = booking_service_pb2.GetBookingRequest(booking_id=booking_id)
        return self._call(self._bookings.GetBooking, request, timeout).booking

    def confirm_booking(self, booking_id: int, *, timeout: float | None = None) -> booking_pb2.Booking:
        request = booking_service_pb2.ConfirmBookingRequest(booking_id=booking_id)
        return self._call(self._bookings.ConfirmBooking, request, timeout).booking

    def extend_hold(
        self, booking_id: int, *, request_id: str | None = None, timeout: float | None = None
    ) -> booking_pb2.Booking:
        """Extends a PENDING hold once by the server's hold TTL; a second extension raises HoldAlreadyExtended.

        Retries UNAVAILABLE and DEADLINE_EXCEEDED with the same `request_id`
        (a new one is made when none is given), so a retry after a lost reply
        returns the extended hold instead of being refused as a second extension.
        """
        request = booking_service_pb2.ExtendHoldRequest(
            booking_id=booking_id, request_id=request_id or new_request_id()
        )
        backoffs = self._options.retry.backoffs()
        while True:
            try:
                reply = self._call(self._bookings.ExtendHold, request, timeout)
            except OrFlowError as exc:
                pause = next(backoffs, None) if exc.code in self._options.retry.retryable_codes else None
                if pause is None:
                    raise
                time.sleep(pause)
            else:
                return reply.booking

    def cancel_booking(
        self,
        booking_id: int,
        *,
        reason: booking_pb2.CancellationReason.ValueType = booking_pb2.CANCELLATION_REASON_UNSPECIFIED,
        note: str = "",
        timeout: float | None = None,
    ) -> booking_pb2.Booking:
        """Cancels the booking, recording why (`reason`, free-text `note`) and who (the token's subject)."""
        request = booking_service_pb2.CancelBookingRequest(booking_id=booking_id, reason=reason, note=note)
        return self._call(self._bookings.CancelBooking, request, timeout).booking

    def reschedule_booking(
        self, booking_id: int, *, slot_id: int, request_id: str | None = None, timeout: float | None = None
    ) -> booking_pb2.Booking:
        """Moves the booking to `slot_id` in one transaction (both or neither); it keeps its status and deadline.

        Retries UNAVAILABLE and DEADLINE_EXCEEDED with the same `request_id`
        (a new one is made when none is given), so a retry after a lost reply
        returns the booking as the first attempt left it.
        """
        request = booking_service_pb2.RescheduleBookingRequest(
            booking_id=booking_id, slot_id=slot_id, request_id=request_id or new_request_id()
        )
        backoffs = self._options.retry.backoffs()
        while True:
            try:
                reply = self._call(self._bookings.RescheduleBooking, request, timeout)
            except OrFlowError as exc:
                pause = next(backoffs, None) if exc.code in self._options.retry.retryable_codes else None
                if pause is None:
                    raise
                time.sleep(pause)
            else:
                return reply.booking

    def check_in_booking(self, booking_id: int, *, timeout: float | None = None) -> booking_pb2.Booking:
        """CONFIRMED -> CHECKED_IN (staff tokens only); any other state raises BookingNotConfirmed."""
        request = booking_service_pb2.CheckInBookingRequest(booking_id=booking_id)
        return self._call(self._bookings.CheckInBooking, request, timeout).booking

    def start_booking(self, booking_id: int, *, timeout: float | None = None) -> booking_pb2.Booking:
        """CHECKED_IN -> IN_PROGRESS, recording actual_start_time; any other state raises BookingNotCheckedIn."""
        request = booking_service_pb2.StartBookingRequest(booking_id=booking_id)
        return self._call(self._bookings.StartBooking, request, timeout).booking

    def complete_booking(self, booking_id: int, *, timeout: float | None = None) -> booking_pb2.Booking:
        """IN_PROGRESS -> COMPLETED, recording actual_end_time; any other state raises BookingNotInProgress."""
        request = booking_service_pb2.CompleteBookingRequest(booking_id=booking_id)
        return self._call(self._bookings.CompleteBooking, request, timeout).booking

    def mark_booking_no_show(self, booking_id: int, *, timeout: float | None = None) -> booking_pb2.Booking:
        """CONFIRMED -> NO_SHOW, freeing the slot's resources; any other state raises BookingNotConfirmed."""
        request = booking_service_pb2.MarkBookingNoShowRequest(booking_id=booking_id)
        return self._call(self._bookings.MarkBookingNoShow, request, timeout).booking

    def list_patient_bookings_page(
        self,
        *,
        patient_id: str = "",
        status: booking_pb2.BookingStatus.ValueType = booking_pb2.BOOKING_STATUS_UNSPECIFIED,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> booking_service_pb2.ListPatientBookingsResponse:
        request = booking_service_pb2.ListPatientBookingsRequest(
            patient_id=patient_id, status=status, page_size=page_size, page_token=page_token
        )
        return self._call(self._bookings.ListPatientBookings, request, timeout)

    def list_patient_bookings(
        self,
        *,
        patient_id: str = "",
        status: booking_pb2.BookingStatus.ValueType = booking_pb2.BOOKING_STATUS_UNSPECIFIED,
        page_size: int = 0,
    ) -> Iterator[booking_pb2.Booking]:
        """One patient's bookings, newest first (with a patient token, `patient_id` may be left empty)."""

        query: dict[str, Any] = {"patient_id": patient_id, "status": status, "page_size": page_size}
        return self._walk(
            lambda token: self.list_patient_bookings_page(page_token=token, **query), lambda page: page.bookings
        )

    # AdminService

    def seed_database(self, *, timeout: float | None = None) -> admin_service_pb2.SeedDatabaseResponse:
        """Replaces ALL data with the demo data set (the server may refuse resets)."""
        return self._call(self._admin.SeedDatabase, admin_service_pb2.SeedDatabaseRequest(), timeout)

    def list_bookings_page(
        self,
        *,
        status: booking_pb2.BookingStatus.ValueType = booking_pb2.BOOKING_STATUS_UNSPECIFIED,
        patient_id: str = "",
        slot_id: int = 0,
        slot_ids: Iterable[int] = (),
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> admin_service_pb2.ListBookingsResponse:
        request = _requests.list_bookings(
            page_size=page_size,
            page_token=page_token,
            status=status,
            patient_id=patient_id,
            slot_id=slot_id,
            slot_ids=slot_ids,
        )
        return self._call(self._admin.ListBookings, request, timeout)

    def list_bookings(
        self,
        *,
        status: booking_pb2.BookingStatus.ValueType = booking_pb2.BOOKING_STATUS_UNSPECIFIED,
        patient_id: str = "",
        slot_id: int = 0,
        slot_ids: Iterable[int] = (),
        page_size: int = 0,
    ) -> Iterator[booking_pb2.Booking]:
        """Every booking matching the filters, newest first (`slot_ids`: of any of those slots)."""

        query: dict[str, Any] = {
            "status": status,
            "patient_id": patient_id,
            "slot_id": slot_id,
            "slot_ids": tuple(slot_ids),
            "page_size": page_size,
        }
        return self._walk(lambda token: self.list_bookings_page(page_token=token, **query), lambda page: page.bookings)

    def create_slot(
        self,
        *,
        doctor_id: int,
        procedure_type: str,
        room_id: int,
        start_time: datetime,
        end_time: datetime,
        required_equipment: Mapping[int, int] | Iterable[resources_pb2.EquipmentRequirement] = (),
        timeout: float | None = None,
    ) -> resources_pb2.Slot:
        """Publishes a slot; `required_equipment` maps equipment id → quantity."""
        request = _requests.create_slot(
            doctor_id=doctor_id,
            procedure_type=procedure_type,
            room_id=room_id,
            start_time=start_time,
            end_time=end_time,
            required_equipment=required_equipment,
        )
        return self._call(self._admin.CreateSlot, request, timeout).slot

    def cancel_slot(
        self, slot_id: int, *, note: str = "", timeout: float | None = None
    ) -> admin_service_pb2.CancelSlotResponse:
        """Cancels the slot (never bookable again) and its active booking, with reason SLOT_CANCELLED and `note`."""
        request = admin_service_pb2.CancelSlotRequest(slot_id=slot_id, note=note)
        return self._call(self._admin.CancelSlot, request, timeout)

    def create_site(
        self, *, name: str, display_name: str, time_zone: str, timeout: float | None = None
    ) -> resources_pb2.Site:
        """Adds a site (a hospital) in an IANA `time_zone` such as "Europe/London"; an unknown zone raises
        InvalidArgument naming `time_zone`."""
        request = admin_service_pb2.CreateSiteRequest(name=name, display_name=display_name, time_zone=time_zone)
        return self._call(self._admin.CreateSite, request, timeout).site

    def list_sites(self, *, timeout: float | None = None) -> list[resources_pb2.Site]:
        """Every site with its time zone (any caller may list them)."""
        reply = self._call(self._admin.ListSites, admin_service_pb2.ListSitesRequest(), timeout)
        return list(reply.sites)

    def create_room(
        self, *, name: str, site_id: int = 0, turnover: timedelta | None = None, timeout: float | None = None
    ) -> resources_pb2.Room:
        """Adds a room to `site_id` (0: the default site) with its own `turnover` (None: the server's default)."""
        request = admin_service_pb2.CreateRoomRequest(name=name, site_id=site_id, turnover=_requests.duration(turnover))
        return self._call(self._admin.CreateRoom, request, timeout).room

    def list_rooms(self, *, timeout: float | None = None) -> list[resources_pb2.Room]:
        reply = self._call(self._admin.ListRooms, admin_service_pb2.ListRoomsRequest(), timeout)
        return list(reply.rooms)

    def create_doctor(self, *, name: str, specialty: str, timeout: float | None = None) -> resources_pb2.Doctor:
        request = admin_service_pb2.CreateDoctorRequest(name=name, specialty=specialty)
        return self._call(self._admin.CreateDoctor, request, timeout).doctor

    def create_equipment(self, *, name: str, quantity: int, timeout: float | None = None) -> resources_pb2.Equipment:
        request = admin_service_pb2.CreateEquipmentRequest(name=name, quantity=quantity)
        return self._call(self._admin.CreateEquipment, request, timeout).equipment

    def list_equipment(self, *, timeout: float | None = None) -> list[resources_pb2.Equipment]:
        reply = self._call(self._admin.ListEquipment, admin_service_pb2.ListEquipmentRequest(), timeout)
        return list(reply.equipment)

    # Edits (AIP-134: only the fields given are changed) and retirements. `etag` is the one the resource
    # carried when read; a change made since makes the call raise EtagMismatch. Empty skips the check.

    def update_room(
        self,
        room_id: int,
        *,
        name: str | None = None,
        site_id: int | None = None,
        turnover: timedelta | None = None,
        etag: str = "",
        timeout: float | None = None,
    ) -> resources_pb2.Room:
        """Changes the fields given (the update mask names exactly those); a new turnover applies to later bookings."""
        request = _requests.update_room(room_id, etag=etag, name=name, site_id=site_id, turnover=turnover)
        return self._call(self._admin.UpdateRoom, request, timeout).room

    def update_doctor(
        self,
        doctor_id: int,
        *,
        name: str | None = None,
        specialty: str | None = None,
        etag: str = "",
        timeout: float | None = None,
    ) -> resources_pb2.Doctor:
        request = _requests.update_doctor(doctor_id, etag=etag, name=name, specialty=specialty)
        return self._call(self._admin.UpdateDoctor, request, timeout).doctor

    def update_equipment(
        self,
        equipment_id: int,
        *,
        name: str | None = None,
        quantity: int | None = None,
        etag: str = "",
        timeout: float | None = None,
    ) -> resources_pb2.Equipment:
        """A lower `quantity` than booked cases need at once raises EquipmentInUse naming the bookings."""
        request = _requests.update_equipment(equipment_id, etag=etag, name=name, quantity=quantity)
        return self._call(self._admin.UpdateEquipment, request, timeout).equipment

    def update_slot(
        self,
        slot_id: int,
        *,
        procedure_type: str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        room_id: int | None = None,
        doctor_id: int | None = None,
        etag: str = "",
        timeout: float | None = None,
    ) -> resources_pb2.Slot:
        """Moves or renames a slot; a move that would double-book its booking raises that conflict (RoomBusy...)."""
        request = _requests.update_slot(
            slot_id,
            etag=etag,
            procedure_type=procedure_type,
            start_time=start_time,
            end_time=end_time,
            room_id=room_id,
            doctor_id=doctor_id,
        )
        return self._call(self._admin.UpdateSlot, request, timeout).slot

    def retire_room(
        self,
        room_id: int,
        *,
        etag: str = "",
        cancel_bookings: bool = False,
        note: str = "",
        timeout: float | None = None,
    ) -> admin_service_pb2.RetireRoomResponse:
        """Retires the room; future bookings in it raise ResourceInUse unless `cancel_bookings` cancels them."""
        request = admin_service_pb2.RetireRoomRequest(
            room_id=room_id, etag=etag, cancel_bookings=cancel_bookings, note=note
        )
        return self._call(self._admin.RetireRoom, request, timeout)

    def retire_doctor(
        self,
        doctor_id: int,
        *,
        etag: str = "",
        cancel_bookings: bool = False,
        note: str = "",
        timeout: float | None = None,
    ) -> admin_service_pb2.RetireDoctorResponse:
        """Retires the surgeon; cancelled bookings get reason SURGEON_UNAVAILABLE."""
        request = admin_service_pb2.RetireDoctorRequest(
            doctor_id=doctor_id, etag=etag, cancel_bookings=cancel_bookings, note=note
        )
        return self._call(self._admin.RetireDoctor, request, timeout)

    def retire_equipment(
        self,
        equipment_id: int,
        *,
        etag: str = "",
        cancel_bookings: bool = False,
        note: str = "",
        timeout: float | None = None,
    ) -> admin_service_pb2.RetireEquipmentResponse:
        """Retires the equipment type; cancelled bookings get reason EQUIPMENT_UNAVAILABLE."""
        request = admin_service_pb2.RetireEquipmentRequest(
            equipment_id=equipment_id, etag=etag, cancel_bookings=cancel_bookings, note=note
        )
        return self._call(self._admin.RetireEquipment, request, timeout)

    def retire_slot(
        self,
        slot_id: int,
        *,
        etag: str = "",
        cancel_bookings: bool = False,
        note: str = "",
        timeout: float | None = None,
    ) -> admin_service_pb2.RetireSlotResponse:
        """Retires the slot; its cancelled booking gets reason SLOT_CANCELLED."""
        request = admin_service_pb2.RetireSlotRequest(
            slot_id=slot_id, etag=etag, cancel_bookings=cancel_bookings, note=note
        )
        return self._call(self._admin.RetireSlot, request, timeout)

    def list_audit_events_page(
        self,
        *,
        action: str = "",
        actor: str = "",
        resource_type: str = "",
        resource_id: str = "",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> admin_service_pb2.ListAuditEventsResponse:
        request = admin_service_pb2.ListAuditEventsRequest(
            action=action,
            actor=actor,
            resource_type=resource_type,
            resource_id=resource_id,
            start_time=_requests.timestamp(start_time),
            end_time=_requests.timestamp(end_time),
            page_size=page_size,
            page_token=page_token,
        )
        return self._call(self._admin.ListAuditEvents, request, timeout)

    def list_audit_events(
        self,
        *,
        action: str = "",
        actor: str = "",
        resource_type: str = "",
        resource_id: str = "",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        page_size: int = 0,
    ) -> Iterator[audit_pb2.AuditEvent]:
        """The audit trail, newest first, filtered by action, actor, record and time window."""

        query: dict[str, Any] = {
            "action": action,
            "actor": actor,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "start_time": start_time,
            "end_time": end_time,
            "page_size": page_size,
        }
        return self._walk(
            lambda token: self.list_audit_events_page(page_token=token, **query), lambda page: page.events
        )
