"""The chaos suite's stage: real `orflow` processes, private services to break, and the checks after each fault.

Children are started with orflow_tools.testkit.processes (one ChildStack per
process, so each can be killed on its own), on free ports, with the settings
passed as ORFLOW_* variables as `orflow up` does. After every scenario
`check` runs THE SQL invariant checks (orflow_tools.testkit.invariants) and
this suite's own: every acknowledged booking is in SQL as acknowledged, no
hold is left PENDING beyond its expiry + the sweep interval, and no call was
answered INTERNAL.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import asyncpg
from orflow_tools.testkit import invariants
from orflow_tools.testkit.ports import free_port, wait_for_port
from orflow_tools.testkit.processes import ChildStack

from tests.auth import TEST_SECRET
from tests.conftest import REPO_ROOT
from tests.factories import future, insert_doctor, insert_equipment, insert_room, insert_slot

from .load import Outcome, acknowledged, refusals

HOLD_TTL_SECONDS = 2
SWEEP_SECONDS = 1
# A hold may stay PENDING this long past its expire_time: the sweep interval, plus SAQ's whole-second cron tick.
OVERDUE_SECONDS = SWEEP_SECONDS + 1.0
SLOTS = 40


def child_env(**settings: str) -> dict[str, str]:
    """This environment without ORFLOW_*, plus the chaos defaults and `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(
        ORFLOW_AUTH_SECRET=TEST_SECRET,
        ORFLOW_HOLD_TTL_SECONDS=str(HOLD_TTL_SECONDS),
        ORFLOW_SWEEP_SECONDS=str(SWEEP_SECONDS),
        ORFLOW_METRICS_ADDR="127.0.0.1:0",
        ORFLOW_WORKER_METRICS_ADDR="127.0.0.1:0",
        ORFLOW_BOOKING_RATE_PER_MINUTE="1000000",
        ORFLOW_BOOKING_BURST="10000",
        ORFLOW_SHUTDOWN_GRACE_SECONDS="5",
    )
    env.update(settings)
    return env


@dataclass
class Child:
    """One `orflow` subcommand as a child process, restartable with the same settings."""

    command: str
    env: dict[str, str]
    ready_addr: str | None = None
    stack: ChildStack | None = None

    def start(self) -> Child:
        self.stack = ChildStack.start([self.command], self.env, quiet=not os.environ.get("ORFLOW_CHAOS_VERBOSE"))
        if self.ready_addr is not None:
            assert self.stack.wait_for(self.ready_addr), f"orflow {self.command} did not listen on {self.ready_addr}"
        return self

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self.stack is not None
        return self.stack.children[0]

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop()


def server(env: Mapping[str, str], **settings: str) -> Child:
    addr = f"127.0.0.1:{free_port()}"
    return Child("server", {**env, "ORFLOW_GRPC_ADDR": addr, **settings}, ready_addr=addr)


def worker(env: Mapping[str, str]) -> Child:
    """Ready once its metrics port listens: it then runs its start-up sweep (holds overdue meanwhile fail)."""
    addr = f"127.0.0.1:{free_port()}"
    return Child("worker", {**env, "ORFLOW_WORKER_METRICS_ADDR": addr}, ready_addr=addr)


def proxy(env: Mapping[str, str], *, upstream: str, web_addr: str) -> Child:
    return Child("proxy", {**env, "ORFLOW_GRPC_ADDR": upstream, "ORFLOW_WEB_ADDR": web_addr}, ready_addr=web_addr)


@dataclass
class Children:
    """Every child a scenario started; stopped (SIGTERM, then SIGKILL) at the end whatever happened."""

    started: list[Child] = field(default_factory=list)

    def add(self, child: Child) -> Child:
        self.started.append(child)
        return child

    def stop_all(self) -> None:
        for child in reversed(self.started):
            child.stop()


# --- a private PostgreSQL and Redis, to stop and restart ----------------------------------------------

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster in a temp dir, run as user postgres (never the machine's shared one)."""

    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def create(cls) -> PrivatePostgres:
        root = Path(tempfile.mkdtemp(prefix="orflow-chaos-pg-"))
        os.chmod(root, 0o755)
        data_dir = root / "data"
        data_dir.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(data_dir, "postgres", "postgres")  # initdb runs as postgres and must own it
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(data_dir), "-A", "trust", "-U", "postgres", "--no-sync"])
        return cls(data_dir, free_port())

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off"
        options += f" -c unix_socket_directories={self.data_dir}"
        log = self.data_dir / "postgres.log"
        _as_postgres([str(PG_BIN / "pg_ctl"), "start", "-w", "-D", str(self.data_dir), "-l", str(log), "-o", options])

    def stop(self, mode: str = "fast") -> None:
        _as_postgres([str(PG_BIN / "pg_ctl"), "stop", "-w", "-D", str(self.data_dir), "-m", mode])

    def remove(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self.stop("immediate")
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def _as_postgres(args: Sequence[str]) -> None:
    command = list(args) if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *args]
    subprocess.run(command, check=True, capture_output=True, timeout=60, cwd="/tmp")


@dataclass
class PrivateRedis:
    """`redis-server --port <free>` without persistence, restartable on the same port."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_for_port(f"127.0.0.1:{self.port}", [self.process], timeout=10), "redis-server did not start"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)


# --- the world the load books into ---------------------------------------------------------------------


async def insert_world(conn: asyncpg.Connection) -> list[int]:
    """SLOTS slots sharing 8 rooms, 8 surgeons and a one-unit item, at partly overlapping times."""
    rooms = [await insert_room(conn) for _ in range(8)]
    doctors = [await insert_doctor(conn) for _ in range(8)]
    robot = await insert_equipment(conn, name="Robot", quantity=1)
    base = future(48)
    return [
        await insert_slot(
            conn,
            room_id=rooms[i % 8],
            doctor_id=doctors[(i * 3) % 8],
            start=base + timedelta(minutes=45 * (i % 10)),
            hours=1.0,
            equipment=[(robot, 1)] if i % 5 == 0 else [],
        )
        for i in range(SLOTS)
    ]


# --- the checks ------------------------------------------------------------------------------------------


@dataclass
class Report:
    scenario: str
    outcomes: list[Outcome]
    violations: dict[str, int]
    missing: list[int]
    overdue_holds: int
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def internal(self) -> int:
        return refusals(self.outcomes)["INTERNAL"]

    def line(self) -> str:
        refused = dict(sorted(refusals(self.outcomes).items()))
        bad = sum(self.violations.values())
        extra = "".join(f", {k}: {v}" for k, v in self.notes.items())
        return (
            f"chaos {self.scenario}: calls {len(self.outcomes)}, refused {refused}, "
            f"acknowledged checked {len(acknowledged(self.outcomes))} (missing {len(self.missing)}), "
            f"invariant violations {bad}, overdue holds {self.overdue_holds}, INTERNAL {self.internal}{extra}"
        )


async def check(database_url: str, scenario: str, outcomes: list[Outcome], **notes: object) -> Report:
    """The invariants, the acknowledged bookings and the holds, read from SQL; printed and returned."""
    conn = await asyncpg.connect(database_url)
    try:
        report = Report(
            scenario,
            outcomes,
            await invariants.violations(conn),
            await _missing(conn, acknowledged(outcomes)),
            await _wait_no_overdue_holds(conn),
            dict(notes),
        )
    finally:
        await conn.close()
    print(report.line())
    return report


def assert_sound(report: Report) -> None:
    assert acknowledged(report.outcomes), "the load booked nothing: the scenario proved nothing"
    assert report.violations == invariants.NO_VIOLATIONS
    assert report.missing == []
    assert report.overdue_holds == 0
    assert report.internal == 0


async def _missing(conn: asyncpg.Connection, acked: Sequence[Outcome]) -> list[int]:
    """Acknowledged bookings not in SQL as acknowledged (same slot and patient; not CANCELLED, which nobody asked)."""
    rows = await conn.fetch(
        "SELECT id, slot_id, patient_id FROM bookings WHERE id = ANY($1::bigint[]) AND status <> 'CANCELLED'",
        [o["booking_id"] for o in acked],
    )
    found = {(r["id"], r["slot_id"], r["patient_id"]) for r in rows}
    return [o["booking_id"] for o in acked if (o["booking_id"], o["slot_id"], o["patient_id"]) not in found]


_OVERDUE = """
SELECT count(*) FROM bookings
WHERE status = 'PENDING' AND expire_time < now() - make_interval(secs => $1)
"""


async def _wait_no_overdue_holds(conn: asyncpg.Connection) -> int:
    """PENDING holds past expiry + sweep interval; polled for one more such interval (a worker restarted just now)."""
    deadline = time.monotonic() + OVERDUE_SECONDS
    while True:
        overdue = int(await conn.fetchval(_OVERDUE, OVERDUE_SECONDS))
        if overdue == 0 or time.monotonic() > deadline:
            return overdue
        await asyncio.sleep(0.2)


async def until(condition: object, limit_seconds: float = 30.0, what: str = "") -> None:
    """Polls an async condition (a zero-argument coroutine function) until it is true."""
    deadline = time.monotonic() + limit_seconds
    while not await condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        await asyncio.sleep(0.1)
