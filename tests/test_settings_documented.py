"""Every ORFLOW_* variable the server or the proxy reads is in the README's settings tables."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_FILES = [ROOT / "server/orflow_server/settings.py", ROOT / "web-proxy/orflow_web/settings.py"]
# The tables name related variables together: `ORFLOW_DB_POOL_MIN` / `_MAX` stands for ORFLOW_DB_POOL_MAX, and
# `ORFLOW_GRPC_MAX_CONNECTION_AGE_SECONDS` / `_GRACE_SECONDS` for ORFLOW_GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS.
_SHORTHAND = re.compile(r"`(ORFLOW_[A-Z0-9_]+)_[A-Z0-9]+`((?: / `_[A-Z0-9_]+`)+)")


def documented_names(readme: str) -> set[str]:
    names = set(re.findall(r"ORFLOW_[A-Z0-9_]+", readme))
    for head, suffixes in _SHORTHAND.findall(readme):
        for suffix in re.findall(r"`(_[A-Z0-9_]+)`", suffixes):
            names.add(head + suffix)  # the first name without its last word, then the suffix
    return names


def test_the_shorthand_is_read_as_the_tables_mean_it() -> None:
    table = "| `ORFLOW_DB_POOL_MIN` / `_MAX` | `ORFLOW_GRPC_MAX_CONNECTION_AGE_SECONDS` / `_GRACE_SECONDS` |"
    assert {"ORFLOW_DB_POOL_MAX", "ORFLOW_GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS"} <= documented_names(table)


def test_every_setting_is_documented() -> None:
    read = {name for path in SETTINGS_FILES for name in re.findall(r'"(ORFLOW_[A-Z0-9_]+)"', path.read_text())}
    assert len(read) > 40
    missing = sorted(read - documented_names((ROOT / "README.md").read_text()))
    assert not missing, f"settings the README does not name: {missing}"
