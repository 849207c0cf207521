"""What the deployment tests share: `kustomize`, kubectl's Kustomize rendering a folder, loaded
(kubectl missing skips those tests locally and fails them under CI=true), and
`build_service_images`, the images the compose and kubelet tests run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit import need

KUBECTL = shutil.which("kubectl", path="/usr/bin:" + os.environ.get("PATH", ""))

Kustomize = Callable[[Path], list[dict[str, Any]]]


@cache
def _render(path: Path) -> tuple[dict[str, Any], ...]:
    assert KUBECTL is not None
    out = subprocess.run(
        [KUBECTL, "kustomize", str(path)], check=True, capture_output=True, text=True
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


@pytest.fixture(scope="session")
def kustomize() -> Kustomize:
    if KUBECTL is None:
        need("kubectl is not installed (/usr/bin/kubectl)")

    def render(path: Path) -> list[dict[str, Any]]:
        # Copies, so that a test changing what it got cannot change what the next one gets.
        return [yaml.safe_load(yaml.safe_dump(obj)) for obj in _render(path.resolve())]

    return render


ROOT = Path(__file__).resolve().parents[2]
# The version the images built for the tests carry (beside this tree's commit).
TEST_VERSION = "9.9.9-test"
BuildImages = Callable[[bool], dict[str, str]]


@pytest.fixture(scope="session")
def build_service_images() -> BuildImages:
    """`build(official)`: every service image from this tree with `make images`, on the official
    base images or (False) the Debian stand-ins; returns what each service's /admin/version/
    then answers ({"version": ..., "commit": ...}). Always built from this tree (from Docker's
    cache when nothing changed) with the same version and commit for every test, so that an
    image of the same tag from another checkout never stands in for it."""

    def build(official: bool) -> dict[str, str]:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        result = subprocess.run(
            [
                "make",
                "images",
                f"OFFLINE_BASE={0 if official else 1}",
                f"VERSION={TEST_VERSION}",
                f"COMMIT={commit}",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1500,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return {"version": TEST_VERSION, "commit": commit}

    return build
