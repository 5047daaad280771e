"""The `orflow` command: up, server, worker, proxy, migrate, seed, token, bench.

Only this module reads os.environ; everything else takes a Settings.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import asyncpg

from . import embedded
from .app import SERVICE_NAMES, create_pool, serve
from .bench import command as bench_command
from .children import wait_for_port
from .db.migrate import apply_migrations
from .domain.access import OPERATOR, Role
from .ops.context import OpsContext
from .ops.seed import seed_database
from .security.tokens import TOKEN_ROLES, issue_token, new_secret
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
            pool=pool,
            hold_ttl=settings.hold_ttl,
            turnover=settings.turnover,
            expiry=NoQueueExpiryScheduler(),
            allow_reset=True,  # an operator at the console asked for it (`orflow seed`), or the database is empty
        )
        return await seed_database(ops, OPERATOR)
    finally:
        await pool.close()


def _print_seed(counts: tuple[int, int, int, int] | None) -> None:
    if counts is None:
        _step("demo data: already present, left as it is (`orflow seed` resets it)")
    else:
        rooms, doctors, equipment, slots = counts
        _step(f"demo data loaded: {rooms} rooms, {doctors} surgeons, {equipment} equipment types, {slots} slots")


def _secret_file(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "auth-secret"


def _dev_secret(settings: Settings) -> str:
    """The HS256 secret `orflow up` signs with when none is configured: made once, kept in the data folder."""
    path = _secret_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(new_secret())
    return path.read_text().strip()


def _parse_ttl(text: str) -> timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 30m, 12h or 7d") from None
    if not 0 < seconds <= 366 * 86400:
        raise argparse.ArgumentTypeError("a token lives between 1 second and 366 days")
    return timedelta(seconds=seconds)


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    """Prints a signed token (stdout only, so `TOKEN=$(orflow token …)` works)."""
    secret = settings.auth_secret or (
        _secret_file(settings).read_text().strip() if _secret_file(settings).exists() else None
    )
    if secret is None:
        print("orflow: no ORFLOW_AUTH_SECRET is set and `orflow up` has not made one yet", file=sys.stderr)
        return 2
    role = Role(args.role)
    subject = args.patient if role is Role.PATIENT else (args.subject or f"{role}-cli")
    if role is Role.PATIENT and not subject:
        print("orflow: a patient token needs --patient ID", file=sys.stderr)
        return 2
    token = issue_token(
        secret, subject=subject, role=role, ttl=args.ttl, issuer=settings.auth_issuer, audience=settings.auth_audience
    )
    print(token)
    return 0


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
    if not settings.has_auth:
        print(
            "orflow: the server needs ORFLOW_AUTH_SECRET (32+ characters) or ORFLOW_AUTH_PUBLIC_KEY_FILE /"
            " ORFLOW_AUTH_JWKS_FILE to verify tokens (`orflow up` makes a secret for you)",
            file=sys.stderr,
        )
        return 2
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


def cmd_proxy(settings: Settings) -> int:
    """The gRPC-web proxy (and portal) in front of ORFLOW_GRPC_ADDR; lives in the orflow_web package."""
    from orflow_web.app import run_proxy  # the proxy's own package; only this command needs aiohttp

    if settings.web_dev_sign_in and not settings.auth_secret:
        print("orflow: ORFLOW_WEB_DEV_SIGN_IN needs ORFLOW_AUTH_SECRET to sign the tokens it issues", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_proxy(settings))
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
            if not settings.has_auth:
                env["ORFLOW_AUTH_SECRET"] = _dev_secret(settings)
            if not settings.database_url and not os.environ.get("ORFLOW_ALLOW_RESET"):
                env["ORFLOW_ALLOW_RESET"] = "1"  # the embedded database is a demo: resetting it is the point
            is_demo = not settings.database_url and bool(env.get("ORFLOW_AUTH_SECRET"))
            if is_demo and not os.environ.get("ORFLOW_WEB_DEV_SIGN_IN"):
                env["ORFLOW_WEB_DEV_SIGN_IN"] = "1"  # demo patients sign in by id; never on for a real database
            _step("[4/4] starting the gRPC server, the expiry worker and the gRPC-web proxy")
            children = [
                subprocess.Popen([sys.executable, "-m", "orflow_server", command], env=env)
                for command in ("server", "worker", "proxy")
            ]
            if wait_for_port(settings.grpc_addr, children):
                _print_ready(settings, time.monotonic() - started, secret=env.get("ORFLOW_AUTH_SECRET"))
            return _supervise(children)
        finally:
            if redis is not None:
                embedded.stop_redis(redis)


def _print_ready(settings: Settings, seconds: float, *, secret: str | None) -> None:
    addr = settings.grpc_addr
    admin = (
        issue_token(
            secret,
            subject="admin-console",
            role=Role.ADMIN,
            ttl=timedelta(hours=12),
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
        )
        if secret
        else "(tokens come from your identity provider)"
    )
    print(
        f"\nOR Flow is up in {seconds:.1f} s.\n"
        f"  gRPC:        {addr}  (services: {', '.join(SERVICE_NAMES)})\n"
        f"  portal:      http://{settings.web_addr}/  (gRPC-web proxy, health at /healthz)\n"
        f"  try:         grpcurl -plaintext {addr} list\n"
        f"  admin token: {admin}\n"
        "               (valid 12 h; more with `.venv/bin/orflow token --role admin|service|patient`)\n"
        f"  data:        {settings.data_dir.resolve()}\n"
        "  stop:        Ctrl-C\n",
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


COMMANDS = {
    "up": cmd_up,
    "server": cmd_server,
    "worker": cmd_worker,
    "proxy": cmd_proxy,
    "migrate": cmd_migrate,
    "seed": cmd_seed,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orflow", description="OR Flow surgical booking backend")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start everything (embedded PostgreSQL/Redis unless URLs are set)")
    sub.add_parser("server", help="run the gRPC server")
    sub.add_parser("worker", help="run the SAQ worker that expires holds (needs ORFLOW_REDIS_URL)")
    sub.add_parser("proxy", help="run the gRPC-web proxy that also serves the portal (ORFLOW_WEB_ADDR)")
    sub.add_parser("migrate", help="apply database migrations (idempotent)")
    sub.add_parser("seed", help="reset the database to the demo data set")
    token = sub.add_parser("token", help="print a signed bearer token (with ORFLOW_AUTH_SECRET or `up`'s secret)")
    token.add_argument("--role", required=True, choices=[r.value for r in TOKEN_ROLES])
    token.add_argument("--patient", default="", help="the patient id (patient tokens)")
    token.add_argument("--subject", default="", help="who the token names (service/admin tokens)")
    token.add_argument("--ttl", type=_parse_ttl, default=timedelta(hours=1), help="lifetime, e.g. 30m, 12h, 7d")
    bench_command.add_arguments(sub.add_parser("bench", help="load test OR Flow against the database's own ceiling"))
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        print(f"orflow: bad setting: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "token":
            return cmd_token(settings, args)
        if args.command == "bench":
            return bench_command.cmd_bench(settings, args)
        return COMMANDS[args.command](settings)
    except embedded.EmbeddedServiceError as exc:
        print(f"orflow: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
