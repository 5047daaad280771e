"""deploy/Containerfile, linted (no container runtime here): multi-stage, pinned, non-root, no remote ADD."""

from __future__ import annotations

import re

from tests.deploy.manifests import DEPLOY


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Containerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


def test_base_images_are_pinned() -> None:
    for stage in _stages():
        image = stage[0][1].split()[0]
        name, _, tag = image.partition("@")[0].rpartition(":")
        assert name and (re.fullmatch(r"\d+(\.\d+)+(-[\w.-]+)?", tag) or "@sha256:" in image), image


def test_multi_stage_with_the_portal_built_in() -> None:
    stages = _stages()
    assert len(stages) >= 2
    assert any("portal:build" in args for stage in stages for instruction, args in stage if instruction == "RUN")
    final = stages[-1]
    assert any(i == "COPY" and args.startswith("--from=") for i, args in final)


def test_runs_as_a_non_root_user() -> None:
    users = [args.split(":")[0] for instruction, args in _stages()[-1] if instruction == "USER"]
    assert users and users[-1] not in ("0", "root")


def test_nothing_is_added_from_a_url() -> None:
    for instruction, args in _instructions():
        assert instruction != "ADD" or not re.search(r"\w+://", args), args
        assert not (instruction == "RUN" and re.search(r"\b(curl|wget)\b", args)), args
