"""Failed-login throttling: per username, per address, shared through Redis when configured."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import redis

from servicekit.testing import need
from users_service.throttle import MemoryFailureCounter

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_url_or_skip() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        need(f"Redis at {REDIS_URL} is not reachable ({exc})")
    return REDIS_URL


async def test_five_failures_lock_the_username_with_retry_after(
    client: httpx.AsyncClient, users: Any
) -> None:
    await users.create("bruce", "right")
    for _ in range(5):
        assert (await users.login("bruce", "wrong")).status_code == 401
    locked = await users.login("bruce", "right")  # even the right password waits
    assert locked.status_code == 429
    retry_after = int(locked.headers["retry-after"])
    assert 1 <= retry_after <= 900
    assert f"{retry_after} seconds" in locked.json()["detail"]
    # other users are not affected
    await users.create("stephen", "pw")
    assert (await users.login("stephen", "pw")).status_code == 200


async def test_successful_logins_from_one_busy_address_are_never_throttled(
    client: httpx.AsyncClient, users: Any
) -> None:
    await users.create("bruce", "right")
    for _ in range(60):  # above both the per-username and the per-address failure limits
        assert (await users.login("bruce", "right")).status_code == 200


async def test_failures_below_the_limit_are_forgiven_by_a_success(
    client: httpx.AsyncClient, users: Any
) -> None:
    await users.create("bruce", "right")
    for _ in range(3):
        await users.login("bruce", "wrong")
    assert (await users.login("bruce", "right")).status_code == 200
    for _ in range(4):
        assert (await users.login("bruce", "wrong")).status_code == 401
    assert (await users.login("bruce", "right")).status_code == 200


async def test_per_address_limit_across_many_usernames(start_app: Any, make_settings: Any) -> None:
    client = await start_app(make_settings(login_max_failures_per_address=10))
    for number in range(10):
        response = await client.post(
            "/api/login/", data={"username": f"guess{number}", "password": "x"}
        )
        assert response.status_code == 401
    blocked = await client.post("/api/login/", data={"username": "guess99", "password": "x"})
    assert blocked.status_code == 429
    assert "retry-after" in blocked.headers


async def test_window_closes(start_app: Any, make_settings: Any, users: Any) -> None:
    client = await start_app(make_settings(login_failure_window_seconds=1))
    await client.post("/admin/users/", json={"username": "bruce", "password": "right"})
    for _ in range(5):
        await client.post("/api/login/", data={"username": "bruce", "password": "wrong"})
    assert (
        await client.post("/api/login/", data={"username": "bruce", "password": "right"})
    ).status_code == 429
    import asyncio

    await asyncio.sleep(1.2)
    assert (
        await client.post("/api/login/", data={"username": "bruce", "password": "right"})
    ).status_code == 200


async def test_redis_counters_are_shared_by_replicas(
    start_app: Any, make_settings: Any, db_backend: str
) -> None:
    url = redis_url_or_skip()
    settings = make_settings(redis_url=url)
    replica_a = await start_app(settings)
    replica_b = await start_app(settings)
    name = f"shared-{uuid.uuid4().hex[:8]}"
    await replica_a.post("/admin/users/", json={"username": name, "password": "right"})
    for replica in (replica_a, replica_b, replica_a, replica_b, replica_a):
        response = await replica.post("/api/login/", data={"username": name, "password": "no"})
        assert response.status_code == 401
    blocked = await replica_b.post("/api/login/", data={"username": name, "password": "right"})
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    redis.Redis.from_url(url).delete(f"mythoughts:login-failures:user:{name.casefold()}")


async def test_memory_counter_stays_bounded() -> None:
    now = [0.0]
    counter = MemoryFailureCounter(clock=lambda: now[0])
    counter.MAX_KEYS = 100
    for number in range(1000):
        await counter.add_failure(f"user:{number}", 60)
    assert len(counter.windows) <= 100
    now[0] = 61.0
    assert await counter.failures("user:999") == (0, 0.0)


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
async def test_usernames_are_throttled_case_insensitively(
    client: httpx.AsyncClient, users: Any
) -> None:
    await users.create("Bruce", "right")
    for name in ("bruce", "BRUCE", "Bruce", "bRuce", "brucE"):
        await users.login(name, "wrong")
    assert (await users.login("Bruce", "right")).status_code == 429


async def test_logins_are_counted_by_outcome_at_metrics(
    client: httpx.AsyncClient, users: Any
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    await users.create("mary", "right")
    assert (await users.login("mary", "right")).status_code == 200
    for _ in range(5):
        assert (await users.login("mary", "wrong")).status_code == 401
    assert (await users.login("mary", "wrong")).status_code == 429

    text = (await client.get("/metrics")).text
    counts = {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "users_logins_total"
    }
    assert counts == {"success": 1.0, "failure": 5.0, "throttled": 1.0}
    assert "mary" not in text  # no label carries a username
