"""OR Flow processes (`orflow server`, `worker`, `proxy`) started together and stopped together.

`orflow up` and the bench run their stacks through this one class, so start-up,
shutdown and "a child died" mean the same in both.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .ports import wait_for_port

STOP_TIMEOUT_S = 15.0


def orflow_command(*args: str) -> list[str]:
    """`orflow ARGS` run by this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-m", "orflow_server", *args]


@dataclass(frozen=True)
class ChildStack:
    children: tuple[subprocess.Popen[bytes], ...]

    @classmethod
    def start(cls, commands: Sequence[str], env: Mapping[str, str], *, quiet: bool = False) -> ChildStack:
        """One child per `orflow` subcommand named, in that order.

        Each runs in its own process group: a terminal's Ctrl-C reaches only the parent, which
        then stops every child once, in order (no child is interrupted half-way through start-up).
        """
        children = tuple(
            subprocess.Popen(
                orflow_command(command),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL if quiet else None,
                process_group=0,
            )
            for command in commands
        )
        return cls(children)

    def wait_for(self, addr: str, timeout: float = 60.0) -> bool:
        """True once `addr` accepts connections; False if a child died first or time ran out."""
        return wait_for_port(addr, self.children, timeout=timeout)

    @property
    def is_running(self) -> bool:
        """Every child is still running."""
        return all(child.poll() is None for child in self.children)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> list[int]:
        """SIGTERM to each running child (each drains and exits), SIGKILL to any still there after `timeout`.

        Returns the exit codes, in start order.
        """
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children:
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        return [child.returncode for child in self.children]
