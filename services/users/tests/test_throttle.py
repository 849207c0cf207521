"""Failed-login throttling (users_service.throttle): per (account, client), per account with
backoff, per client address; in memory and shared through Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from testkit import StartedApps, free_port, need
from users_service.throttle import MemoryFailureCounter

from .conftest import insert_legacy_users

REDIS_URL = "redis://127.0.0.1:6379/0"
ATTACKER = ("198.51.100.66", 5555)
REAL_USER = ("192.0.2.10", 4444)


def redis_url_or_skip() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        need(f"Redis at {REDIS_URL} is not reachable ({exc})")
    return REDIS_URL


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own, deleted afterwards (the Redis is shared)."""
    prefix = f"mttest-{uuid.uuid4().hex[:8]}:"
    yield prefix
    connection = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        for key in connection.scan_iter(f"{prefix}*"):
            connection.delete(key)
    except redis.RedisError:
        pass


def login(client: httpx.AsyncClient, username: str, password: str) -> Any:
    return client.post("/api/login/", data={"username": username, "password": password})


async def test_one_client_has_five_guesses_then_waits_with_retry_after(
    client: httpx.AsyncClient, users: Any
) -> None:
    await users.create("bruce", "right")
    for _ in range(5):
        assert (await users.login("bruce", "wrong")).status_code == 401
    locked = await users.login("bruce", "right")  # this client has used its guesses
    assert locked.status_code == 429
    retry_after = int(locked.headers["retry-after"])
    assert 1 <= retry_after <= 900
    assert f"{retry_after} seconds" in locked.json()["detail"]
    await users.create("stephen", "pw")  # other accounts are not affected
    assert (await users.login("stephen", "pw")).status_code == 200


async def test_an_attacker_cannot_lock_out_the_real_user(
    client: httpx.AsyncClient, users: Any, started_apps: StartedApps
) -> None:
    # Before: five wrong passwords from anyone locked the account for 15 minutes.
    attacker = await started_apps.peer(client, ATTACKER)
    real_user = await started_apps.peer(client, REAL_USER)
    await users.create("bruce", "right")
    statuses = [(await login(attacker, "bruce", f"guess{n}")).status_code for n in range(20)]
    assert statuses == [401] * 5 + [429] * 15
    assert (await login(attacker, "bruce", "right")).status_code == 429
    assert (await login(real_user, "bruce", "right")).status_code == 200


async def test_only_the_accounts_own_success_clears_its_counter(
    client: httpx.AsyncClient, users: Any, database_url: str
) -> None:
    # Before: "Stephen" logging in cleared the counter of "stephen" (both folded to one key),
    # so an attacker owning one could guess the other's password without limit. New accounts
    # can no longer take such a name (test_usernames.py); rows from before that can.
    await users.create("stephen", "secret")
    await insert_legacy_users(database_url, [("Stephen", "mine")])
    statuses = []
    for _ in range(5):
        statuses += [(await users.login("stephen", f"guess{n}")).status_code for n in range(4)]
        assert (await users.login("Stephen", "mine")).status_code == 200
    assert statuses.count(401) == 5
    assert statuses[5:] == [429] * 15


async def test_many_clients_meet_the_accounts_backoff_and_the_real_user_does_not(
    client: httpx.AsyncClient, users: Any, started_apps: StartedApps
) -> None:
    await users.create("bruce", "right")
    attackers = [await started_apps.peer(client, (f"198.51.100.{n}", 1)) for n in range(1, 7)]
    for attacker in attackers:  # six first guesses: each from a client with no failures
        assert (await login(attacker, "bruce", "wrong")).status_code == 401
    again = await login(attackers[0], "bruce", "wrong")  # six failures: 2 s after the last
    assert again.status_code == 429
    assert 1 <= int(again.headers["retry-after"]) <= 2
    real_user = await started_apps.peer(client, REAL_USER)
    assert (await login(real_user, "bruce", "right")).status_code == 200
    # The success cleared the account's counter: the backoff is gone.
    assert (await login(attackers[0], "bruce", "wrong")).status_code == 401


