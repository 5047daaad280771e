"""Operator metrics, in Prometheus text format.

Each process keeps its own registry (no module-level singleton) and serves it
on its own port: the server counts holds created, confirmed and cancelled, and
every RPC by method and code with its latency (`rpc/observe.py`); the worker
counts holds expired, their expiry lag and the queue's depth. Both report their
asyncpg pool, and the server its WatchSlots subscribers, read at scrape time.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from typing import Protocol
from wsgiref.simple_server import WSGIServer

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

RPC_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class HasSubscribers(Protocol):
    """What the WatchSlots gauge reads (live.SlotChangeHub)."""

    @property
    def subscriber_count(self) -> int: ...


class _ResourceCollector(Collector):
    """Pool size/in-use and WatchSlots subscribers, read when scraped (never stale, nothing to update)."""

    def __init__(self) -> None:
        self.pool: asyncpg.Pool | None = None
        self.hub: HasSubscribers | None = None

    def collect(self) -> Iterator[Metric]:
        if self.pool is not None:
            size, idle = self.pool.get_size(), self.pool.get_idle_size()
            yield GaugeMetricFamily("orflow_db_pool_size", "Connections the asyncpg pool holds open", value=size)
            yield GaugeMetricFamily("orflow_db_pool_in_use", "Pool connections acquired now", value=size - idle)
            yield GaugeMetricFamily("orflow_db_pool_max", "The pool's maximum size", value=self.pool.get_max_size())
        if self.hub is not None:
            yield GaugeMetricFamily(
                "orflow_watch_subscribers", "Open WatchSlots streams", value=self.hub.subscriber_count
            )


class Metrics:
    """The hold counters of one process, in a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.holds_created = Counter("orflow_holds_created", "PENDING holds created", registry=reg)
        self.holds_confirmed = Counter("orflow_holds_confirmed", "Holds confirmed", registry=reg)
        self.holds_cancelled = Counter("orflow_holds_cancelled", "Bookings cancelled", registry=reg)
        self.holds_expired = Counter(
            "orflow_holds_expired", "Holds stored FAILED as expired, by what did it", ["trigger"], registry=reg
        )
        self.expiry_lag = Histogram(
            "orflow_hold_expiry_lag_seconds",
            "Seconds from a hold's expire_time to the moment it was stored FAILED",
            buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 5, 10, 30, 60, 300),
            registry=reg,
        )
        self.queue_depth = Gauge("orflow_expiry_queue_depth", "Expiry jobs not yet finished", registry=reg)
        self.calls_denied = Counter(
            "orflow_calls_denied",
            "Calls refused for who made them (bad token, role, another patient's booking), by method and reason",
            ["method", "reason"],
            registry=reg,
        )
        self.expiry_jobs_dropped = Counter(
            "orflow_expiry_jobs_dropped", "Expiry jobs left to the sweep: the enqueue buffer was full", registry=reg
        )
        self.rate_limit_fallbacks = Counter(
            "orflow_rate_limit_fallbacks",
            "Booking rate-limit decisions made by this process's own bucket: the shared one (Redis) did not answer",
            registry=reg,
        )

        self.rpc_handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by method and status code",
            ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
            registry=reg,
        )
        self.rpc_latency = Histogram(
            "grpc_server_handling_seconds",
            "Seconds from an RPC's start to its status (a stream's whole life)",
            ["grpc_service", "grpc_method", "grpc_type"],
            buckets=RPC_LATENCY_BUCKETS,
            registry=reg,
        )
        self.gc_frozen = Gauge(
            "orflow_gc_frozen_objects",
            "Objects kept out of the cyclic collector's passes (gc.freeze at start-up; 0 where not frozen)",
            registry=reg,
        )
        self.gc_frozen.set_function(gc.get_freeze_count)
        self._resources = _ResourceCollector()
        reg.register(self._resources)

    def track_pool(self, pool: asyncpg.Pool) -> None:
        """Reports this pool's size and connections in use."""
        self._resources.pool = pool

    def track_subscribers(self, hub: HasSubscribers) -> None:
        """Reports the hub's open WatchSlots streams."""
        self._resources.hub = hub

    def record_expired(self, lags: list[float], *, trigger: str) -> None:
        if lags:
            self.holds_expired.labels(trigger=trigger).inc(len(lags))
        for lag in lags:
            self.expiry_lag.observe(max(lag, 0.0))


def serve_metrics(metrics: Metrics, addr: str) -> tuple[WSGIServer, threading.Thread, int]:
    """Serves /metrics on host:port (port 0 picks one); returns the server, its thread and the port."""
    host, _, port = addr.rpartition(":")
    server, thread = start_http_server(int(port), host.strip("[]"), registry=metrics.registry)
    return server, thread, int(server.server_port)


def stop_metrics(server: WSGIServer) -> None:
    """Stops serving and closes the listening socket."""
    server.shutdown()
    server.server_close()
