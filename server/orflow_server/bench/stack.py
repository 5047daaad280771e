"""The stack under test: a fresh database, `orflow server` and `orflow worker` as child processes, all removed after.

PostgreSQL and Redis are the ones ORFLOW_DATABASE_URL / ORFLOW_REDIS_URL name
(the bench creates, then drops, a database of its own on that server), else
embedded ones started as `orflow up` does. `--target` skips all of that and
drives a stack someone else runs, on the database ORFLOW_DATABASE_URL names
(whose tables the bench empties).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from .. import embedded
from ..children import wait_for_port
from ..db.migrate import apply_migrations
from ..domain.access import Role
from ..security.tokens import issue_token, new_secret
from ..settings import Settings


@dataclass(frozen=True)
class Stack:
    target: str  # host:port of the gRPC server
    database_url: str
    redis_url: str
    queue_name: str
    token: str  # a service token: an internal system booking for many patients (no rate limit by default)

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


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


@asynccontextmanager
async def _fresh_database(server_url: str) -> AsyncIterator[str]:
    name = f"orflow_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _with_database(server_url, name)
    try:
        conn = await asyncpg.connect(url)
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()
        yield url
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def _start_children(
    url: str, redis_url: str, queue: str, *, secret: str, server_processes: int
) -> tuple[str, list[subprocess.Popen[bytes]]]:
    port = _free_port()
    env = {
        **os.environ,
        "ORFLOW_DATABASE_URL": url,
        "ORFLOW_REDIS_URL": redis_url,
        "ORFLOW_QUEUE_NAME": queue,
        "ORFLOW_GRPC_ADDR": f"127.0.0.1:{port}",
        "ORFLOW_AUTH_SECRET": secret,
    }
    children = []
    # Several server processes share the port through SO_REUSEPORT (gRPC sets it on Linux).
    for _ in range(server_processes):
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "orflow_server", "server"],
                env={**env, "ORFLOW_METRICS_ADDR": "127.0.0.1:0"},
                stderr=subprocess.DEVNULL,
            )
        )
    children.append(
        subprocess.Popen(
            [sys.executable, "-m", "orflow_server", "worker"],
            env={**env, "ORFLOW_WORKER_METRICS_ADDR": "127.0.0.1:0"},
            stderr=subprocess.DEVNULL,
        )
    )
    return f"127.0.0.1:{port}", children


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@asynccontextmanager
async def bench_stack(settings: Settings, *, target: str | None, server_processes: int) -> AsyncIterator[Stack]:
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
        async with _fresh_database(server_url) as url:
            queue = f"orflow-bench-{uuid.uuid4().hex[:10]}"
            addr, children = _start_children(url, redis_url, queue, secret=secret, server_processes=server_processes)
            try:
                if not wait_for_port(addr, children, timeout=60):
                    raise RuntimeError(f"the server or the worker did not come up on {addr} within 60 s")
                yield Stack(addr, url, redis_url, queue, _service_token(settings, secret))
            finally:
                _stop(children)
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