async def test_a_real_user_who_mistyped_during_an_attack_waits_at_most_the_backoff(
    start_app: Any, make_settings: Any, started_apps: StartedApps
) -> None:
    client = await start_app(make_settings(login_backoff_max_seconds=3))
    await client.post("/admin/users/", json={"username": "bruce", "password": "right"})
    for n in range(1, 21):  # twenty fresh addresses, one guess each
        attacker = await started_apps.peer(client, (f"198.51.100.{n}", 1))
        assert (await login(attacker, "bruce", "wrong")).status_code == 401
    real_user = await started_apps.peer(client, REAL_USER)
    assert (await login(real_user, "bruce", "typo")).status_code == 401
    waiting = await login(real_user, "bruce", "right")
    assert waiting.status_code == 429
    assert int(waiting.headers["retry-after"]) <= 3  # a short delay, not the 900 s window


async def test_parallel_guesses_from_one_client_get_no_more_than_the_limit(
    client: httpx.AsyncClient, users: Any
) -> None:
    await users.create("bruce", "right")
    responses = await asyncio.gather(*(users.login("bruce", f"g{n}") for n in range(20)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses.count(401) <= 5
    # The rest were never checked: throttled (429), or refused because this client already has
    # PASSWORD_CHECKS_PER_CLIENT checks in progress (503, users_service.passwords).
    assert statuses.count(429) + statuses.count(503) >= 15
    assert set(statuses) <= {401, 429, 503}


async def test_successful_logins_from_one_busy_address_are_never_throttled(
    client: httpx.AsyncClient, users: Any
) -> None:
    await users.create("bruce", "right")
    for _ in range(60):  # above both the per-client and the per-address failure limits
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
        response = await login(client, f"guess{number}", "x")
        assert response.status_code == 401
    blocked = await login(client, "guess99", "x")
    assert blocked.status_code == 429
    assert "retry-after" in blocked.headers


async def test_unknown_names_are_throttled_like_accounts(client: httpx.AsyncClient) -> None:
    for name in ("nobody", "NOBODY", "Nobody", "nobody", "noBody"):
        assert (await login(client, name, "x")).status_code == 401
    assert (await login(client, "nobody", "x")).status_code == 429


async def test_window_closes(start_app: Any, make_settings: Any) -> None:
    client = await start_app(make_settings(login_failure_window_seconds=1))
    await client.post("/admin/users/", json={"username": "bruce", "password": "right"})
    for _ in range(5):
        await login(client, "bruce", "wrong")
    assert (await login(client, "bruce", "right")).status_code == 429
    await asyncio.sleep(1.2)
    assert (await login(client, "bruce", "right")).status_code == 200


async def test_redis_counters_are_shared_by_replicas(
    start_app: Any, make_settings: Any, started_apps: StartedApps, redis_prefix: str
) -> None:
    settings = make_settings(redis_url=redis_url_or_skip(), redis_prefix=redis_prefix)
    replica_a = await start_app(settings)
    replica_b = await start_app(settings)
    await replica_a.post("/admin/users/", json={"username": "bruce", "password": "right"})
    for replica in (replica_a, replica_b, replica_a, replica_b, replica_a):
        assert (await login(replica, "bruce", "no")).status_code == 401
    blocked = await login(replica_b, "bruce", "right")
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    real_user = await started_apps.peer(replica_b, REAL_USER)
    assert (await login(real_user, "bruce", "right")).status_code == 200


async def test_redis_backoff_is_shared_by_replicas(
    start_app: Any, make_settings: Any, started_apps: StartedApps, redis_prefix: str
) -> None:
    settings = make_settings(redis_url=redis_url_or_skip(), redis_prefix=redis_prefix)
    replicas = [await start_app(settings), await start_app(settings)]
    await replicas[0].post("/admin/users/", json={"username": "bruce", "password": "right"})
    attackers = [
        await started_apps.peer(replicas[n % 2], (f"198.51.100.{n}", 1)) for n in range(1, 7)
    ]
    for attacker in attackers:
        assert (await login(attacker, "bruce", "wrong")).status_code == 401
    assert (await login(attackers[1], "bruce", "wrong")).status_code == 429


async def test_unreachable_redis_answers_503_fast(start_app: Any, make_settings: Any) -> None:
    client = await start_app(make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    response = await login(client, "bruce", "right")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0


async def test_memory_counter_stays_bounded() -> None:
    now = [0.0]
    counter = MemoryFailureCounter(clock=lambda: now[0])
    counter.MAX_KEYS = 100
    for number in range(1000):
        await counter.add(f"acct:{number}", 60)
    assert len(counter.windows) <= 100
    now[0] = 61.0
    assert (await counter.get("acct:999")).count == 0


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
