"""Pytest plugin (registered in the root conftest.py): the whole local system, once per session.

`local_system` starts thoughts, users and frontend as real processes (`python -m <service>
serve`, see devtools.testing) the first time a test asks for it, seeds the demo users, and stops
them at the end of the session. The frontend's tests and the cross-service tests share it, so a
test run (or each xdist worker) pays for one start-up. Tests that need a user of their own create
one; a test that stops a service starts it again before it ends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.seed import seed_demo
from devtools.testing import LocalSystem


@pytest.fixture(scope="session")
def local_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    system = LocalSystem(tmp_path_factory.mktemp("local-system"))
    with system:
        seed_demo(system.url("users"), system.url("thoughts"), say=lambda _line: None)
        yield system
