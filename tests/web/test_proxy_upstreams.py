"""One proxy in front of three servers: calls spread round robin, and a server going down is survived.

The proxy used to dial its upstream with gRPC's default pick_first policy, so every call of a
proxy went to one server whatever the target resolved to. Each server here is a real OR Flow
server with metrics of its own, so the calls it answered are counted per server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import asyncpg
import grpc
import pytest
import pytest_asyncio
from orflow.v1 import slot_service_pb2
from orflow_server.app import OrFlowServer, build_server
from orflow_server.metrics import Metrics
from orflow_server.ops.scheduling import NoQueueExpiryScheduler
from orflow_web.app import start_proxy, upstream_channel, upstream_channels
from orflow_web.settings import ProxySettings, SettingsError

from tests.conftest import TEST_SETTINGS
from tests.web.conftest import PROXY_TEST_SETTINGS
from tests.web.grpcweb import BINARY, call, decode_body, frame

LIST_SLOTS = "/orflow.v1.SlotService/ListSlots"
SERVERS = 3
MAX_CALLS = 200  # round robin reaches a server once its connection is READY: a few calls in, not the first


@pytest_asyncio.fixture(loop_scope="session")
async def servers(pool: asyncpg.Pool) -> AsyncIterator[list[tuple[OrFlowServer, Metrics]]]:
    started = []
    for _ in range(SERVERS):
        metrics = Metrics()
        server = build_server(TEST_SETTINGS, pool=pool, expiry=NoQueueExpiryScheduler(), metrics=metrics)
        await server.start()
        started.append((server, metrics))
    yield started
    for server, _ in started:
        await server.stop(grace=None)


def _answered(metrics: Metrics) -> float:
    """ListSlots calls this server completed, whatever their code."""
    return sum(
        sample.value
        for family in metrics.registry.collect()
        if family.name == "grpc_server_handled"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("grpc_method") == "ListSlots"
    )


async def _list_slots(http: aiohttp.ClientSession, proxy: str) -> int:
    reply = await call(http, proxy + LIST_SLOTS, slot_service_pb2.ListSlotsRequest(page_size=1))
    return reply.status


async def test_one_proxy_spreads_calls_over_every_server_and_survives_one_down(
    servers: list[tuple[OrFlowServer, Metrics]], http: aiohttp.ClientSession
) -> None:
    upstream = ",".join(f"127.0.0.1:{server.port}" for server, _ in servers)
    settings = replace(PROXY_TEST_SETTINGS, web_upstream=upstream, web_addr="127.0.0.1:0")
    async with upstream_channel(settings) as channel:
        runner = await start_proxy(settings, channel=channel)
        try:
            proxy = f"http://127.0.0.1:{runner.addresses[0][1]}"
            counts = await _calls_until_all_answered(http, proxy, servers)
            print(f"\nListSlots answered per server through one proxy: {counts}")
            assert all(n > 0 for n in counts)

            down, down_metrics = servers[0]
            await down.stop(grace=None)
            before = [_answered(m) for _, m in servers]
            codes = [await _list_slots(http, proxy) for _ in range(30)]
            after = [_answered(m) for _, m in servers]
            print(f"after server 0 stopped: codes {set(codes)}, answered per server {after}")
            assert codes == [0] * 30  # every call answered OK by the two left
            assert after[0] == before[0] == _answered(down_metrics)
            assert after[1] > before[1] and after[2] > before[2]
        finally:
            await runner.cleanup()


async def _calls_until_all_answered(
    http: aiohttp.ClientSession, proxy: str, servers: list[tuple[OrFlowServer, Metrics]]
) -> list[float]:
    for _ in range(MAX_CALLS):
        assert await _list_slots(http, proxy) == 0
        counts = [_answered(m) for _, m in servers]
        if all(counts):
            return counts
    return [_answered(m) for _, m in servers]


def test_the_upstream_is_a_list_of_addresses_or_a_grpc_target() -> None:
    listed = ProxySettings.from_env({"ORFLOW_WEB_UPSTREAM": "10.0.0.5:50051, 10.0.0.6:50051"})
    assert listed.upstream_target == "ipv4:10.0.0.5:50051,10.0.0.6:50051"
    assert ProxySettings.from_env({"ORFLOW_WEB_UPSTREAM": "[::1]:1,[::2]:2"}).upstream_target == "ipv6:[::1]:1,[::2]:2"
    named = ProxySettings.from_env({"ORFLOW_WEB_UPSTREAM": "dns:///orflow-server:50051"})
    assert named.upstream_target == "dns:///orflow-server:50051"
    alone = ProxySettings.from_env({"ORFLOW_GRPC_ADDR": "orflow-server:50051"})
    assert alone.upstream_target == "orflow-server:50051"  # gRPC resolves it by DNS: every address, round robin


@pytest.mark.parametrize("value", ["orflow-server:50051,other:50051", "10.0.0.5", "10.0.0.5:1,[::1]:2"])
def test_a_bad_upstream_names_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="ORFLOW_WEB_UPSTREAM"):
        ProxySettings.from_env({"ORFLOW_WEB_UPSTREAM": value})


WATCH = "/orflow.v1.SlotService/WatchSlots"


async def _watch_status(http: aiohttp.ClientSession, proxy: str) -> str:
    """An anonymous WatchSlots through the proxy, held for its 2 s deadline: the stream's final status name."""
    request = frame(slot_service_pb2.WatchSlotsRequest().SerializeToString())
    headers = {"Content-Type": BINARY, "grpc-timeout": "2S"}
    async with http.post(proxy + WATCH, data=request, headers=headers) as response:
        reply = decode_body(await response.read(), is_text=False)
    return next(code.name for code in grpc.StatusCode if code.value[0] == reply.status)


