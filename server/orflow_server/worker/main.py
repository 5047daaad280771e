"""The `orflow worker` process: expiry jobs on time, and a sweep as the guarantee."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer
from opentelemetry.util.types import AttributeValue
from saq import Queue, Worker

from ..jobs import EXPIRE_TASK
from ..metrics import serve_metrics, stop_metrics
from ..ops.context import OpsContext
from ..ops.expiry import expire_booking, sweep_overdue_holds

_log = logging.getLogger(__name__)
_jobs = structlog.get_logger("orflow_server.worker.jobs")


class _Worker(Worker[Any]):
    """SAQ's Worker, draining on stop: it takes no new job, lets running ones finish, re-queues the rest.

    On SIGTERM (or SIGINT) the loops that are only waiting for a job are
    cancelled at once, so nothing new starts. Running jobs get `grace_seconds`
    to finish. A job still running then is cancelled: its statement is
    cancelled in PostgreSQL (asyncpg sends the cancel request, the transaction
    rolls back) and SAQ puts the job back in the queue (`job.retry`), where
    the next worker finds it. Should the re-queue itself fail (Redis gone),
    the sweep of the next worker fails the hold anyway: the database is the
    truth. Stopping also ends SAQ's idle loops, which never finish by
    themselves (SAQ's own stop waited for them and warned "Some tasks did not
    finish").
    """

    def __init__(self, queue: Queue, *, grace_seconds: float, **kwargs: Any) -> None:
        super().__init__(queue, before_process=[self._took_job], after_process=[self._left_job], **kwargs)
        self.grace_seconds = grace_seconds
        self._busy: set[asyncio.Task[Any]] = set()  # the SAQ loops running a job (not waiting for one)

    async def _took_job(self, _: Any) -> None:
        if (task := asyncio.current_task()) is not None:
            self._busy.add(task)

    async def _left_job(self, _: Any) -> None:
        if (task := asyncio.current_task()) is not None:
            self._busy.discard(task)

    async def stop(self) -> None:
        self.event.set()
        idle = [task for task in self.tasks if task not in self._busy]  # waiting for a job (or SAQ's upkeep)
        await _cancelled(idle)  # a dequeue cut short leaves its job to SAQ's sweep of the active list
        # The loops running a job: each ends once its job has finished AND SAQ has recorded it in Redis.
        running = [task for task in self.tasks if task in self._busy]
        unfinished: set[asyncio.Task[Any]] = set()
        if running:
            _, unfinished = await asyncio.wait(running, timeout=self.grace_seconds)
        _jobs.info("drain", running=len(running), finished=len(running) - len(unfinished), requeued=len(unfinished))
        await _cancelled(list(self.tasks))  # a cancelled job's loop re-queues it (SAQ's process())
        await super().stop()


async def _cancelled(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


NO_TRACING = trace.NoOpTracer()
"""Tracing off (the default): spans cost nothing and go nowhere."""


def build_worker(ops: OpsContext, queue: Queue, *, grace_seconds: float, tracer: Tracer = NO_TRACING) -> Worker[Any]:
    """A SAQ worker whose one task calls the expiry use case (the sweep runs beside it: `sweep_forever`).

    Each job is a span (a consumer's, with the booking id), its SQL spans below it; its log line carries the trace id.
    """

    async def expire(_: Any, *, booking_id: int) -> bool:
        started = time.perf_counter()
        attributes: dict[str, AttributeValue] = {
            "messaging.system": "saq",
            "messaging.destination.name": queue.name,
            "orflow.booking_id": booking_id,
        }
        with tracer.start_as_current_span(EXPIRE_TASK, kind=SpanKind.CONSUMER, attributes=attributes) as span:
            expired = await expire_booking(ops, booking_id)
            span.set_attribute("orflow.expired", expired)
            elapsed = round((time.perf_counter() - started) * 1000, 2)
            _jobs.info("job", task=EXPIRE_TASK, booking_id=booking_id, expired=expired, duration_ms=elapsed)
        return expired

    return _Worker(
        queue,
        grace_seconds=grace_seconds,
        functions=[(EXPIRE_TASK, expire)],
        # Jobs mostly wait out a sub-second remainder, so more run at once than
        # CPU alone suggests; each holds a Redis connection (redis-py caps its pool).
        concurrency=50,
    )


async def sweep_forever(ops: OpsContext, queue: Queue, *, every_seconds: float, tracer: Tracer = NO_TRACING) -> None:
    """Fails every overdue hold now, then every `every_seconds`: the guarantee behind the per-hold jobs.

    It is the worker's own loop, not a SAQ cron job: a cron job of a SIGKILLed
    worker stays ACTIVE in Redis until SAQ's stuck-job check (every 60 s), which
    blocked the next worker's sweep that long (tests/chaos found it), and a
    cron job cannot run while Redis is down. It runs at start-up first, so a
    worker that was down for an hour fails every hold that expired meanwhile.
    Two workers' sweeps take turns on an advisory lock (db/bookings.py).
    Each round is a span (its SQL spans below it), so a round that failed or was slow can be found.
    """
    while True:
        try:
            with tracer.start_as_current_span("sweep_overdue_holds") as span:
                started = time.perf_counter()
                lags = await sweep_overdue_holds(ops)
                span.set_attribute("orflow.expired", len(lags))
                if lags:  # every few seconds: a line only when it did work
                    elapsed = round((time.perf_counter() - started) * 1000, 2)
                    max_lag = round(max(lags), 3)
                    _jobs.info("job", task="sweep", expired=len(lags), max_lag_s=max_lag, duration_ms=elapsed)
            ops.metrics.queue_depth.set(await queue.count("incomplete"))
        except Exception:  # noqa: BLE001 - the next round retries; a dead loop would end the guarantee
            _log.warning("the overdue-hold sweep failed; retrying in %.0f s", every_seconds, exc_info=True)
        await asyncio.sleep(every_seconds)


async def run_worker(
    ops: OpsContext,
    *,
    redis_url: str,
    queue_name: str,
    sweep_seconds: int,
    metrics_addr: str,
    grace_seconds: float,
    tracer: Tracer = NO_TRACING,
) -> None:
    """Runs until SIGINT/SIGTERM (SAQ's worker handles both; _Worker drains), serving metrics meanwhile.

    The sweep is cancelled on stop, mid-transaction or not: its transaction
    rolls back, and the next worker's start-up sweep does the work.
    """
    # SAQ logs every job it runs at INFO ("Finished ...", the sweep every few seconds included);
    # the jobs log their own line above, the sweep only when it did work. SAQ's warnings and errors stay.
    logging.getLogger("saq").setLevel(logging.WARNING)
    queue = Queue.from_url(redis_url, name=queue_name)
    await queue.connect()
    http, _, port = serve_metrics(ops.metrics, metrics_addr)
    _log.info("worker metrics on http://%s:%d/metrics", metrics_addr.rpartition(":")[0], port)
    try:
        sweeper = asyncio.create_task(
            sweep_forever(ops, queue, every_seconds=sweep_seconds, tracer=tracer), name="orflow-sweep"
        )
        try:
            await build_worker(ops, queue, grace_seconds=grace_seconds, tracer=tracer).start()
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
    finally:
        stop_metrics(http)
        await queue.disconnect()
