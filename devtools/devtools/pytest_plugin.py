"""Pytest plugin (registered in the root conftest.py): the whole local system, once per session.

`local_system` starts thoughts, users, frontend and tasks as real processes (`python -m <service>
serve`, see devtools.testing) the first time a test asks for it, seeds the demo users, and stops
them at the end of the session. The frontend's tests, the browser tests and the cross-service
tests share it, so a test run (or each xdist worker) pays for one start-up. Tests that need a
user of their own create one; a test that stops a service starts it again before it ends.

When the session ends, every line the services logged during the whole run is searched for
anything shaped like an access token (a JWT: the session cookie and the bearer tokens are
JWTs): a token in a log is a leak, whichever test made the request (issue 13).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from devtools.seed import seed_demo
from devtools.testing import LocalSystem

# A JWT's header and payload: base64url JSON objects, so both start with "eyJ" ('{"').
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}")


def logged_tokens(system: LocalSystem) -> list[str]:
    """Every log line of every service of `system` that holds a JWT, named by its service."""
    return [
        f"{name}: {line[:300]}"
        for name in system.processes
        for line in system.logs(name).splitlines()
        if JWT.search(line)
    ]


@pytest.fixture(scope="session")
def local_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    system = LocalSystem(tmp_path_factory.mktemp("local-system"))
    with system:
        seed_demo(system.url("users"), system.url("thoughts"), say=lambda _line: None)
        yield system
    leaks = logged_tokens(system)
    assert not leaks, f"{len(leaks)} log lines carry a token, e.g. {leaks[:3]}"
