"""Frontend tests: the app in-process, against the real users and thoughts services as processes.

The backends are our own services, so they are never mocked: the session's local system
(the `local_system` fixture: every service started with `python -m <service> serve` by the same
code as `make run`; testkit.system says what these tests use of it). Each test gets fresh frontend
apps; each test that logs in uses its own user.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from frontend_service.main import create_app
from frontend_service.settings import FrontendSettings
from testkit import StartedApps, csrf_token
from testkit.system import RunningSystem
from testkit.tokens import TokenSigner

SECRET = "test-secret-key-that-is-long-enough-0123456789"

StartFrontend = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture(scope="session")
def backends(local_system: RunningSystem) -> RunningSystem:
    """The real users and thoughts services (the session's local system)."""
    return local_system


def make_settings(backends: RunningSystem, **overrides: Any) -> FrontendSettings:
    values: dict[str, Any] = {
        "users_url": backends.url("users"),
        "thoughts_url": backends.url("thoughts"),
        "cookie_secure": False,
        "secret_key": SECRET,
        "dependencies": "",
        "version_name": "0.1.0",
        "version_sha": "test",
    }
    values.update(overrides)
    return FrontendSettings(**values)


@pytest.fixture
def start_frontend(backends: RunningSystem, started_apps: StartedApps) -> StartFrontend:
    """Starts frontend apps (lifespan included); `start(**settings)` returns a client."""

    async def start(**overrides: Any) -> httpx.AsyncClient:
        settings = make_settings(backends, **overrides)
        scheme = "https" if settings.cookie_secure else "http"
        return await started_apps.client(
            create_app(settings),
            base_url=f"{scheme}://frontend.test",
            client_address=("203.0.113.9", 4321),
        )

    return start


@pytest.fixture
async def frontend(start_frontend: StartFrontend) -> httpx.AsyncClient:
    return await start_frontend()


@pytest.fixture
def user(backends: RunningSystem) -> tuple[str, str]:
    """A fresh user (name, password), so tests never share thoughts or login throttling."""
    username = f"user-{uuid.uuid4().hex[:10]}"
    password = f"pw-{uuid.uuid4().hex}"
    backends.create_user(username, password)
    return username, password


class Forms:
    """Submits forms the way a browser does: the CSRF token comes from the page with the form."""

    csrf_token = staticmethod(csrf_token)

    @classmethod
    async def submit(
        cls, client: httpx.AsyncClient, page_url: str, action: str, data: dict[str, str]
    ) -> httpx.Response:
        page = await client.get(page_url)
        assert page.status_code in (200, 400), page.text
        return await client.post(action, data={**data, "csrf_token": cls.csrf_token(page.text)})

    @classmethod
    async def log_in(cls, client: httpx.AsyncClient, username: str, password: str) -> None:
        response = await cls.submit(
            client, "/login", "/login", {"username": username, "password": password}
        )
        assert response.status_code == 303, response.text


@pytest.fixture
def forms() -> type[Forms]:
    return Forms


@pytest.fixture
def users_signer(backends: RunningSystem) -> TokenSigner:
    """Signs with the running users service's own key: tokens it could have issued."""
    return TokenSigner.from_keys_dir(backends.keys_dir)
