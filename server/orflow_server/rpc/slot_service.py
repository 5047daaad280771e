"""SlotService: browse slots and find surgeons."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import grpc
from orflow.v1 import slot_service_pb2 as pb
from orflow.v1 import slot_service_pb2_grpc

from ..domain.changes import SlotChangeKind
from ..domain.errors import UnavailableError
from ..domain.filters import SlotFilters
from ..domain.models import Slot
from ..domain.paging import page_size_or_default
from ..ops import slots as ops
from ..ops.context import OpsContext
from ..ops.watch import SlotChangeFeed, slot_reader, watch_slots
from ..security.streams import StreamLimits
from . import convert
from .auth import current_actor
from .handlers import ResponseSerializers
from .validate import RequestChecker

Context = grpc.aio.ServicerContext[Any, Any]

SHARED_MESSAGES = 1024
"""Converted change messages kept for sharing across watchers (the newest changes)."""
_SNAPSHOT_COMPLETE = pb.WatchSlotsResponse(kind=convert.CHANGE_KIND_TO_PROTO[SlotChangeKind.SNAPSHOT_COMPLETE])


class _SharedMessages:
    """One WatchSlotsResponse per change, serialized once, however many watchers send it.

    The routed feed hands every watcher the same Slot object for a change, so
    keying by that object's identity (the entry holds the object, so the id
    cannot be reused while kept) converts each change once per process. The
    message's bytes are kept beside it: WatchSlots is registered with
    `serialize` as its response serializer (`add_to_server`), which sends a
    shared message's bytes as they are and serializes any other message itself.
    """

    def __init__(self) -> None:
        self._messages: OrderedDict[tuple[int, SlotChangeKind], tuple[Slot, pb.WatchSlotsResponse]] = OrderedDict()
        self._bytes: dict[int, tuple[pb.WatchSlotsResponse, bytes]] = {}

    def get(self, kind: SlotChangeKind, slot: Slot) -> pb.WatchSlotsResponse:
        key = (id(slot), kind)
        entry = self._messages.get(key)
        if entry is None or entry[0] is not slot:
            message = pb.WatchSlotsResponse(kind=convert.CHANGE_KIND_TO_PROTO[kind], slot=convert.slot_to_proto(slot))
            entry = self._messages[key] = (slot, message)
            self._bytes[id(message)] = (message, message.SerializeToString())
            while len(self._messages) > SHARED_MESSAGES:
                _, (_, evicted) = self._messages.popitem(last=False)
                del self._bytes[id(evicted)]
        return entry[1]

    def serialize(self, message: pb.WatchSlotsResponse) -> bytes:
        """The shared message's bytes (the entry holds the message, so an id found is this message's), else fresh."""
        entry = self._bytes.get(id(message))
        return entry[1] if entry is not None and entry[0] is message else message.SerializeToString()


class SlotService(slot_service_pb2_grpc.SlotServiceServicer):
    def __init__(self, ctx: OpsContext, *, streams: StreamLimits, hub: SlotChangeFeed | None = None) -> None:
        self._ctx = ctx
        self._hub = hub
        self._streams = streams
        self._shared = _SharedMessages()
        self.serialize_watch_response = self._shared.serialize

    async def ListSlots(self, request: pb.ListSlotsRequest, context: Context) -> pb.ListSlotsResponse:
        check = RequestChecker()
        filters = SlotFilters(
            procedure_type=check.text("procedure_type", request.procedure_type, max_length=200, is_required=False),
            doctor_id=check.optional_id("doctor_id", request.doctor_id),
            room_id=check.optional_id("room_id", request.room_id),
            window_start=check.timestamp("window_start", request.window_start, is_set=request.HasField("window_start")),
            window_end=check.timestamp("window_end", request.window_end, is_set=request.HasField("window_end")),
            is_available_only=request.available_only,
            site_id=check.optional_id("site_id", request.site_id),
            day=check.local_date("day", request.day, is_set=request.HasField("day")),
            is_retired_shown=request.show_retired,
        )
        if filters.window_start and filters.window_end and filters.window_end <= filters.window_start:
            check.fail("window_end", "must be after window_start")
        if request.HasField("day") and not request.site_id:
            check.fail("site_id", "is required with day (the day is read in the site's time zone)")
        check.raise_if_any()
        slots, token = await ops.list_slots(
            self._ctx.within(context),
            filters,
            page_size=page_size_or_default(request.page_size),
            page_token=request.page_token,
        )
        return pb.ListSlotsResponse(slots=[convert.slot_to_proto(s) for s in slots], next_page_token=token)

    async def GetSlot(self, request: pb.GetSlotRequest, context: Context) -> pb.GetSlotResponse:
        check = RequestChecker()
        slot_id = check.positive_id("slot_id", request.slot_id)
        check.raise_if_any()
        return pb.GetSlotResponse(slot=convert.slot_to_proto(await ops.get_slot(self._ctx.within(context), slot_id)))

    async def ListDoctors(self, request: pb.ListDoctorsRequest, context: Context) -> pb.ListDoctorsResponse:
        check = RequestChecker()
        query = check.text("query", request.query, max_length=200, is_required=False)
        check.raise_if_any()
        doctors, token = await ops.list_doctors(
            self._ctx.within(context),
            query=query,
            page_size=page_size_or_default(request.page_size),
            page_token=request.page_token,
            is_retired_shown=request.show_retired,
        )
        return pb.ListDoctorsResponse(doctors=[convert.doctor_to_proto(d) for d in doctors], next_page_token=token)

    async def WatchSlots(self, request: pb.WatchSlotsRequest, context: Context) -> AsyncIterator[pb.WatchSlotsResponse]:
        check = RequestChecker()
        filters = SlotFilters(
            procedure_type=check.text("procedure_type", request.procedure_type, max_length=200, is_required=False),
            doctor_id=check.optional_id("doctor_id", request.doctor_id),
            room_id=check.optional_id("room_id", request.room_id),
            site_id=check.optional_id("site_id", request.site_id),
        )
        check.raise_if_any()
        if self._hub is None:
            raise UnavailableError("this server has no live slot updates; poll ListSlots")
        actor = current_actor()
        with (
            self._streams.open(actor, connection=context.peer()),
            self._hub.subscribe(filters, slot_reader(self._ctx)) as subscription,
        ):
            # A cancelled stream may leave this generator suspended at a yield
            # until it is garbage-collected; the done callback unsubscribes now.
            # (grpc-stubs declares DoneCallback as a class, not a Protocol.)
            context.add_done_callback(lambda _: subscription.close())  # type: ignore[arg-type]
            async for kind, slot in watch_slots(subscription, self._ctx, filters, is_staff=actor.is_staff):
                if slot is None:
                    yield _SNAPSHOT_COMPLETE
                elif kind is SlotChangeKind.SNAPSHOT:  # this watcher's own rows: nothing to share
                    yield pb.WatchSlotsResponse(
                        kind=convert.CHANGE_KIND_TO_PROTO[kind], slot=convert.slot_to_proto(slot)
                    )
                else:  # a change: the same message (converted once) for every watcher it reaches
                    yield self._shared.get(kind, slot)


def add_to_server(service: SlotService, server: grpc.aio.Server) -> None:
    """Registers the service as generated, but with WatchSlots sending each change's shared bytes (_SharedMessages)."""
    slot_service_pb2_grpc.add_SlotServiceServicer_to_server(
        service,
        ResponseSerializers(server, {"WatchSlots": service.serialize_watch_response}),  # type: ignore[arg-type]
    )  # (it calls only the two registration methods ResponseSerializers has)
