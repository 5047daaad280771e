"""Live slot changes, the infrastructure: one LISTEN connection per process, fanned out to every watcher.

The database announces each committed change (migration 0002), so this process
hears changes made by any server or worker. Every watcher has a bounded queue;
one that falls behind, or that may have missed notifications while the LISTEN
connection was down, is told to RESYNC and re-reads a snapshot. A watcher may
therefore see a change twice, but never misses one.

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

import asyncpg

from .db import changes as db_changes
from .domain.changes import Signal, SlotChange, SlotsReset
from .domain.models import Slot

_log = logging.getLogger(__name__)

SHARED_READS = 4096
"""Re-reads of changed slots kept for sharing: a watcher that comes later than this many changes reads for itself."""

_CONNECTION_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class Subscription:
    """One watcher's bounded queue of changes (an ops.watch.ChangeSubscription); overflow replaces it with RESYNC."""

    def __init__(self, hub: SlotChangeHub, *, queue_size: int) -> None:
        self._hub = hub
        self._queue: asyncio.Queue[SlotChange | Signal] = asyncio.Queue(maxsize=queue_size)
        self._is_closed = False

    async def next(self) -> SlotChange | Signal:
        return await self._queue.get()

    def offer(self, change: SlotChange) -> None:
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

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

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
        for subscription in self._subscriptions:
            subscription.signal(Signal.CLOSED)
        self._subscriptions.clear()

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        """Subscribe BEFORE reading a snapshot, so no change between the two is lost."""
        subscription = Subscription(self, queue_size=self._queue_size)
        if self._is_stopped:
            subscription.signal(Signal.CLOSED)
        else:
            self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            subscription.close()

    def discard(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

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
