"""Live slot changes, the infrastructure: one LISTEN connection per process, fanned out to every watcher.

The database announces each committed change (migration 0002), so this process
hears changes made by any server or worker. Every watcher has a bounded queue;
one that falls behind, or that may have missed notifications while the LISTEN
connection was down, is told to RESYNC and re-reads a snapshot. A watcher may
therefore see a change twice, but never misses one.

A watcher that subscribes with its filters and a slot reader is ROUTED: the
hub re-reads each changed slot once, then hands (change, slot) only to the
watchers whose filters index it (by room, else surgeon, else procedure, else
"all"), in notification order, each through its own bounded queue, so nobody
scans every watcher and a slow one delays nobody. Every routed watcher gets
the same Slot object, so the gRPC layer converts it once for all of them.
A watcher that subscribes without filters gets every raw notification.

What a watcher makes of its feed (the snapshot, which changes match) is the
use case in ops/watch.py; this module knows nothing of slots beyond the
notification and the shared re-read, and the layers never import it: app.py
hands the hub to the slot service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from typing import Protocol

import asyncpg

from .db import changes as db_changes
from .domain.changes import Signal, SlotChange, SlotsReset
from .domain.models import Slot

_log = logging.getLogger(__name__)

SHARED_READS = 4096
"""Re-reads of changed slots kept for sharing: a watcher that comes later than this many changes reads for itself."""

_CONNECTION_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

SlotReader = Callable[[int], Awaitable[Slot | None]]
Delivery = tuple[SlotChange, Slot | None]
"""What a routed watcher gets: the notification and the slot as re-read after it (None: gone)."""
RouteKey = tuple[str, int | str]


class RouteFilters(Protocol):
    """The filters a routed watcher gives (domain.filters.SlotFilters is one)."""

    @property
    def room_id(self) -> int: ...
    @property
    def doctor_id(self) -> int: ...
    @property
    def procedure_type(self) -> str: ...
    def matches(self, slot: Slot) -> bool: ...


def _route_key(filters: RouteFilters) -> RouteKey:
    """The one index bucket a watcher sits in: its most selective filter."""
    if filters.room_id:
        return ("room", filters.room_id)
    if filters.doctor_id:
        return ("doctor", filters.doctor_id)
    if filters.procedure_type:
        return ("procedure", filters.procedure_type.lower())
    return ("all", 0)


def _slot_keys(slot: Slot) -> tuple[RouteKey, ...]:
    """Every bucket whose watchers may want this slot."""
    return (("room", slot.room.id), ("doctor", slot.doctor.id), ("procedure", slot.procedure_type.lower()), ("all", 0))


class Subscription:
    """One watcher's bounded queue of changes (an ops.watch.ChangeSubscription); overflow replaces it with RESYNC."""

    def __init__(
        self,
        hub: SlotChangeHub,
        *,
        queue_size: int,
        filters: RouteFilters | None = None,
        read: SlotReader | None = None,
    ) -> None:
        self._hub = hub
        self._queue: asyncio.Queue[SlotChange | Delivery | Signal] = asyncio.Queue(maxsize=queue_size)
        self._is_closed = False
        self.filters = filters
        self.read = read
        self.route: RouteKey | None = None if filters is None or read is None else _route_key(filters)

    async def next(self) -> SlotChange | Delivery | Signal:
        return await self._queue.get()

    def offer(self, change: SlotChange | Delivery) -> None:
        try:
            self._queue.put_nowait(change)
        except asyncio.QueueFull:
            # Dropping changes is safe only because the snapshot that RESYNC
            # triggers is read after this moment, so it includes all of them.
            self.signal(Signal.RESYNC)

    def signal(self, signal: Signal) -> None:
        """Replaces whatever is queued: after RESYNC or CLOSED, older changes are moot."""
        if self._is_closed:
            return
        self._is_closed = signal is Signal.CLOSED
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(signal)

    def shared_read(self, change: SlotChange, read: Callable[[], Awaitable[Slot | None]]) -> Awaitable[Slot | None]:
        return self._hub.shared_read(change, read)

    def close(self) -> None:
        """Unsubscribes; safe to call more than once (the stream's exit and gRPC's done callback both do)."""
        self._hub.discard(self)


