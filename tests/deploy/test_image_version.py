"""`make images` bakes a comparable version into the images (VERSION_NAME).

The frontend refuses to start when a dependency's version is below what it needs
(servicekit.upstreams), so an image built from an untagged checkout must carry the packages'
own version, not a commit hash (which `git describe --always` gave, and which no version
comparison accepts): a new user's `make images` then `make compose-up` had a frontend that
never started.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _version_make_would_bake(checkout: Path) -> str:
    """The VERSION `make images` passes to the build, with git looking at `checkout`."""
    plan = subprocess.run(
        ["make", "-s", "-n", "images", "IMAGE_SERVICES=users"],
        cwd=ROOT,
        env={**os.environ, "GIT_DIR": str(checkout / ".git"), "GIT_WORK_TREE": str(checkout)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.search(r"--build-arg VERSION=(\S+)", plan)
    assert found, plan
    return found.group(1)


def _checkout(folder: Path, tag: str | None) -> Path:
    """A git checkout with one (empty) commit, tagged or not."""
    identity = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid"}
    identity |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    commands = [["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "one"]]
    if tag:
        commands.append(["tag", tag])
    for command in commands:
        subprocess.run(
            ["git", "-C", str(folder), *command],
            check=True,
            capture_output=True,
            env={**os.environ, **identity},
        )
    return folder


def test_an_untagged_checkout_bakes_the_packages_version(tmp_path: Path) -> None:
    pyproject = (ROOT / "services/users/pyproject.toml").read_text()
    package = re.search(r'^version = "(.+)"$', pyproject, re.MULTILINE)
    assert package
    assert re.fullmatch(r"\d+\.\d+\.\d+", package.group(1))
    assert _version_make_would_bake(_checkout(tmp_path, tag=None)) == package.group(1)


def test_a_tag_gives_the_version(tmp_path: Path) -> None:
    assert _version_make_would_bake(_checkout(tmp_path, tag="2.3.4")) == "2.3.4"
