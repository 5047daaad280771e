"""The portal's TypeScript (web-proxy/portal/src/gen, committed) matches what `buf generate` makes from protos/."""

from __future__ import annotations

import os
import re
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


def test_the_portal_names_reasons_by_the_generated_enum() -> None:
    """errors.ts and the pages key reasons by ErrorReason (from protoc-gen-es), never by a typed string."""
    from orflow_server.domain.reasons import ErrorReason

    sources = [p for p in (REPO_ROOT / "web-proxy" / "portal" / "src").rglob("*.ts*") if GEN.name not in p.parts]
    assert any(p.name == "errors.ts" for p in sources)
    quoted = re.compile(r"""["'`]([A-Z][A-Z_]+)["'`]|^\s*([A-Z][A-Z_]+):""", re.M)
    typed = sorted(
        f"{p.name}: {name}"
        for p in sources
        for match in quoted.finditer(p.read_text())
        if (name := match.group(1) or match.group(2)) in ErrorReason.__members__
    )
    assert typed == []
    assert "[ErrorReason.SLOT_TAKEN]" in (REPO_ROOT / "web-proxy" / "portal" / "src" / "errors.ts").read_text()
