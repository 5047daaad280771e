"""The stack under test: a fresh database, `orflow server` and `orflow worker` as child processes, all removed after.

PostgreSQL and Redis are the ones ORFLOW_DATABASE_URL / ORFLOW_REDIS_URL name
(the bench creates, then drops, a database of its own on that server), else
embedded ones started as `orflow up` does. `--target` skips all of that and
drives a stack someone else runs, on the database ORFLOW_DATABASE_URL names
(whose tables the bench empties).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from orflow_server.domain.access import Role
from orflow_server.security.tokens import issue_token, new_secret
from orflow_server.settings import Settings

from .. import embedded
from ..testkit.databases import fresh_database
from ..testkit.ports import free_port
from ..testkit.processes import ChildStack


@dataclass(frozen=True)
class Stack:
    target: str  # host:port of the gRPC server
    database_url: str
    redis_url: str
    queue_name: str
    token: str  # a service token: an internal system booking for many patients (no rate limit by default)
    web_target: str | None = None  # host:port of the gRPC-web proxy in front of the server (None: no proxy)
    extra_env: Mapping[str, str] | None = None  # how to start more servers on this stack (None: --target)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)


def _service_token(settings: Settings, secret: str) -> str:
    return issue_token(
        secret,
        subject="orflow-bench",
        role=Role.SERVICE,
        ttl=timedelta(hours=2),
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
    )


@contextmanager
def _services(settings: Settings, data_dir: Path) -> Iterator[tuple[str, str]]:
    """(PostgreSQL server URL, Redis URL): the configured ones, or embedded ones stopped on exit."""
    pg = None if settings.database_url else embedded.start_postgres(data_dir / "postgres")
    redis = None if settings.redis_url else embedded.start_redis(data_dir / "redis")
    try:
        yield settings.database_url or (pg.url if pg else ""), settings.redis_url or (redis.url if redis else "")
    finally:
        if redis is not None:
            embedded.stop_redis(redis)
        if pg is not None:
            embedded.stop_postgres(pg)


def _start_children(
    url: str, redis_url: str, queue: str, *, environ: Mapping[str, str], secret: str, server_processes: int
) -> tuple[str, dict[str, str], ChildStack]:
    addr = f"127.0.0.1:{free_port()}"
    env = {
        # The live-update scenario opens more WatchSlots streams than a server admits by default.
        "ORFLOW_WATCH_STREAMS_TOTAL": "1000000",
        "ORFLOW_WATCH_STREAMS_PER_CONNECTION": "100000",
        **environ,
        "ORFLOW_DATABASE_URL": url,
        "ORFLOW_REDIS_URL": redis_url,
        "ORFLOW_QUEUE_NAME": queue,
        "ORFLOW_GRPC_ADDR": addr,
        "ORFLOW_AUTH_SECRET": secret,
        "ORFLOW_METRICS_ADDR": "127.0.0.1:0",
        "ORFLOW_WORKER_METRICS_ADDR": "127.0.0.1:0",
        "ORFLOW_PROCESSES": "1",  # the bench starts each process itself (`orflow server` would start one per core)
        "ORFLOW_WEB_ADDR": f"127.0.0.1:{free_port()}",
    }
    # Several server processes share the port through SO_REUSEPORT (gRPC sets it on Linux).
    return addr, env, ChildStack.start(["server"] * server_processes + ["worker", "proxy"], env, quiet=True)


@contextmanager
def extra_servers(stack: Stack, count: int) -> Iterator[str]:
    """`count` more server processes on a port of their own, sharing it (SO_REUSEPORT); yields their host:port."""
    assert stack.extra_env is not None
    addr = f"127.0.0.1:{free_port()}"
    children = ChildStack.start(["server"] * count, {**stack.extra_env, "ORFLOW_GRPC_ADDR": addr}, quiet=True)
    try:
        if not children.wait_for(addr, timeout=60):
            raise RuntimeError(f"{count} extra server process(es) did not come up on {addr} within 60 s")
        yield addr
    finally:
        children.stop()


@dataclass(frozen=True)
class Server:
    """One `orflow server` process of a fleet: its gRPC address and its own /metrics."""

    addr: str
    metrics_addr: str


@contextmanager
def server_fleet(
    stack: Stack, count: int, *, workers: int = 0, env: Mapping[str, str] | None = None
) -> Iterator[list[Server]]:
    """`count` server processes, each on its own port with its own /metrics (as pods behind a headless
    Service are), and `workers` more `orflow worker`s, on the stack's database and Redis; `env` overrides."""
    assert stack.extra_env is not None
    base = {**stack.extra_env, **(env or {})}
    servers = [Server(f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}") for _ in range(count)]
    children = [
        ChildStack.start(
            ["server"], {**base, "ORFLOW_GRPC_ADDR": s.addr, "ORFLOW_METRICS_ADDR": s.metrics_addr}, quiet=True
        )
        for s in servers
    ]
    if workers:
        children.append(ChildStack.start(["worker"] * workers, base, quiet=True))
    try:
        for server, child in zip(servers, children, strict=False):
            if not (child.wait_for(server.addr, timeout=60) and child.wait_for(server.metrics_addr, timeout=60)):
                raise RuntimeError(f"a fleet server did not come up on {server.addr} within 60 s")
        if workers and not children[-1].is_running:
            raise RuntimeError("a fleet worker exited at start-up")
        yield servers
    finally:
        for child in children:
            child.stop()


@asynccontextmanager
async def bench_stack(
    settings: Settings, *, target: str | None, server_processes: int, environ: Mapping[str, str]
) -> AsyncIterator[Stack]:
    """The stack to load: started here (and fully removed afterwards), or an existing one at `target`."""
    if target is not None:
        if not settings.database_url or not settings.redis_url or not settings.auth_secret:
            raise RuntimeError(
                "--target needs ORFLOW_DATABASE_URL, ORFLOW_REDIS_URL and ORFLOW_AUTH_SECRET of that stack"
            )
        token = _service_token(settings, settings.auth_secret)
        yield Stack(target, settings.database_url, settings.redis_url, settings.queue_name, token)
        return
    secret = new_secret()  # this run's own server trusts tokens signed with it
    with _services(settings, settings.data_dir.resolve()) as (server_url, redis_url):
        async with fresh_database(server_url, prefix="orflow_bench") as url:
            queue = f"orflow-bench-{uuid.uuid4().hex[:10]}"
            addr, env, children = _start_children(
                url, redis_url, queue, environ=environ, secret=secret, server_processes=server_processes
            )
            web = env["ORFLOW_WEB_ADDR"]
            try:
                if not (children.wait_for(addr, timeout=60) and children.wait_for(web, timeout=60)):
                    raise RuntimeError(f"the server, worker or proxy did not come up on {addr} / {web} within 60 s")
                yield Stack(addr, url, redis_url, queue, _service_token(settings, secret), web, env)
            finally:
                children.stop()
                with contextlib.suppress(Exception):
                    await _clear_queue(redis_url, queue)


async def _clear_queue(redis_url: str, queue: str) -> None:
    """Removes the bench queue's keys from Redis (every SAQ key of a queue names it)."""
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"saq:*{queue}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
