"""What the Kubernetes tests share: `kustomize`, kubectl's Kustomize rendering a folder, loaded.

kubectl missing skips these tests locally and fails them under CI=true.
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
