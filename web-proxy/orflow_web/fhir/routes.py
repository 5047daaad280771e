"""The FHIR R4 interactions at /fhir/r4: each handler parses, calls the gRPC API with the caller's token, maps.

No SQL and no booking logic of its own: holding, confirming and cancelling are
CreateBooking, ConfirmBooking and CancelBooking, so the one rule (and the one
set of role checks) behind gRPC answers here too. Refusals leave through
errors.answer (one table).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import grpc
from aiohttp import web
from aiohttp.typedefs import Handler
from google.protobuf.timestamp_pb2 import Timestamp
from orflow.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    booking_pb2,
    booking_service_pb2,
    booking_service_pb2_grpc,
    resources_pb2,
    slot_service_pb2,
    slot_service_pb2_grpc,
)

from . import resources as fhir
from .capability import capability_statement
from .errors import (
    NOT_SUPPORTED,
    UNKNOWN_RESOURCE,
    VERSION_MISMATCH,
    FhirError,
    Refusal,
    answer,
    invalid,
    refusal_from_rpc,
)
from .search import PAGE_TOKEN, SUPPORTED, Query, positive_id, reference_id, token_code, window

BASE_PATH: Final = "/fhir/r4"
FHIR_JSON: Final = "application/fhir+json"
CALL_TIMEOUT_SECONDS: Final = 30.0
_log = logging.getLogger(__name__)
Resource = dict[str, Any]


def build_fhir_app(channel: grpc.aio.Channel, *, organization: fhir.Organization | None = None) -> web.Application:
    """The FHIR sub-application; mount it with `app.add_subapp(BASE_PATH, build_fhir_app(channel))`."""
    api = FhirApi(channel, organization or fhir.Organization())
    app = web.Application(middlewares=[_outcomes])
    app.router.add_get("/metadata", api.metadata)
    app.router.add_get("/{type}", api.search)
    app.router.add_post("/Appointment", api.create_appointment)
    app.router.add_get("/{type}/{id}", api.read)
    app.router.add_put("/Appointment/{id}", api.update_appointment)
    app.router.add_patch("/Appointment/{id}", api.patch_appointment)
    app.router.add_route("OPTIONS", "/{tail:.*}", preflight)  # CORS (the proxy app adds Allow-Origin)
    app.router.add_route("*", "/{tail:.*}", _not_supported)
    return app


# FHIR's REST verbs and headers, for a browser EHR app on an allowed origin: it updates an Appointment with
# PUT/PATCH and If-Match, creates one conditionally with If-None-Exist, and reads ETag and Location back.
CORS_EXPOSED_HEADERS = ("ETag", "Location", "Content-Location")
_CORS_ALLOWED_METHODS = "GET, POST, PUT, PATCH, OPTIONS"
_CORS_ALLOWED_REQUEST_HEADERS = "content-type, accept, authorization, if-match, if-none-exist, prefer"


async def preflight(request: web.Request) -> web.Response:
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": _CORS_ALLOWED_METHODS,
            "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers", "")
            or _CORS_ALLOWED_REQUEST_HEADERS,
            "Access-Control-Max-Age": "86400",
        },
    )


class FhirApi:
    def __init__(self, channel: grpc.aio.Channel, organization: fhir.Organization) -> None:
        self._slots = slot_service_pb2_grpc.SlotServiceStub(channel)
        self._bookings = booking_service_pb2_grpc.BookingServiceStub(channel)
        self._admin = admin_service_pb2_grpc.AdminServiceStub(channel)
        self._organization = organization

    # --- capability, read and search -------------------------------------------------------------

    async def metadata(self, request: web.Request) -> web.Response:
        return _json(capability_statement(_base(request), datetime.now(UTC)))

    async def read(self, request: web.Request) -> web.Response:
        kind, ident = request.match_info["type"], request.match_info["id"]
        reader = self._readers().get(kind)
        if reader is None:
            raise _unknown_type(kind)
        resource = await reader(_auth(request), ident)
        headers = {"ETag": _etag(resource)} if "meta" in resource else {}
        return _json(resource, headers=headers)

    async def search(self, request: web.Request) -> web.Response:
        kind = request.match_info["type"]
        searcher = self._searchers().get(kind)
        if kind not in SUPPORTED or searcher is None:
            raise _unknown_type(kind)
        _check_format(request)
        resources, token = await searcher(_auth(request), Query(kind, request.url.query))
        base = _base(request)
        next_url = str(request.url.update_query({PAGE_TOKEN: token})) if token else None
        entries = [(f"{base}/{r['resourceType']}/{r['id']}", r) for r in resources]
        return _json(fhir.bundle(str(request.url), next_url, entries))

    def _readers(self) -> dict[str, Callable[[Metadata, str], Awaitable[Resource]]]:
        return {
            "Slot": self._read_slot,
            "Appointment": self._read_appointment,
            "Schedule": self._read_schedule,
            "Practitioner": lambda md, i: self._read_doctor(md, i, role=False),
            "PractitionerRole": lambda md, i: self._read_doctor(md, i, role=True),
            "Location": self._read_location,
            "Device": self._read_device,
            "Organization": self._read_organization,
        }

    def _searchers(self) -> dict[str, Callable[[Metadata, Query], Awaitable[tuple[list[Resource], str]]]]:
        return {
            "Slot": self._search_slots,
            "Appointment": self._search_appointments,
            "Practitioner": lambda md, q: self._search_doctors(md, q, role=False),
            "PractitionerRole": lambda md, q: self._search_doctors(md, q, role=True),
            "Location": self._search_locations,
            "Device": self._search_devices,
        }

    async def _get_slot(self, md: Metadata, slot_id: int) -> resources_pb2.Slot:
        request = slot_service_pb2.GetSlotRequest(slot_id=slot_id)
        return (await self._slots.GetSlot(request, metadata=md, timeout=CALL_TIMEOUT_SECONDS)).slot

    async def _read_slot(self, md: Metadata, ident: str) -> Resource:
        return fhir.slot(await self._get_slot(md, _id_or_404("Slot", ident)), datetime.now(UTC))

    async def _read_schedule(self, md: Metadata, ident: str) -> Resource:
        pair = fhir.parse_schedule_id(ident)
        if pair is None:
            raise _not_found("Schedule", ident)
        request = slot_service_pb2.ListSlotsRequest(room_id=pair[0], doctor_id=pair[1], page_size=1)
        reply = await self._slots.ListSlots(request, metadata=md, timeout=CALL_TIMEOUT_SECONDS)
        if not reply.slots:
            raise _not_found("Schedule", ident)
        return fhir.schedule(reply.slots[0])

    async def _read_appointment(self, md: Metadata, ident: str) -> Resource:
        booking = await self._get_booking(md, _id_or_404("Appointment", ident))
        return fhir.appointment(booking, await self._get_slot(md, booking.slot_id))

    async def _get_booking(self, md: Metadata, booking_id: int) -> booking_pb2.Booking:
        request = booking_service_pb2.GetBookingRequest(booking_id=booking_id)
        return (await self._bookings.GetBooking(request, metadata=md, timeout=CALL_TIMEOUT_SECONDS)).booking

    async def _read_doctor(self, md: Metadata, ident: str, *, role: bool) -> Resource:
        wanted, token = _id_or_404("Practitioner", ident), ""
        while True:  # no GetDoctor RPC: walk ListDoctors (surgeons are few)
            request = slot_service_pb2.ListDoctorsRequest(page_size=1000, page_token=token)
            reply = await self._slots.ListDoctors(request, metadata=md, timeout=CALL_TIMEOUT_SECONDS)
            for doctor in reply.doctors:
                if doctor.id == wanted:
                    return fhir.practitioner_role(doctor, self._organization) if role else fhir.practitioner(doctor)
            if not reply.next_page_token:
                raise _not_found("PractitionerRole" if role else "Practitioner", ident)
            token = reply.next_page_token

    async def _read_location(self, md: Metadata, ident: str) -> Resource:
        wanted = _id_or_404("Location", ident)
        for room in await self._rooms(md):
            if room.id == wanted:
                return fhir.location(room, self._organization)
        raise _not_found("Location", ident)

    async def _read_device(self, md: Metadata, ident: str) -> Resource:
        wanted = _id_or_404("Device", ident)
        for equipment in await self._equipment(md):
            if equipment.id == wanted:
                return fhir.device(equipment, self._organization)
        raise _not_found("Device", ident)

    async def _read_organization(self, md: Metadata, ident: str) -> Resource:
        if ident != self._organization.id:
            raise _not_found("Organization", ident)
        return self._organization.resource()

    async def _rooms(self, md: Metadata) -> Sequence[resources_pb2.Room]:
        request = admin_service_pb2.ListRoomsRequest()
        return (await self._admin.ListRooms(request, metadata=md, timeout=CALL_TIMEOUT_SECONDS)).rooms

    async def _equipment(self, md: Metadata) -> Sequence[resources_pb2.Equipment]:
        request = admin_service_pb2.ListEquipmentRequest()
        return (await self._admin.ListEquipment(request, metadata=md, timeout=CALL_TIMEOUT_SECONDS)).equipment

    async def _search_slots(self, md: Metadata, query: Query) -> tuple[list[Resource], str]:
        request = slot_service_pb2.ListSlotsRequest(page_size=query.count(), page_token=query.page_token())
        for value in query.all("schedule.actor"):
            kind, _, ident = value.rpartition("/")
            if kind == "Location":
                request.room_id = positive_id("schedule.actor", ident)
            elif kind in ("Practitioner", "PractitionerRole"):
                request.doctor_id = positive_id("schedule.actor", ident)
            else:
                raise invalid("schedule.actor must be Location/<id> or Practitioner/<id>", field_name="schedule.actor")
        if schedule := query.one("schedule"):
            pair = fhir.parse_schedule_id(reference_id("schedule", schedule, "Schedule"))
            if pair is None:
                raise invalid(f"schedule: {schedule!r} is not Schedule/room-<id>-surgeon-<id>", field_name="schedule")
            request.room_id, request.doctor_id = pair
        starts = window("start", query.all("start"))
        _set_time(request.window_start, starts.low)
        _set_time(request.window_end, starts.high)
        status = query.one("status")
        if status and token_code(status) != "free":
            raise invalid("Slot status: only free can be searched (busy slots never say who holds them)")
        request.available_only = bool(status)
        request.procedure_type = token_code(query.one("service-type"))
        reply = await self._slots.ListSlots(request, metadata=md, timeout=CALL_TIMEOUT_SECONDS)
        now = datetime.now(UTC)
        return [fhir.slot(s, now) for s in reply.slots], reply.next_page_token

    async def _search_appointments(self, md: Metadata, query: Query) -> tuple[list[Resource], str]:
        patient = fhir.patient_id_of(query.one("patient"))
        statuses = fhir.booking_statuses(token_code(query.one("status"))) if query.one("status") else []
        if query.one("status") and not statuses:
            raise invalid("Appointment status: pending, booked or cancelled", field_name="status")
        request = booking_service_pb2.ListPatientBookingsRequest(
            patient_id=patient, page_size=query.count(), page_token=query.page_token()
        )
        if len(statuses) == 1:
            request.status = statuses[0]
        reply = await self._bookings.ListPatientBookings(request, metadata=md, timeout=CALL_TIMEOUT_SECONDS)
        dates = window("date", query.all("date"))
        wanted = [b for b in reply.bookings if not statuses or b.status in statuses]
        slots = await self._slots_by_id(md, {b.slot_id for b in wanted})
        # status and date filters beyond the RPC's apply to this page: a page may be short, never wrong.
        found = [
            fhir.appointment(b, slots[b.slot_id])
            for b in wanted
            if dates.holds(slots[b.slot_id].start_time.ToDatetime(tzinfo=UTC))
        ]
        return found, reply.next_page_token

    async def _slots_by_id(self, md: Metadata, slot_ids: set[int]) -> dict[int, resources_pb2.Slot]:
        ordered = sorted(slot_ids)
        found = await asyncio.gather(*(self._get_slot(md, s) for s in ordered))
        return dict(zip(ordered, found, strict=True))

    async def _search_doctors(self, md: Metadata, query: Query, *, role: bool) -> tuple[list[Resource], str]:
        text = query.one("specialty" if role else "name")
        request = slot_service_pb2.ListDoctorsRequest(
            query=token_code(text), page_size=query.count(), page_token=query.page_token()
        )
        reply = await self._slots.ListDoctors(request, metadata=md, timeout=CALL_TIMEOUT_SECONDS)
        needle = token_code(text).casefold()  # ListDoctors matches name OR specialty: keep the asked one
        if role:
            found = [
                fhir.practitioner_role(d, self._organization) for d in reply.doctors if needle in d.specialty.casefold()
            ]
        else:
            found = [fhir.practitioner(d) for d in reply.doctors if needle in d.name.casefold()]
        return found, reply.next_page_token

    async def _search_locations(self, md: Metadata, query: Query) -> tuple[list[Resource], str]:
        needle = query.one("name").casefold()
        rooms = [r for r in await self._rooms(md) if needle in r.name.casefold()]
        return [fhir.location(r, self._organization) for r in rooms], ""

    async def _search_devices(self, md: Metadata, query: Query) -> tuple[list[Resource], str]:
        needle = query.one("device-name").casefold()
        kinds = [e for e in await self._equipment(md) if needle in e.name.casefold()]
        return [fhir.device(e, self._organization) for e in kinds], ""

    # --- hold, confirm, cancel -----------------------------------------------------------------------

    async def create_appointment(self, request: web.Request) -> web.Response:
        """POST Appointment holds its Slot: CreateBooking, with If-None-Exist's identifier as request_id.

        201 Created for a new hold; 200 OK with the existing Appointment when the identifier had already
        booked (FHIR's conditional create: "one match: do not create, return 200")."""
        body = await _resource_body(request, "Appointment")
        if body.get("status", "pending") not in ("pending", "proposed"):
            raise invalid("a new Appointment is a hold: status pending (or proposed)", field_name="status")
        create = booking_service_pb2.CreateBookingRequest(
            slot_id=_slot_of(body), patient_id=_patient_of(body), request_id=_request_id(request, body)
        )
        md = _auth(request)
        reply = await self._bookings.CreateBooking(create, metadata=md, timeout=CALL_TIMEOUT_SECONDS)
        resource = fhir.appointment(reply.booking, await self._get_slot(md, reply.booking.slot_id))
        where = f"{_base(request)}/Appointment/{resource['id']}/_history/{resource['meta']['versionId']}"
        status = 200 if reply.replayed else 201
        return _json(resource, status=status, headers={"ETag": _etag(resource), "Location": where})

    async def update_appointment(self, request: web.Request) -> web.Response:
        body = await _resource_body(request, "Appointment")
        if "id" in body and str(body["id"]) != request.match_info["id"]:
            raise invalid("the Appointment's id differs from the URL's", field_name="id")
        return await self._change_status(request, body.get("status"))

    async def patch_appointment(self, request: web.Request) -> web.Response:
        """JSON Patch (RFC 6902, `replace`/`test` on /status), or a merge patch `{"status": …}` (what fhirpy's
        resource.patch sends)."""
        body = await _json_body(request)
        if request.content_type == "application/json-patch+json":
            return await self._change_status(request, _patched_status(body))
        if not isinstance(body, dict) or not set(body) <= {"resourceType", "id", "status"} or "status" not in body:
            raise invalid("a merge patch of an Appointment may set status only", field_name="status")
        return await self._change_status(request, body["status"])

    async def _change_status(self, request: web.Request, target: object) -> web.Response:
        md, ident = _auth(request), request.match_info["id"]
        booking = await self._get_booking(md, _id_or_404("Appointment", ident))
        _check_if_match(request, booking)
        if target != fhir.APPOINTMENT_STATUS[booking.status]:  # the same status again changes nothing
            booking = await self._transition(md, booking.id, target)
        resource = fhir.appointment(booking, await self._get_slot(md, booking.slot_id))
        return _json(resource, headers={"ETag": _etag(resource)})

    async def _transition(self, md: Metadata, booking_id: int, target: object) -> booking_pb2.Booking:
        if target == "booked":
            confirm = booking_service_pb2.ConfirmBookingRequest(booking_id=booking_id)
            return (await self._bookings.ConfirmBooking(confirm, metadata=md, timeout=CALL_TIMEOUT_SECONDS)).booking
        if target == "cancelled":
            cancel = booking_service_pb2.CancelBookingRequest(booking_id=booking_id)
            return (await self._bookings.CancelBooking(cancel, metadata=md, timeout=CALL_TIMEOUT_SECONDS)).booking
        raise invalid(f"status may become booked or cancelled, not {target!r}", field_name="status")


# --- helpers -------------------------------------------------------------------------------------------

Metadata = tuple[tuple[str, str], ...]


def _auth(request: web.Request) -> Metadata:
    """The caller's bearer token, passed through untouched: the gRPC server decides who may do what."""
    header = request.headers.get("Authorization")
    return (("authorization", header),) if header else ()


def _base(request: web.Request) -> str:
    return f"{request.url.origin()}{BASE_PATH}"


def _json(resource: Resource, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(resource), content_type=FHIR_JSON, charset="utf-8", headers=headers
    )


def _etag(resource: Resource) -> str:
    return f'W/"{resource["meta"]["versionId"]}"'


def _check_format(request: web.Request) -> None:
    fmt = request.url.query.get("_format", "json")
    if fmt not in ("json", "application/json", FHIR_JSON):
        raise invalid("only JSON is served (_format=json)", field_name="_format")


def _check_if_match(request: web.Request, booking: booking_pb2.Booking) -> None:
    """If-Match against a fresh read. The transitions themselves are compare-and-set on status in the
    database, so a write between this read and the call can make the call fail, never apply twice."""
    expected = request.headers.get("If-Match")
    if expected is None:
        return
    version = fhir.version_id(booking)
    if expected.strip().removeprefix("W/").strip('"') != version:
        raise FhirError(
            grpc.StatusCode.FAILED_PRECONDITION,
            VERSION_MISMATCH,
            f'If-Match {expected} is not the current version W/"{version}"',
        )


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise invalid("the body is not JSON") from None


async def _resource_body(request: web.Request, kind: str) -> dict[str, Any]:
    body = await _json_body(request)
    if not isinstance(body, dict) or body.get("resourceType") != kind:
        raise invalid(f"the body must be a {kind} resource", field_name="resourceType")
    return body


def _slot_of(body: dict[str, Any]) -> int:
    slots = body.get("slot")
    if not isinstance(slots, list) or len(slots) != 1 or not isinstance(slots[0], dict):
        raise invalid("an Appointment holds exactly one Slot: slot = [{reference: Slot/<id>}]", field_name="slot")
    reference = str(slots[0].get("reference", ""))
    return positive_id("slot", reference_id("slot", reference, "Slot"))


def _patient_of(body: dict[str, Any]) -> str:
    """The patient participant's id; empty when none is named (a patient token books as itself)."""
    for participant in body.get("participant") or []:
        actor = participant.get("actor") if isinstance(participant, dict) else None
        if not isinstance(actor, dict):
            continue
        if str(actor.get("reference", "")).startswith("Patient/"):
            return fhir.patient_id_of(str(actor["reference"]))
        identifier = actor.get("identifier")
        if isinstance(identifier, dict) and identifier.get("system") == fhir.PATIENT_SYSTEM:
            return str(identifier.get("value", ""))
    return ""


def _request_id(request: web.Request, body: dict[str, Any]) -> str:
    """If-None-Exist: identifier=[urn:orflow:request-id|]<value>, else the body's identifier in that system."""
    from_body = [
        str(i.get("value", ""))
        for i in body.get("identifier") or []
        if isinstance(i, dict) and i.get("system") == fhir.REQUEST_ID_SYSTEM
    ]
    condition = request.headers.get("If-None-Exist", "")
    if not condition:
        return from_body[0] if from_body else ""
    name, _, value = condition.partition("=")
    system, bar, code = value.partition("|")
    if name != "identifier" or (bar and system != fhir.REQUEST_ID_SYSTEM) or not (code if bar else value):
        raise invalid(f"If-None-Exist supports identifier=[{fhir.REQUEST_ID_SYSTEM}|]<value> only")
    request_id = code if bar else value
    if from_body and from_body[0] != request_id:
        raise invalid("If-None-Exist and the Appointment's identifier differ", field_name="identifier")
    return request_id


def _patched_status(patch: Any) -> object:
    if not isinstance(patch, list) or not patch:
        raise invalid("a JSON Patch is a non-empty array of operations")
    target: object = None
    for op in patch:
        if not isinstance(op, dict) or op.get("path") != "/status" or op.get("op") not in ("replace", "test"):
            raise invalid("only replace (or test) on /status is supported", field_name="status")
        if op["op"] == "replace":
            target = op.get("value")
    if target is None:
        raise invalid("the patch replaces nothing", field_name="status")
    return target


def _set_time(field: Timestamp, moment: datetime | None) -> None:
    if moment is not None:
        field.FromDatetime(moment)


def _id_or_404(kind: str, ident: str) -> int:
    if not ident.isdigit() or not 0 < int(ident) < 2**63:
        raise _not_found(kind, ident)
    return int(ident)


def _not_found(kind: str, ident: str) -> FhirError:
    return FhirError(grpc.StatusCode.NOT_FOUND, UNKNOWN_RESOURCE, f"{kind}/{ident} is not known")


def _unknown_type(kind: str) -> FhirError:
    return FhirError(grpc.StatusCode.NOT_FOUND, UNKNOWN_RESOURCE, f"{kind} is not served here (see /metadata)")


async def _not_supported(request: web.Request) -> web.Response:
    raise FhirError(grpc.StatusCode.UNIMPLEMENTED, NOT_SUPPORTED, f"{request.method} {request.path} is not supported")


@web.middleware
async def _outcomes(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal, the server's or the edge's, through the one table; anything else a logged 500."""
    try:
        return await handler(request)
    except grpc.aio.AioRpcError as error:
        return _refused(refusal_from_rpc(error))
    except FhirError as error:
        return _refused(error.refusal)
    except (asyncio.CancelledError, ConnectionResetError, web.HTTPException):
        raise
    except Exception:  # noqa: BLE001 - the FHIR edge's one place for the unexpected
        _log.exception("FHIR error on %s %s", request.method, request.path)
        return _refused(Refusal(grpc.StatusCode.INTERNAL, "", "internal error"))


def _refused(refusal: Refusal) -> web.Response:
    reply = answer(refusal)
    return _json(reply.body, status=reply.status, headers=reply.headers)
