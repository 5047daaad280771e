"""The blocking client is written by a tool from the asyncio one; the committed file must be what it writes."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import REPO_ROOT

TOOL = REPO_ROOT / "clients" / "python" / "tools" / "async_to_sync.py"
COMMITTED = REPO_ROOT / "clients" / "python" / "src" / "orflow_client" / "blocking.py"


def test_blocking_py_is_what_the_generator_writes_from_aio_py(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(TOOL), "--out", str(tmp_path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr

    regenerated = (tmp_path / "blocking.py").read_text(encoding="utf-8")
    assert regenerated.startswith("# Generated from aio.py by clients/python/tools/async_to_sync.py. DO NOT EDIT")
    assert COMMITTED.read_text(encoding="utf-8") == regenerated, (
        "blocking.py differs from aio.py's rewrite: change aio.py, not blocking.py, then run "
        ".venv/bin/python clients/python/tools/async_to_sync.py"
    )


def test_the_generator_refuses_a_replacement_that_matches_nothing() -> None:
    spec = importlib.util.spec_from_file_location("async_to_sync", TOOL)
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)

    with pytest.raises(SystemExit, match=r"matches nothing in aio\.py"):
        tool.convert("x = 1\n")
