"""Cross-service tests: the real service processes, started as `make run` starts them.

`system` is the session's local system (devtools.pytest_plugin): thoughts, users, frontend and
tasks, each `python -m <service> serve` on a free port with its own temporary SQLite database,
seeded with the demo users. The frontend's own tests share it.

`observed_system` is the observability tests' own: all four services with an admin token, and
`realistic_session` one session of every kind of call against it (the secrets test greps its
logs for what it sent; the Prometheus test reads its metrics).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from devtools.observed import ALL_SERVICES, ObservedSystem, SessionSecrets, run_realistic_session
from devtools.testing import LocalSystem
from testkit import DatabaseFactory, postgres_available


@pytest.fixture(scope="session")
def system(local_system: LocalSystem) -> LocalSystem:
    return local_system


@pytest.fixture(scope="session")
def observed_system(
    tmp_path_factory: pytest.TempPathFactory, database_factory: DatabaseFactory
) -> Iterator[ObservedSystem]:
    token = secrets.token_urlsafe(24)
    overrides = {name: {"ADMIN_TOKEN": token} for name in ALL_SERVICES}
    # thoughts on PostgreSQL when it answers, as in production: its driver pool is what
    # db_pool_waiting reports (SQLite has no pool to wait for).
    if postgres_available() is None:
        overrides["thoughts"]["DATABASE_URL"] = database_factory.empty("postgresql")
    local = LocalSystem(
        tmp_path_factory.mktemp("observed"), services=ALL_SERVICES, overrides=overrides
    )
    with local:
        yield ObservedSystem(local, token)


@pytest.fixture(scope="session")
def realistic_session(observed_system: ObservedSystem) -> SessionSecrets:
    """One realistic session (devtools.observed), run once against the observed system."""
    return run_realistic_session(observed_system)
