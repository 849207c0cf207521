"""Issue 14 item 12 across real processes: a logged-out token (API or site logout) and the tokens
of a deleted account are refused by thoughts and tasks too, which verify tokens offline and
consult the users service's deny list in Redis; a deleted name is never given to a new account.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from devtools.testing import LocalSystem
from testkit import csrf_token, need

from .test_system import log_in_through_the_site

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def revoking_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        need(f"Redis at {REDIS_URL} is not reachable ({exc})")
    prefix = f"mttest-{uuid.uuid4().hex[:8]}:"
    shared = {"REDIS_URL": REDIS_URL, "REDIS_PREFIX": prefix}
    # No second of belief (mythoughts_auth.revocation): each step sees the revocation before it.
    verifying = {**shared, "REVOCATION_RECHECK_SECONDS": "0"}
    overrides = {"users": shared, "thoughts": verifying, "tasks": verifying}
    root: Path = tmp_path_factory.mktemp("revoking")
    with LocalSystem(root, overrides=overrides) as system:
        yield system
    connection = redis.Redis.from_url(REDIS_URL)
    for key in connection.scan_iter(f"{prefix}*"):
        connection.delete(key)


def new_user(system: LocalSystem) -> tuple[int, str, str]:
    username, password = f"rev-{uuid.uuid4().hex[:8]}", "pw-revocation"
    created = httpx.post(
        f"{system.url('users')}/admin/users/", json={"username": username, "password": password}
    )
    assert created.status_code == 201, created.text
    return int(created.json()["id"]), username, password


def post_thought(system: LocalSystem, token: str) -> int:
    return httpx.post(
        f"{system.url('thoughts')}/api/me/thoughts/",
        json={"text": f"thought {uuid.uuid4().hex}"},
        headers={"Authorization": f"Bearer {token}"},
    ).status_code


def my_tasks(system: LocalSystem, token: str) -> int:
    return httpx.get(
        f"{system.url('tasks')}/tasks", headers={"Authorization": f"Bearer {token}"}
    ).status_code


def test_a_logged_out_token_is_refused_everywhere(revoking_system: LocalSystem) -> None:
    _, username, password = new_user(revoking_system)
    token = revoking_system.login_token(username, password)
    assert post_thought(revoking_system, token) == 201
    assert my_tasks(revoking_system, token) == 200
    logout = httpx.post(
        f"{revoking_system.url('users')}/api/logout/",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert logout.status_code == 204
    # Before: the token stayed valid for its hour.
    assert post_thought(revoking_system, token) == 401
    assert my_tasks(revoking_system, token) == 401
    assert post_thought(revoking_system, revoking_system.login_token(username, password)) == 201


def test_the_sites_logout_revokes_the_session_token(revoking_system: LocalSystem) -> None:
    _, username, password = new_user(revoking_system)
    with httpx.Client(base_url=revoking_system.url("frontend")) as site:
        log_in_through_the_site(site, username, password)
        token = site.cookies["mt_session"]
        assert post_thought(revoking_system, token) == 201
        home = site.get("/")
        logout = site.post("/logout", data={"csrf_token": csrf_token(home.text)})
        assert logout.status_code == 303
    assert post_thought(revoking_system, token) == 401


def test_a_deleted_accounts_tokens_and_name_are_gone(revoking_system: LocalSystem) -> None:
    user_id, username, password = new_user(revoking_system)
    token = revoking_system.login_token(username, password)
    assert post_thought(revoking_system, token) == 201
    users = revoking_system.url("users")
    assert httpx.delete(f"{users}/admin/users/{user_id}/").status_code == 204
    # Before: the token still posted, and the name could be signed up again and own the thoughts.
    assert post_thought(revoking_system, token) == 401
    assert my_tasks(revoking_system, token) == 401
    again = httpx.post(f"{users}/admin/users/", json={"username": username, "password": "new"})
    assert again.status_code == 409
