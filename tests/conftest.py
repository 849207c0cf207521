"""Cross-service tests: the real service processes, started as `make run` starts them.

`system` is the session's local system (devtools.pytest_plugin): thoughts, users, frontend and
tasks, each `python -m <service> serve` on a free port with its own temporary SQLite database,
seeded with the demo users. The frontend's own tests share it.
"""

from __future__ import annotations

import pytest

from devtools.testing import LocalSystem


@pytest.fixture(scope="session")
def system(local_system: LocalSystem) -> LocalSystem:
    return local_system