class SlotChangeHub:
    """Owns the LISTEN connection (reconnecting with backoff) and the subscriptions (an ops.watch.SlotChangeFeed)."""

    def __init__(
        self,
        *,
        dsn: str,
        queue_size: int = 1000,
        ping_interval: float = 10.0,
        min_backoff: float = 0.1,
        max_backoff: float = 30.0,
    ) -> None:
        self._dsn = dsn
        self._queue_size = queue_size
        self._ping_interval = ping_interval
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._subscriptions: set[Subscription] = set()
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._is_stopped = False
        self.notice_count = 0
        """Notifications received since start; lets tests (and metrics, later) see delivery progress."""
        self._reads: OrderedDict[int, tuple[SlotChange, asyncio.Future[Slot | None]]] = OrderedDict()
        self._routes: dict[RouteKey, set[Subscription]] = {}
        self._routed = 0
        self._read: SlotReader | None = None  # the newest routed watcher's (every one reads the same database)
        self._tail: asyncio.Future[None] | None = None  # the last routed delivery: each waits for the one before

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions) + self._routed

    @property
    def connection_pid(self) -> int | None:
        """The LISTEN connection's backend pid, while connected (tests terminate it to test reconnects)."""
        return None if self._conn is None or self._conn.is_closed() else self._conn.get_server_pid()

    async def start(self) -> None:
        """Connects first, so a server that cannot LISTEN fails at start-up, not at its first watcher."""
        await self._connect()
        self._task = asyncio.create_task(self._supervise(), name="slot-change-hub")

    async def stop(self) -> None:
        """Ends every subscription (their streams answer UNAVAILABLE, so clients reconnect elsewhere)."""
        self._is_stopped = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._conn is not None:
            with contextlib.suppress(*_CONNECTION_ERRORS):
                await self._conn.close(timeout=2)
            self._conn.terminate()
        if self._tail is not None:
            self._tail.cancel()
        for subscription in self._everyone():
            subscription.signal(Signal.CLOSED)
        self._subscriptions.clear()
        self._routes.clear()
        self._routed = 0

    @contextlib.contextmanager
    def subscribe(self, filters: RouteFilters | None = None, read: SlotReader | None = None) -> Iterator[Subscription]:
        """Subscribe BEFORE reading a snapshot, so no change between the two is lost.

        With `filters` and `read`, the watcher is routed: it gets (change, slot)
        for the slots its filters index, re-read once for all watchers.
        """
        subscription = Subscription(self, queue_size=self._queue_size, filters=filters, read=read)
        if self._is_stopped:
            subscription.signal(Signal.CLOSED)
        elif subscription.route is None:
            self._subscriptions.add(subscription)
        else:
            self._read = read
            bucket = self._routes.setdefault(subscription.route, set())
            if subscription not in bucket:
                bucket.add(subscription)
                self._routed += 1
        try:
            yield subscription
        finally:
            subscription.close()

    def discard(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)
        if subscription.route is not None:
            bucket = self._routes.get(subscription.route)
            if bucket is not None and subscription in bucket:
                bucket.discard(subscription)
                self._routed -= 1
                if not bucket:
                    del self._routes[subscription.route]

    def _everyone(self) -> Iterator[Subscription]:
        yield from self._subscriptions
        for bucket in self._routes.values():
            yield from bucket

    def shared_read(self, change: SlotChange, read: Callable[[], Awaitable[Slot | None]]) -> Awaitable[Slot | None]:
        """One re-read of the slot per notification, shared by every watcher it was offered to.

        Keyed by the notification object itself (the one instance every
        subscription got), never by its value: a later change of the same
        slot is a new object and gets a read of its own, made after it. The
        entry holds the object, so its id cannot be reused while it is kept.
        """
        entry = self._reads.get(id(change))
        if entry is None or entry[0] is not change:
            entry = (change, asyncio.ensure_future(read()))
            self._reads[id(change)] = entry
            while len(self._reads) > SHARED_READS:
                self._reads.popitem(last=False)
        return asyncio.shield(entry[1])  # a watcher that goes away must not cancel the others' read

    def _publish(self, notice: db_changes.Notice) -> None:
        self.notice_count += 1
        for subscription in self._subscriptions:
            if isinstance(notice, SlotsReset):
                subscription.signal(Signal.RESYNC)
            else:
                subscription.offer(notice)
        if self._routes and self._read is not None:
            if isinstance(notice, SlotsReset):
                self._route_in_order(notice, None)
            else:
                read, slot_id = self._read, notice.slot_id
                self._route_in_order(notice, self.shared_read(notice, lambda: read(slot_id)))

    def _route_in_order(self, notice: db_changes.Notice | Signal, slot: Awaitable[Slot | None] | None) -> None:
        """Delivers to the routed watchers once the re-read is in and every earlier notice was delivered.

        The reads of a burst run concurrently; only the hand-over is in order.
        """
        before = self._tail
        self._tail = asyncio.ensure_future(self._route(before, notice, slot))

    async def _route(
        self,
        before: asyncio.Future[None] | None,
        notice: db_changes.Notice | Signal,
        read: Awaitable[Slot | None] | None,
    ) -> None:
        try:
            slot = None if read is None else await read
        except Exception as exc:  # noqa: BLE001 - a failed re-read must not leave watchers with a gap
            _log.warning("re-reading a changed slot failed (%s); watchers resync", type(exc).__name__)
            notice = Signal.RESYNC
            slot = None
        if before is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(before)
        if isinstance(notice, (SlotsReset, Signal)):
            for bucket in self._routes.values():
                for subscription in bucket:
                    subscription.signal(Signal.RESYNC)
            return
        if slot is None:  # the slot is gone: there is nothing to show (as for an unrouted watcher)
            return
        delivery: Delivery = (notice, slot)
        for key in _slot_keys(slot):
            for subscription in list(self._routes.get(key, ())):
                assert subscription.filters is not None
                if subscription.filters.matches(slot):
                    subscription.offer(delivery)

    async def _connect(self) -> None:
        lost = asyncio.Event()
        conn = await db_changes.connect_listener(self._dsn, self._publish)
        conn.add_termination_listener(lambda _conn: lost.set())
        self._conn, self._lost = conn, lost

    async def _supervise(self) -> None:
        while True:
            await self._wait_until_lost()
            _log.warning("lost the LISTEN connection for slot changes; reconnecting")
            await self._reconnect()
            # Notifications sent while we were away are gone: only now, with
            # LISTEN active again, can a snapshot be trusted to cover them.
            for subscription in self._subscriptions:
                subscription.signal(Signal.RESYNC)
            if self._routes:
                self._route_in_order(Signal.RESYNC, None)

    async def _wait_until_lost(self) -> None:
        """Returns when the connection closes, or fails a ping (a peer that vanished sends no FIN)."""
        assert self._conn is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), self._ping_interval)
                break
            try:
                await asyncio.wait_for(db_changes.ping(self._conn), self._ping_interval)
            except _CONNECTION_ERRORS:
                break
        self._conn.terminate()

    async def _reconnect(self) -> None:
        delay = self._min_backoff
        while True:
            try:
                await self._connect()
                return
            except _CONNECTION_ERRORS as exc:
                _log.warning("LISTEN reconnect failed (%s); retrying in %.1f s", type(exc).__name__, delay)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self._max_backoff)