async def test_the_proxy_spreads_watchers_over_its_upstream_connections(
    pool: asyncpg.Pool, database_url: str, http: aiohttp.ClientSession
) -> None:
    """Every browser's WatchSlots reaches the server through the proxy, and the server caps the streams one
    connection may hold: with one upstream connection the whole portal shared that cap."""
    one_per_connection = replace(TEST_SETTINGS, watch_streams_per_connection=1)
    server = build_server(one_per_connection, pool=pool, expiry=NoQueueExpiryScheduler(), listen_dsn=database_url)
    await server.start()
    try:
        base = replace(PROXY_TEST_SETTINGS, grpc_addr=f"127.0.0.1:{server.port}", web_addr="127.0.0.1:0")
        for connections, expected in [
            (1, ["DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"]),
            (2, ["DEADLINE_EXCEEDED", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"]),
        ]:
            settings = replace(base, web_upstream_connections=connections)
            channels = upstream_channels(settings)
            runner = await start_proxy(settings, channel=channels)
            try:
                proxy = f"http://127.0.0.1:{runner.addresses[0][1]}"
                assert await _list_slots(http, proxy) == 0  # every connection's first call: ready before the race
                assert await _list_slots(http, proxy) == 0
                statuses = await asyncio.gather(*(_watch_status(http, proxy) for _ in expected))
                print(f"{connections} upstream connection(s), {len(expected)} watchers: {sorted(statuses)}")
                assert sorted(statuses) == expected  # a watcher held to its deadline, or refused at the cap
            finally:
                await runner.cleanup()
                for channel in channels:
                    await channel.close(None)
    finally:
        await server.stop(grace=None)


def test_the_proxy_keeps_four_upstream_connections_unless_told() -> None:
    assert ProxySettings.from_env({}).web_upstream_connections == 4
    assert ProxySettings.from_env({"ORFLOW_WEB_UPSTREAM_CONNECTIONS": "8"}).web_upstream_connections == 8
    with pytest.raises(SettingsError, match="ORFLOW_WEB_UPSTREAM_CONNECTIONS"):
        ProxySettings.from_env({"ORFLOW_WEB_UPSTREAM_CONNECTIONS": "0"})
