"""Hold metrics in Prometheus text format, scraped over HTTP from a real server."""

from __future__ import annotations

import asyncio
import urllib.request

from orflow.v1 import booking_service_pb2, booking_service_pb2_grpc
from orflow_server.app import build_server
from orflow_server.metrics import Metrics, serve_metrics, stop_metrics
from orflow_server.ops.scheduling import NoQueueExpiryScheduler
from prometheus_client.parser import text_string_to_metric_families

from tests.auth import authorized_channel
from tests.conftest import TEST_SETTINGS
from tests.factories import insert_slot


def scrape(port: int) -> dict[str, float]:
    """Every sample on /metrics, keyed by name plus labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def test_server_counts_holds_created_confirmed_and_cancelled(db, pool) -> None:  # type: ignore[no-untyped-def]
    metrics = Metrics()
    server = build_server(TEST_SETTINGS, pool=pool, expiry=NoQueueExpiryScheduler(), metrics=metrics)
    http, _, port = serve_metrics(metrics, "127.0.0.1:0")
    await server.start()
    try:
        async with authorized_channel(f"127.0.0.1:{server.port}") as channel:
            stub = booking_service_pb2_grpc.BookingServiceStub(channel)
            ids = []
            for i in range(3):
                request = booking_service_pb2.CreateBookingRequest(
                    slot_id=await insert_slot(db), patient_id=f"p-{i}", request_id=f"r-{i}"
                )
                ids.append((await stub.CreateBooking(request)).booking.id)
                await stub.CreateBooking(request)  # a replay is not a new hold
            await stub.ConfirmBooking(booking_service_pb2.ConfirmBookingRequest(booking_id=ids[0]))
            await stub.CancelBooking(booking_service_pb2.CancelBookingRequest(booking_id=ids[1]))
        samples = await asyncio.to_thread(scrape, port)
    finally:
        await server.stop(grace=None)
        stop_metrics(http)
    assert samples["orflow_holds_created_total"] == 3
    assert samples["orflow_holds_confirmed_total"] == 1
    assert samples["orflow_holds_cancelled_total"] == 1


def test_expired_holds_record_their_lag_by_trigger() -> None:
    metrics = Metrics()
    metrics.record_expired([0.2, 0.9], trigger="job")
    metrics.record_expired([4.0], trigger="sweep")
    metrics.record_expired([], trigger="sweep")
    http, _, port = serve_metrics(metrics, "127.0.0.1:0")
    try:
        samples = scrape(port)
    finally:
        stop_metrics(http)
    assert samples["orflow_holds_expired_total{trigger=job}"] == 2
    assert samples["orflow_holds_expired_total{trigger=sweep}"] == 1
    assert samples["orflow_hold_expiry_lag_seconds_count"] == 3
    assert samples["orflow_hold_expiry_lag_seconds_bucket{le=1.0}"] == 2
    assert abs(samples["orflow_hold_expiry_lag_seconds_sum"] - 5.1) < 1e-9
