"""Free ports and waiting for a listener."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Sequence


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (bound, then released: another program may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(addr: str, children: Sequence[subprocess.Popen[bytes]] = (), timeout: float = 30.0) -> bool:
    """True once `addr` (host:port) accepts connections; False if one of `children` died or time ran out."""
    host, _, port = addr.rpartition(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and all(child.poll() is None for child in children):
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False
