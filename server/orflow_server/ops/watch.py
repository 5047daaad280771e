"""WatchSlots as a use case: what a watcher gets, a snapshot and then each change that matches its filters.

The fan-out behind it (one LISTEN connection per process, reconnects with
backoff, a bounded queue per watcher) is infrastructure in orflow_server/live.py;
this module sees it only through the two protocols below, which the server
wires together in app.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Protocol

from ..db import changes as db_changes
from ..db import slots as db_slots
from ..domain.changes import Signal, SlotChange, SlotChangeKind, public_kind
from ..domain.errors import UnavailableError
from ..domain.filters import SlotFilters
from ..domain.models import Slot
from .context import OpsContext

SNAPSHOT_LIMIT = 2000
"""Slots in a snapshot at most (the soonest to start): bounds the cost of a (re)connecting watcher."""

SlotRead = Callable[[], Awaitable[Slot | None]]
SlotReader = Callable[[int], Awaitable[Slot | None]]
Delivery = tuple[SlotChange, Slot | None]
"""A routed feed's item: the notification and the slot re-read after it, once for every watcher."""


class ChangeSubscription(Protocol):
    """One watcher's feed: changes in commit order, or a Signal; never a silent gap."""

    async def next(self) -> SlotChange | Delivery | Signal: ...

    def shared_read(self, change: SlotChange, read: SlotRead) -> Awaitable[Slot | None]:
        """`read`'s result, made once per notification however many watchers ask."""
        ...

    def close(self) -> None: ...


class SlotChangeFeed(Protocol):
    def subscribe(
        self, filters: SlotFilters | None = None, read: SlotReader | None = None
    ) -> AbstractContextManager[ChangeSubscription]:
        """Subscribe BEFORE reading a snapshot, so no change between the two is lost.

        With `filters` and `read` the feed routes: it re-reads each changed slot
        once (with `read`) and hands this watcher only the slots its filters
        match, as Delivery pairs; without, every raw SlotChange.
        """
        ...


def slot_reader(ctx: OpsContext) -> SlotReader:
    """How the feed re-reads a changed slot (one pool connection, briefly)."""

    async def read(slot_id: int) -> Slot | None:
        async with ctx.connection() as conn:
            return await db_slots.fetch_slot(conn, slot_id, turnover=ctx.turnover)

    return read


def _reader(ctx: OpsContext, slot_id: int) -> SlotRead:
    read = slot_reader(ctx)
    return lambda: read(slot_id)


async def watch_slots(
    subscription: ChangeSubscription, ctx: OpsContext, filters: SlotFilters, *, is_staff: bool = True
) -> AsyncIterator[tuple[SlotChangeKind, Slot | None]]:
    """A snapshot, then each change re-read as the slot is now; a new snapshot whenever told to RESYNC.

    A watcher who is not staff sees booking activity only as availability
    (domain.changes.PUBLIC_KINDS). No pool connection is held while yielding,
    so a slow client never pins one.
    """
    is_snapshot_due = True
    while True:
        if is_snapshot_due:
            async with ctx.connection() as conn:
                snapshot = await db_changes.list_snapshot(conn, filters, limit=SNAPSHOT_LIMIT, turnover=ctx.turnover)
            # Handed out and let go: a stream lives for hours, and rows this frame kept would be walked by every
            # full pass of the garbage collector meanwhile (1,000 watchers kept 18,000 slots: 100-200 ms passes).
            snapshot.reverse()
            while snapshot:
                yield SlotChangeKind.SNAPSHOT, snapshot.pop()
            yield SlotChangeKind.SNAPSHOT_COMPLETE, None
        item = await subscription.next()
        if item is Signal.CLOSED:
            raise UnavailableError("the server is shutting down; watch again")
        is_snapshot_due = item is Signal.RESYNC
        if isinstance(item, tuple):  # routed: read once and matched by the feed's index
            change, routed = item
            kind = change.kind if is_staff else public_kind(change.kind)
            if kind is not None and routed is not None and filters.matches(routed):
                yield kind, routed
        elif isinstance(item, SlotChange):
            kind = item.kind if is_staff else public_kind(item.kind)
            if kind is None:
                continue
            changed = await subscription.shared_read(item, _reader(ctx, item.slot_id))
            if changed is not None and filters.matches(changed):
                yield kind, changed
