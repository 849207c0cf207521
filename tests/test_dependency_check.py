"""The frontend's start-up check of the versions of the services it calls (the book's
`check_dependencies_services`): a too-old or absent dependency stops it with a clear message."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import ServiceProcess, free_port, python_module_argv

FAKE_SERVER = Path(__file__).resolve().parent / "fake_version_server.py"


@pytest.fixture
def old_users_service(tmp_path: Path) -> Iterator[str]:
    """A real process on a real port that says it is users 0.0.9."""
    port = free_port()
    fake = ServiceProcess(
        name="old-users",
        argv=[sys.executable, str(FAKE_SERVER), str(port), "0.0.9"],
        env={},
        port=port,
        log_path=tmp_path / "old-users.log",
    )
    fake.start()
    yield fake.url
    fake.stop()


def run_frontend(
    tmp_path: Path, dependencies: str, wait: str = "5"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        python_module_argv("frontend_service", "serve"),
        env={
            "PATH": "/usr/bin:/bin",
            "PORT": str(free_port()),
            # Its own, not the default 9002: that one is a developer's `make run` frontend's.
            "INTERNAL_PORT": str(free_port()),
            "SECRET_KEY": "k" * 40,
            "DEPENDENCIES": dependencies,
            "DEPENDENCY_WAIT_SECONDS": wait,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )


def test_a_too_old_dependency_stops_the_frontend_with_a_clear_message(tmp_path, old_users_service):
    result = run_frontend(tmp_path, f"users={old_users_service}>=0.1")
    assert result.returncode != 0
    assert (
        f"refusing to start: dependency users at {old_users_service} runs version 0.0.9, "
        "but at least 0.1 is required"
    ) in result.stdout


def test_a_dependency_that_never_answers_stops_the_frontend_after_the_wait(tmp_path):
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = run_frontend(tmp_path, f"thoughts={nowhere}>=0.1", wait="1")
    assert result.returncode != 0
    assert f"dependency thoughts at {nowhere} did not answer /admin/version/ within 1s" in (
        result.stdout
    )
