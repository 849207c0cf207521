"""What version is running: from the environment (baked into images), else `git describe`."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


@dataclass(frozen=True)
class VersionInfo:
    version: str
    commit: str


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["git", *args],  # noqa: S607 - git from PATH is what a checkout has
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


@lru_cache(maxsize=1)
def _from_git() -> tuple[str | None, str | None]:
    # Only a tag gives a comparable version; an untagged checkout falls back to the package's.
    return _git("describe", "--tags", "--dirty"), _git("rev-parse", "HEAD")


def resolve_version(
    version_name: str | None, version_sha: str | None, package_version: str
) -> VersionInfo:
    """VERSION_NAME / VERSION_SHA (baked into images) win; a checkout asks git."""
    if version_name and version_sha:
        return VersionInfo(version_name, version_sha)
    described, commit = _from_git()
    return VersionInfo(
        version=version_name or described or package_version,
        commit=version_sha or commit or "unknown",
    )
