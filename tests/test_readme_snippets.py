"""Every fenced block of every README.md runs here against a real server, or its README says why not.

The rules, by the fence's language tag:
- `python`/`py`: written to a file and run with this interpreter;
- `sh`/`bash`/`shell`: run by `bash -euo pipefail` from the repository root (so `.venv/bin/…` resolves);
- `text`: output or a diagram, nothing to run;
- anything else, or a runnable block that cannot run in a test, needs the line
  `<!-- snippet: not run, because <reason> -->` right before its fence. An unmarked block of any
  other kind (an untagged fence included) fails `test_every_block_is_run_or_marked`.

Each block runs on its own, after a reset to the demo data (what `scripts/up` serves), with
ORFLOW_ADDRESS naming the session's test server, ORFLOW_TOKEN a patient token for MRN-1001 (the demo
patient the READMEs use), ORFLOW_ADMIN_TOKEN an admin token, ORFLOW_AUTH_SECRET the test secret (so
`orflow token` signs what the server accepts) and ORFLOW_WEB_URL a proxy in front of that server (the FHIR
section's curl examples). Snippets read those variables; nothing is patched.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from orflow_client import OrFlowClient
from orflow_web.app import start_proxy
from orflow_web.settings import ProxySettings

from .auth import ADMIN_TOKEN, TEST_SECRET, token_for
from .conftest import REPO_ROOT

RUNNERS = {"python": "python", "py": "python", "sh": "shell", "bash": "shell", "shell": "shell"}
NOT_CODE = {"text"}
SKIPPED_DIRS = {"node_modules", "dist", "build", "test-artifacts"}
SNIPPET_PATIENT = "MRN-1001"
TIMEOUT_SECONDS = 120

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<lang>[^`\s]*)")
_MARK = re.compile(r"^\s*<!--\s*snippet:\s*not run, because (?P<why>\S.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it starts, its language tag, its text and, if marked, why it is not run."""

    readme: Path
    line: int
    lang: str
    code: str
    not_run_because: str | None

    @property
    def where(self) -> str:
        return f"{self.readme.relative_to(REPO_ROOT)}:{self.line}"

    @property
    def runner(self) -> str | None:
        return None if self.not_run_because is not None else RUNNERS.get(self.lang.lower())


def readmes(root: Path = REPO_ROOT) -> Iterator[Path]:
    """Every README.md of the repository, outside dependencies, build output and hidden folders."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS)
        if "README.md" in files:
            yield Path(folder) / "README.md"


def blocks_of(readme: Path) -> Iterator[Block]:
    lines = readme.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, start = opening["fence"], index
        body: list[str] = []
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(fence):
            body.append(lines[index])
            index += 1
        previous = next((line for line in reversed(lines[:start]) if line.strip()), "")
        mark = _MARK.match(previous)
        yield Block(readme, start + 1, opening["lang"], "\n".join(body) + "\n", mark["why"] if mark else None)
        index += 1


ALL_BLOCKS = [block for readme in readmes() for block in blocks_of(readme)]
RUNNABLE = [block for block in ALL_BLOCKS if block.runner is not None]


def test_every_block_is_run_or_marked() -> None:
    unaccounted = [
        f"{block.where} (```{block.lang or '<no language>'})"
        for block in ALL_BLOCKS
        if block.runner is None and block.not_run_because is None and block.lang.lower() not in NOT_CODE
    ]
    assert not unaccounted, (
        "these README blocks are neither run nor marked; tag them python/sh/text, or put "
        "`<!-- snippet: not run, because … -->` right before the fence: " + ", ".join(unaccounted)
    )


def test_the_readmes_are_found_and_their_snippets_collected() -> None:
    found = {path.relative_to(REPO_ROOT).as_posix() for path in readmes()}
    assert {"README.md", "clients/python/README.md"} <= found
    languages = {RUNNERS[block.lang] for block in RUNNABLE}
    assert languages == {"python", "shell"}, "the main READMEs have both Python and shell snippets to run"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def web_url(target: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The proxy (gRPC-web, portal, /fhir/r4) in front of the session's server, as `orflow up` runs it."""
    portal = tmp_path_factory.mktemp("no-portal")
    settings = ProxySettings(grpc_addr=target, web_addr="127.0.0.1:0", web_portal_dir=portal, auth_secret=TEST_SECRET)
    async with grpc.aio.insecure_channel(target) as channel:
        runner = await start_proxy(settings, channel=channel)
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
        await runner.cleanup()


def _environment(target: str, data_dir: Path, web_url: str) -> dict[str, str]:
    """The caller's environment without its ORFLOW_ settings, plus what the snippets read."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORFLOW_")}
    env.update(
        ORFLOW_ADDRESS=target,
        ORFLOW_TOKEN=token_for("patient", SNIPPET_PATIENT),
        ORFLOW_ADMIN_TOKEN=ADMIN_TOKEN,
        ORFLOW_AUTH_SECRET=TEST_SECRET,
        ORFLOW_DATA_DIR=str(data_dir),  # never the checkout's own `.orflow-data` and its secret
        ORFLOW_WEB_URL=web_url,
    )
    return env


def _command(block: Block, tmp_path: Path) -> list[str]:
    if block.runner == "python":
        script = tmp_path / "snippet.py"
        script.write_text(block.code, encoding="utf-8")
        return [sys.executable, str(script)]
    return ["bash", "-euo", "pipefail", "-c", block.code]


@pytest.mark.parametrize("block", RUNNABLE, ids=[block.where for block in RUNNABLE])
async def test_the_snippet_runs(block: Block, target: str, web_url: str, tmp_path: Path) -> None:
    async with OrFlowClient(target, token=ADMIN_TOKEN) as client:
        await client.seed_database()  # what `scripts/up` serves; also empties what earlier tests left
    # The server runs on this event loop: the snippet must run as a subprocess awaited here, never blocking it.
    proc = await asyncio.create_subprocess_exec(
        *_command(block, tmp_path),
        cwd=REPO_ROOT,
        env=_environment(target, tmp_path / "data", web_url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=TIMEOUT_SECONDS)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"{block.where} ran longer than {TIMEOUT_SECONDS} s:\n{block.code}")

    assert proc.returncode == 0, f"{block.where} failed:\n{block.code}\n--- it printed ---\n{output.decode()}"
