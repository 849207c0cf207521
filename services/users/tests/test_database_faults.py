"""The users service (ORM sessions only) while PostgreSQL stops answering or refuses (issue 14).

The same kit deadlines and 503s as the thoughts service's driver pool
(services/thoughts/tests/test_database_faults.py), here through SQLAlchemy's pool: a login or
an account creation during the outage answers 503 problem+json with Retry-After in bounded
time, never 500, never a hang. The fault comes from a TCP proxy the test controls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from testkit import DatabaseFactory, need, postgres_available
from testkit.faults import FaultProxy
from users_service.main import MIGRATIONS_DIR
from users_service.settings import UsersSettings

DEADLINES = {
    "db_connect_timeout_seconds": 1.0,
    "db_acquire_timeout_seconds": 1.0,
    "db_query_timeout_seconds": 1.0,
}
BOUND = 3.5  # acquire + the pre-ping's statement deadline + a reconnect, and a little


@pytest.fixture
def postgres_url(database_factory: DatabaseFactory) -> str:
    reason = postgres_available()
    if reason:
        need(reason)
    return database_factory.fresh("postgresql", MIGRATIONS_DIR)


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[FaultProxy]:
    target = urlsplit(postgres_url)
    with FaultProxy(target.hostname or "127.0.0.1", target.port or 5432) as fault_proxy:
        yield fault_proxy


@pytest.fixture
def database_url(postgres_url: str, proxy: FaultProxy) -> str:
    """PostgreSQL only, through the proxy (replaces conftest's SQLite/PostgreSQL one)."""
    return proxy.route(postgres_url)


@pytest.mark.parametrize("fault", ["black_hole", "refuse"])
async def test_logins_and_sign_ups_answer_503_in_bounded_time(
    start_app: Callable[[UsersSettings], Any],
    make_settings: Callable[..., UsersSettings],
    proxy: FaultProxy,
    fault: str,
) -> None:
    client: httpx.AsyncClient = await start_app(make_settings(db_pool_size=2, **DEADLINES))
    created = await client.post("/admin/users/", json={"username": "mary", "password": "pw-12345"})
    assert created.status_code == 201, created.text

    getattr(proxy, fault)()
    started = time.monotonic()
    answers = await asyncio.gather(
        *(
            client.post("/api/login/", data={"username": "mary", "password": "pw-12345"})
            for _ in range(4)
        ),
        client.post("/admin/users/", json={"username": "bruce", "password": "pw-12345"}),
    )
    elapsed = time.monotonic() - started
    proxy.restore()
    print(f"[users {fault}] {[answer.status_code for answer in answers]} in {elapsed:.2f}s")

    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"]
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert elapsed < BOUND
    logged_in = await client.post("/api/login/", data={"username": "mary", "password": "pw-12345"})
    assert logged_in.status_code == 200, logged_in.text
