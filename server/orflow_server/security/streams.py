"""Caps on open WatchSlots streams: per caller, per connection and in total, in this process's memory.

Each stream costs a snapshot read and a queue; without caps one client could
open hundreds and starve everyone else's reads. A caller is its token's
subject. Anonymous streams are not counted per caller here: the server cannot
tell anonymous browsers behind the gRPC-web proxy apart (they all arrive on the
proxy's connection), so for them the proxy caps streams per client address and
this module caps each connection and the total.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

from ..domain.access import Actor, Role
from ..domain.errors import StreamLimitError

RETRY_AFTER_SECONDS = 5.0


class StreamLimits:
    """Counts open streams; `open()` refuses one over any cap with StreamLimitError (RESOURCE_EXHAUSTED)."""

    def __init__(self, *, per_caller: int, per_connection: int, total: int) -> None:
        self._caps = {"per_caller": per_caller, "per_connection": per_connection, "total": total}
        self._callers: Counter[str] = Counter()
        self._connections: Counter[str] = Counter()
        self._total = 0

    @property
    def open_count(self) -> int:
        return self._total

    @contextlib.contextmanager
    def open(self, actor: Actor, *, connection: str) -> Iterator[None]:
        """Holds one stream's place for the duration of the block."""
        caller = None if actor.role is Role.ANONYMOUS else f"{actor.role}:{actor.subject}"
        self._check("total", self._total)
        self._check("per_connection", self._connections[connection])
        if caller is not None:
            self._check("per_caller", self._callers[caller])
            self._callers[caller] += 1
        self._connections[connection] += 1
        self._total += 1
        try:
            yield
        finally:
            self._total -= 1
            _release(self._connections, connection)
            if caller is not None:
                _release(self._callers, caller)

    def _check(self, limit: str, count: int) -> None:
        if count >= self._caps[limit]:
            raise StreamLimitError(limit, maximum=self._caps[limit], retry_after_seconds=RETRY_AFTER_SECONDS)


def _release(counts: Counter[str], key: str) -> None:
    counts[key] -= 1
    if counts[key] <= 0:
        del counts[key]
