"""What a service's test suite uses of the local system: the other services as real processes.

The local system itself is devtools' (devtools.testing.LocalSystem, the `local_system` fixture of
devtools.pytest_plugin): it starts every service with the same commands and settings as `make
run`, so it needs all of them installed. A service's tests name only this protocol, so that no
test suite imports devtools or another service's code (tests/test_package_dependencies.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class RunningSystem(Protocol):
    @property
    def keys_dir(self) -> Path:
        """The users service's signing keys (its JWT_KEYS_DIR)."""
        ...

    def url(self, name: str) -> str:
        """The base URL of service `name` (users, thoughts, frontend, tasks)."""
        ...

    def create_user(self, username: str, password: str) -> None:
        """Creates an account through the users service's admin API (an existing one is kept)."""
        ...
