"""Key rotation across services: users signs, thoughts verifies through the JWKS URL.

The README's walk-through with real processes: no request fails while the signing key changes,
and once a key is removed from the users service, thoughts refuses the tokens it signed.
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from devtools.testing import LocalSystem
from users_service.signing import generate_key


def post_thought(system: LocalSystem, token: str) -> httpx.Response:
    return httpx.post(
        f"{system.url('thoughts')}/api/me/thoughts/",
        json={"text": f"rotation {uuid.uuid4().hex[:8]}"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def restart_users(system: LocalSystem, **env: str) -> None:
    users = system.processes["users"]
    users.stop()
    users.env.update(env)
    users.start()


@pytest.fixture
def system(tmp_path_factory: pytest.TempPathFactory):
    # Short JWKS cache and refetch bounds, so the test sees in seconds what takes minutes in
    # production (defaults: 300 s cache, 30 s between refetches).
    overrides = {
        "thoughts": {"AUTH_JWKS_CACHE_SECONDS": "2", "AUTH_JWKS_MIN_REFETCH_SECONDS": "0.5"}
    }
    with LocalSystem(
        tmp_path_factory.mktemp("rotation"), services=("users", "thoughts"), overrides=overrides
    ) as system:
        yield system


def test_rotation_keeps_every_request_working_and_retired_keys_are_refused(system):
    system.create_user("rotator", "pw-rotator")
    keys_dir = system.stack.keys_dir
    old_token = system.login_token("rotator", "pw-rotator")
    assert post_thought(system, old_token).status_code == 201

    # 1. publish a new key while the old one still signs
    generate_key(keys_dir, "k2")
    restart_users(system, JWT_SIGNING_KID="test-key")
    assert post_thought(system, old_token).status_code == 201

    # 2. switch signing to the new key: thoughts learns it from the JWKS on first sight
    restart_users(system, JWT_SIGNING_KID="k2")
    new_token = system.login_token("rotator", "pw-rotator")
    assert post_thought(system, new_token).status_code == 201
    assert post_thought(system, old_token).status_code == 201

    # 3. remove the old key entirely; once thoughts' cached JWKS expires, old tokens fail
    (keys_dir / "test-key.key.pem").unlink()
    (keys_dir / "test-key.pub.pem").unlink()
    restart_users(system, JWT_SIGNING_KID="k2")
    deadline = time.monotonic() + 10
    refused = post_thought(system, old_token)
    while refused.status_code == 201 and time.monotonic() < deadline:
        time.sleep(0.6)
        refused = post_thought(system, old_token)
    assert refused.status_code == 401
    assert "WWW-Authenticate" in refused.headers
    assert post_thought(system, new_token).status_code == 201
