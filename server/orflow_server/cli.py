"""The `orflow` command: up, server, worker, migrate, seed, bench.

Only this module reads os.environ; everything else takes a Settings.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import asyncpg

from . import embedded
from .app import SERVICE_NAMES, create_pool, serve
from .bench import command as bench_command
from .db.migrate import apply_migrations
from .ops.context import OpsContext
from .ops.seed import seed_database
from .settings import Settings, SettingsError
from .worker.main import run_worker
from .worker.queue import NoQueueExpiryScheduler


def _step(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


@contextmanager
def _database(settings: Settings, *, is_owner: bool) -> Iterator[str]:
    """The configured database URL, or the embedded PostgreSQL's (started if needed).

    When `is_owner`, an embedded PostgreSQL started here is stopped on exit.
    """
    if settings.database_url:
        yield settings.database_url
        return
    pg = embedded.start_postgres(settings.data_dir.resolve() / "postgres")
    try:
        yield pg.url
    finally:
        if is_owner:
            embedded.stop_postgres(pg)


async def _migrate(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()


async def _seed(settings: Settings, url: str, *, only_if_empty: bool) -> tuple[int, int, int, int] | None:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    assert pool is not None
    try:
        if only_if_empty and await pool.fetchval("SELECT EXISTS (SELECT 1 FROM rooms)"):
            return None
        ops = OpsContext(
            pool=pool, hold_ttl=settings.hold_ttl, turnover=settings.turnover, expiry=NoQueueExpiryScheduler()
        )
        return await seed_database(ops)
    finally:
        await pool.close()


def _print_seed(counts: tuple[int, int, int, int] | None) -> None:
    if counts is None:
        _step("demo data: already present, left as it is (`orflow seed` resets it)")
    else:
        rooms, doctors, equipment, slots = counts
        _step(f"demo data loaded: {rooms} rooms, {doctors} surgeons, {equipment} equipment types, {slots} slots")


def cmd_migrate(settings: Settings) -> int:
    with _database(settings, is_owner=False) as url:
        applied = asyncio.run(_migrate(url))
    _step(f"migrations applied: {', '.join(applied)}" if applied else "migrations: already up to date")
    return 0


def cmd_seed(settings: Settings) -> int:
    with _database(settings, is_owner=False) as url:
        asyncio.run(_migrate(url))
        _print_seed(asyncio.run(_seed(settings, url, only_if_empty=False)))
    return 0


def cmd_server(settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with _database(settings, is_owner=False) as url:
        asyncio.run(serve(settings, database_url=url))
    return 0


def cmd_worker(settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.redis_url:
        print("orflow: the worker needs ORFLOW_REDIS_URL (`orflow up` sets it for you)", file=sys.stderr)
        return 2
    with _database(settings, is_owner=False) as url:
        asyncio.run(_work(settings, url, settings.redis_url))
    return 0


async def _work(settings: Settings, database_url: str, redis_url: str) -> None:
    pool = await create_pool(settings, database_url)
    try:
        ops = OpsContext(
            pool=pool, hold_ttl=settings.hold_ttl, turnover=settings.turnover, expiry=NoQueueExpiryScheduler()
        )
        await run_worker(
            ops,
            redis_url=redis_url,
            queue_name=settings.queue_name,
            sweep_seconds=settings.sweep_seconds,
            metrics_addr=settings.worker_metrics_addr,
        )
    finally:
        await pool.close()


def cmd_up(settings: Settings) -> int:
    """Everything in the foreground; Ctrl-C stops the children, then the embedded services."""
    started = time.monotonic()
    _step("[1/4] PostgreSQL: " + ("using ORFLOW_DATABASE_URL" if settings.database_url else "embedded"))
    with _database(settings, is_owner=True) as url:
        redis = None
        _step("[2/4] Redis: " + ("using ORFLOW_REDIS_URL" if settings.redis_url else "embedded"))
        if not settings.redis_url:
            redis = embedded.start_redis(settings.data_dir.resolve() / "redis")
        try:
            _step("[3/4] migrations and demo data")
            asyncio.run(_migrate(url))
            _print_seed(asyncio.run(_seed(settings, url, only_if_empty=True)))
            env = {
                **os.environ,
                "ORFLOW_DATABASE_URL": url,
                "ORFLOW_REDIS_URL": settings.redis_url or (redis.url if redis else ""),
            }
            _step("[4/4] starting the gRPC server and the expiry worker")
            children = [
                subprocess.Popen([sys.executable, "-m", "orflow_server", command], env=env)
                for command in ("server", "worker")
            ]
            if _wait_for_port(settings.grpc_addr, children):
                _print_ready(settings, time.monotonic() - started)
            return _supervise(children)
        finally:
            if redis is not None:
                embedded.stop_redis(redis)


def _wait_for_port(addr: str, children: Sequence[subprocess.Popen[bytes]], timeout: float = 30.0) -> bool:
    """True once `addr` accepts connections; False if a child died or time ran out."""
    host, _, port = addr.rpartition(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and all(child.poll() is None for child in children):
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _print_ready(settings: Settings, seconds: float) -> None:
    addr = settings.grpc_addr
    print(
        f"\nOR Flow is up in {seconds:.1f} s.\n"
        f"  gRPC:      {addr}  (services: {', '.join(SERVICE_NAMES)})\n"
        f"  try:       grpcurl -plaintext {addr} list\n"
        f"  data:      {settings.data_dir.resolve()}\n"
        "  stop:      Ctrl-C\n",
        file=sys.stderr,
        flush=True,
    )


def _supervise(children: Sequence[subprocess.Popen[bytes]]) -> int:
    """Waits until a child exits or a signal comes, then stops every child."""
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    failed = [c for c in children if c.returncode not in (0, -signal.SIGTERM, -signal.SIGINT)]
    _step("stopped" + (f"; a child exited with {failed[0].returncode}" if failed else " cleanly"))
    return 1 if failed and not stopping else 0


COMMANDS = {"up": cmd_up, "server": cmd_server, "worker": cmd_worker, "migrate": cmd_migrate, "seed": cmd_seed}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orflow", description="OR Flow surgical booking backend")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start everything (embedded PostgreSQL/Redis unless URLs are set)")
    sub.add_parser("server", help="run the gRPC server")
    sub.add_parser("worker", help="run the SAQ worker that expires holds (needs ORFLOW_REDIS_URL)")
    sub.add_parser("migrate", help="apply database migrations (idempotent)")
    sub.add_parser("seed", help="reset the database to the demo data set")
    bench_command.add_arguments(sub.add_parser("bench", help="load test OR Flow against the database's own ceiling"))
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        print(f"orflow: bad setting: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "bench":
            return bench_command.cmd_bench(settings, args)
        return COMMANDS[args.command](settings)
    except embedded.EmbeddedServiceError as exc:
        print(f"orflow: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
