"""`orflow up`: everything in the foreground. Embedded PostgreSQL and Redis unless URLs are set,
migrations and demo data, then `orflow server`, `orflow worker` and `orflow proxy` as child
processes; Ctrl-C stops the children, then the embedded services."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from orflow_server.app import SERVICE_NAMES
from orflow_server.cli import migrate, print_seed, secret_file, seed, step
from orflow_server.domain.access import Role
from orflow_server.security.tokens import issue_token, new_secret
from orflow_server.settings import Settings
from orflow_web.settings import ProxySettings

from . import embedded
from .testkit.processes import ChildStack

CHILDREN = ("server", "worker", "proxy")


class UpCommand:
    help = "start everything (embedded PostgreSQL/Redis unless URLs are set)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace, environ: Mapping[str, str]) -> int:
        settings = Settings.from_env(environ)
        web = ProxySettings.from_env(environ)
        try:
            return up(settings, environ, web_addr=web.web_addr)
        except embedded.EmbeddedServiceError as exc:
            print(f"orflow: {exc}", file=sys.stderr)
            return 1


COMMAND = UpCommand()


def dev_secret(settings: Settings) -> str:
    """The HS256 secret `orflow up` signs with when none is configured: made once, kept in the data folder."""
    path = secret_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(new_secret())
    return path.read_text().strip()


def up(settings: Settings, environ: Mapping[str, str], *, web_addr: str) -> int:
    started = time.monotonic()
    data_dir = settings.data_dir.resolve()
    step("[1/4] PostgreSQL: " + ("using ORFLOW_DATABASE_URL" if settings.database_url else "embedded"))
    pg = None if settings.database_url else embedded.start_postgres(data_dir / "postgres")
    redis = None
    try:
        url = settings.database_url or (pg.url if pg else "")
        step("[2/4] Redis: " + ("using ORFLOW_REDIS_URL" if settings.redis_url else "embedded"))
        if not settings.redis_url:
            redis = embedded.start_redis(data_dir / "redis")
        step("[3/4] migrations and demo data")
        asyncio.run(migrate(url))
        print_seed(asyncio.run(seed(settings, url, only_if_empty=True)))
        env = {
            **environ,
            "ORFLOW_DATABASE_URL": url,
            "ORFLOW_REDIS_URL": settings.redis_url or (redis.url if redis else ""),
        }
        if not settings.has_auth:
            env["ORFLOW_AUTH_SECRET"] = dev_secret(settings)
        if not settings.database_url and not environ.get("ORFLOW_ALLOW_RESET"):
            env["ORFLOW_ALLOW_RESET"] = "1"  # the embedded database is a demo: resetting it is the point
        is_demo = not settings.database_url and bool(env.get("ORFLOW_AUTH_SECRET"))
        if is_demo and not environ.get("ORFLOW_WEB_DEV_SIGN_IN"):
            env["ORFLOW_WEB_DEV_SIGN_IN"] = "1"  # demo patients sign in by id; never on for a real database
        step("[4/4] starting the gRPC server, the expiry worker and the gRPC-web proxy")
        return _supervise(ChildStack.start(CHILDREN, env), settings, web_addr, started, env.get("ORFLOW_AUTH_SECRET"))
    finally:
        if redis is not None:
            embedded.stop_redis(redis)
        if pg is not None:
            embedded.stop_postgres(pg)


def _supervise(stack: ChildStack, settings: Settings, web_addr: str, started: float, secret: str | None) -> int:
    """Waits until a child exits or SIGINT/SIGTERM comes, then stops every child."""
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        # The children have their own process groups: a Ctrl-C reaches only us, so they stop once, in order.
        deadline = time.monotonic() + 60
        while not stopping and stack.is_running and time.monotonic() < deadline:
            if stack.wait_for(settings.grpc_addr, timeout=0.5):
                _print_ready(settings, web_addr, time.monotonic() - started, secret=secret)
                break
        while not stopping and stack.is_running:
            time.sleep(0.2)
    finally:
        codes = stack.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    failed = [code for code in codes if code not in (0, -signal.SIGTERM, -signal.SIGINT)]
    step("stopped" + (f"; a child exited with {failed[0]}" if failed else " cleanly"))
    return 1 if failed and not stopping else 0


def _beside_python(program: str) -> str:
    """A command line for `program` that works when pasted: bare if on PATH, else its path in this venv."""
    if shutil.which(program):
        return program
    path = Path(sys.executable).parent / program
    if not path.exists():
        return program
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _print_ready(settings: Settings, web_addr: str, seconds: float, *, secret: str | None) -> None:
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
    grpcurl = _beside_python("grpcurl")
    orflow = _beside_python("orflow")
    print(
        f"\nOR Flow is up in {seconds:.1f} s.\n"
        f"  gRPC:        {addr}  (services: {', '.join(SERVICE_NAMES)})\n"
        f"  portal:      http://{web_addr}/  (gRPC-web proxy, health at /healthz)\n"
        f"  try:         {grpcurl} -plaintext {addr} list\n"
        f"  admin token: {admin}\n"
        f"               (valid 12 h; more with `{orflow} token --role admin|service|patient`)\n"
        f"  data:        {settings.data_dir.resolve()}\n"
        "  stop:        Ctrl-C\n",
        file=sys.stderr,
        flush=True,
    )
