"""The proxy's wheel carries the built portal, so `pip install` of the proxy serves it without npm."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PORTAL_DIST = REPO_ROOT / "web-proxy" / "portal" / "dist"


@pytest.mark.slow
def test_the_proxy_wheel_carries_the_portal(tmp_path: Path) -> None:
    if not (PORTAL_DIST / "index.html").is_file():
        pytest.skip("the portal is not built (scripts/test builds it when npm is present)")
    source = tmp_path / "web-proxy"  # built from a copy: no build/ or egg-info left in the checkout
    shutil.copytree(REPO_ROOT / "web-proxy", source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    out = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "-w", str(out), str(source)], check=True, capture_output=True, timeout=300)
    [wheel] = out.glob("orflow_web-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    assert "orflow_web/portal_dist/index.html" in names
    assets = {p.name for p in (PORTAL_DIST / "assets").iterdir()}
    assert assets and {f"orflow_web/portal_dist/assets/{a}" for a in assets} <= names
    assert "orflow_web/app.py" in names and "orflow_web/py.typed" in names
    assert not any(name.startswith("orflow_server/") for name in names)
    assert not any(name.endswith(".orflow-stamp") for name in names)
