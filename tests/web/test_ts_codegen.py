"""The portal's TypeScript (web-proxy/portal/src/gen, committed) matches what `buf generate` makes from protos/."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

GEN = Path("web-proxy/portal/src/gen")
BIN = REPO_ROOT / "node_modules" / ".bin"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generated_typescript_matches_the_protos(tmp_path: Path) -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: buf and protoc-gen-es come from node_modules")
    if not (BIN / "buf").exists() or not (BIN / "protoc-gen-es").exists():
        subprocess.run(["bash", "-c", ". scripts/lib.sh && ensure_node_tools"], cwd=REPO_ROOT, check=True)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run([str(BIN / "buf"), "generate", "--output", str(tmp_path)], cwd=REPO_ROOT, env=env, check=True)
    fresh = _files(tmp_path / GEN)
    assert "orflow/v1/booking_service_pb.ts" in fresh and "google/rpc/error_details_pb.ts" in fresh
    assert _files(REPO_ROOT / GEN) == fresh, "run `npx buf generate` and commit web-proxy/portal/src/gen"
