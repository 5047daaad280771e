"""What scripts/generate-protos makes from the protos is what is committed (the stubs in clients/python/src/orflow and
server/orflow_server/domain/reasons.py), and the protos lint clean and break no released client."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = REPO_ROOT / ".venv" / "bin"
COMMITTED = REPO_ROOT / "clients" / "python" / "src" / "orflow"
DOMAIN_REASONS = REPO_ROOT / "server" / "orflow_server" / "domain" / "reasons.py"
BUF = REPO_ROOT / "node_modules" / ".bin" / "buf"


def relative_files(root: Path) -> set[Path]:
    return {path.relative_to(root) for path in root.rglob("*") if path.is_file() and "__pycache__" not in path.parts}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated").resolve()
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [str(REPO_ROOT / "scripts" / "generate-protos"), str(out), str(out / "domain")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return out / "orflow"


def test_generation_produced_stubs(generated: Path) -> None:
    names = {p.name for p in (generated / "v1").iterdir()}
    protos = sorted(p.stem for p in (REPO_ROOT / "protos" / "orflow" / "v1").glob("*.proto"))
    assert protos
    for stem in protos:
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi"):
            assert f"{stem}{suffix}" in names


def test_committed_stubs_match_the_protos(generated: Path) -> None:
    made, committed = relative_files(generated), relative_files(COMMITTED)
    assert sorted(map(str, made - committed)) == [], "generated but not committed: run scripts/generate-protos"
    assert sorted(map(str, committed - made)) == [], "committed but no longer generated: delete them"
    stale = sorted(str(rel) for rel in made if (generated / rel).read_bytes() != (COMMITTED / rel).read_bytes())
    assert stale == [], f"stale stubs (run scripts/generate-protos): {stale}"


def test_committed_domain_reasons_match_the_proto(generated: Path) -> None:
    made = (generated.parent / "domain" / "reasons.py").read_text()
    assert made.startswith('"""') and "DO NOT EDIT" in made
    assert DOMAIN_REASONS.read_text() == made, "domain/reasons.py is stale: run scripts/generate-protos"


def test_buf_lint() -> None:
    if not BUF.exists():
        pytest.skip("node_modules/.bin/buf is missing: run `npm ci` in the repo root to lint the protos")
    if shutil.which("npx") is None:
        pytest.skip("npx is not on PATH (Node.js is needed for the buf package)")
    result = subprocess.run([str(BUF), "lint"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_breaking_against_the_newest_release() -> None:
    """The API stays wire- and source-compatible with what clients were released against."""
    if not BUF.exists():
        pytest.skip("node_modules/.bin/buf is missing: run `npm ci` in the repo root")
    releases = sorted(
        (REPO_ROOT / "api-releases").glob("*.binpb"), key=lambda p: [int(x) for x in p.stem.split("-")[-1].split(".")]
    )
    assert releases, "api-releases/ holds no released image"
    result = subprocess.run(
        [str(BUF), "breaking", "--against", str(releases[-1])],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
