"""A private PgBouncer (Debian's 1.18) in transaction mode in front of a PostgreSQL, for tests and `orflow bench`."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .ports import free_port, wait_for_port

BINARY = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)


@contextmanager
def pgbouncer(database_url: str, *, pool_size: int = 20) -> Iterator[str]:
    """Starts PgBouncer (transaction pooling) in front of `database_url`'s server; yields the URL through it."""
    assert BINARY is not None, "pgbouncer is not installed (apt-get install -y pgbouncer)"
    parts = urlsplit(database_url)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="orflow-pgbouncer-") as folder:
        home = Path(folder)
        user = parts.username or "postgres"
        (home / "userlist.txt").write_text(f'"{user}" ""\n')
        # Clients need no password here (trust); PgBouncer itself logs in to PostgreSQL with the URL's, if it
        # has one (the embedded PostgreSQL of a fresh machine has: without it every server login failed).
        login = f" user={user} password={parts.password}" if parts.password else ""
        (home / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={parts.hostname} port={parts.port or 5432}{login}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {home}/userlist.txt\n"
            f"pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 500\n"
            "ignore_startup_parameters = extra_float_digits,application_name\n"
        )
        os.chmod(home, 0o755)  # PgBouncer refuses to run as root: it drops to the postgres user (-u) and reads these
        command = [BINARY, *(["-u", "postgres"] if os.geteuid() == 0 else []), str(home / "pgbouncer.ini")]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            if not wait_for_port(f"127.0.0.1:{port}", [process], timeout=15):
                raise RuntimeError(
                    f"pgbouncer did not start: {process.stderr.read().decode() if process.stderr else ''}"
                )
            yield urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{port}"))
        finally:
            process.terminate()
            process.wait(timeout=10)
            if process.stderr is not None:
                process.stderr.close()
