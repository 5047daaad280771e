"""Child processes that `orflow up` and `orflow bench` start and wait for."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Sequence


def wait_for_port(addr: str, children: Sequence[subprocess.Popen[bytes]], timeout: float = 30.0) -> bool:
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
