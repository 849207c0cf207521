"""Configuration fails fast and clearly; tokens verify through JWKS too; the CLI serves and
migrates with the same commands the images run."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from mythoughts_auth import KeySet
from servicekit import ConfigError, load_settings
from testkit import DatabaseFactory, ServiceProcess, python_module_argv
from testkit.tokens import TokenSigner
from thoughts_service.main import MIGRATIONS_DIR, create_app
from thoughts_service.settings import ThoughtsSettings

ENV_NAMES = ("AUTH_PUBLIC_KEYS_DIR", "AUTH_JWKS_URL", "PAGE_SIZE", "MAX_PAGE_SIZE", "DATABASE_URL")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)
    return monkeypatch


def test_defaults_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AUTH_JWKS_URL", "http://users:8001/.well-known/jwks.json")
    settings = load_settings(ThoughtsSettings)
    assert settings.service_name == "thoughts"
    assert settings.port == 8000
    assert settings.database_url == "sqlite+aiosqlite:///var/thoughts.db"
    assert settings.jwt_issuer == "mythoughts-users"
    assert settings.jwt_audience == "mythoughts"
    assert (settings.page_size, settings.max_page_size) == (20, 100)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "set AUTH_PUBLIC_KEYS_DIR"),
        (
            {"AUTH_PUBLIC_KEYS_DIR": "/keys", "AUTH_JWKS_URL": "http://users/jwks"},
            "set only one of AUTH_PUBLIC_KEYS_DIR",
        ),
        ({"AUTH_JWKS_URL": "http://u/j", "PAGE_SIZE": "50", "MAX_PAGE_SIZE": "10"}, "PAGE_SIZE"),
        ({"AUTH_JWKS_URL": "http://u/j", "MAX_PAGE_SIZE": "0"}, "MAX_PAGE_SIZE"),
    ],
)
def test_bad_configuration_stops_with_a_clear_message(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        load_settings(ThoughtsSettings)


@pytest.mark.parametrize("folder", ["no-such-folder", "empty-folder"])
def test_an_unusable_key_folder_stops_the_service_before_it_serves(
    tmp_path: Path, folder: str
) -> None:
    (tmp_path / "empty-folder").mkdir()
    settings = ThoughtsSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
        auth_public_keys_dir=tmp_path / folder,
    )
    with pytest.raises(ConfigError, match="AUTH_PUBLIC_KEYS_DIR"):
        create_app(settings)


@pytest.fixture
def sqlite_url(database_factory: DatabaseFactory) -> str:
    return database_factory.fresh("sqlite", MIGRATIONS_DIR)


async def test_tokens_verify_against_the_users_jwks(
    sqlite_url: str, public_keys_dir: Path, auth: Any
) -> None:
    document = KeySet.from_pem_dir(public_keys_dir).to_jwks()
    jwks_app = FastAPI()
    jwks_app.get("/.well-known/jwks.json")(lambda: document)
    app = create_app(
        ThoughtsSettings(
            database_url=sqlite_url, auth_jwks_url="http://users.test/.well-known/jwks.json"
        )
    )
    # The service's own HTTP client, pointed at an in-process users service.
    await app.state.http.aclose()
    app.state.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=jwks_app))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        created = await client.post(
            "/api/me/thoughts/", json={"text": "via JWKS"}, headers=auth("jwks-user")
        )
        assert created.status_code == 201, created.text
        assert created.json()["username"] == "jwks-user"


async def test_started_while_users_is_down_ready_once_the_keys_load(
    sqlite_url: str, public_keys_dir: Path, auth: Any
) -> None:
    """Issue 14: an instance started while the users service was down said it was ready, then
    refused every valid token for ~30 s after users came back (its failed start-up fetch
    counted against the refetch interval). Now it is unready until the keys load, and they
    load within the retry backoff of users coming back."""
    document = KeySet.from_pem_dir(public_keys_dir).to_jwks()
    users = {"up": False, "fetches": 0}
    jwks_app = FastAPI()

    @jwks_app.get("/.well-known/jwks.json")
    async def jwks() -> Any:
        users["fetches"] += 1
        if not users["up"]:
            return JSONResponse({"detail": "starting"}, status_code=503)
        return document

    app = create_app(
        ThoughtsSettings(
            database_url=sqlite_url,
            auth_jwks_url="http://users.test/.well-known/jwks.json",
            http_retries=0,
        )
    )
    await app.state.http.aclose()
    app.state.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=jwks_app))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        while users["fetches"] < 2:  # the start-up fetch failed, and a retry too
            not_ready = await client.get("/readyz")
            assert not_ready.status_code == 503, not_ready.text
            assert not_ready.json()["checks"]["token keys"].startswith("not loaded yet")
            await asyncio.sleep(0.05)
        refused = await client.get("/api/me/thoughts/", headers=auth("early"))
        assert refused.status_code == 401

        users["up"] = True
        back = time.monotonic()
        while (await client.get("/readyz")).status_code != 200:
            assert time.monotonic() - back < 3, "not ready 3 s after the users service was back"
            await asyncio.sleep(0.05)
        accepted = await client.get("/api/me/thoughts/", headers=auth("early"))
        assert accepted.status_code == 200, accepted.text
        print(f"[jwks] ready and accepting tokens {time.monotonic() - back:.2f}s after users")


def test_cli_migrates_then_serves(
    tmp_path: Path, public_keys_dir: Path, token_signer: TokenSigner
) -> None:
    database = tmp_path / "cli.db"
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{database}", "LOG_LEVEL": "WARNING"}
    # Migrations run as their own step and need no token keys.
    migrate = subprocess.run(
        python_module_argv("thoughts_service", "migrate"),
        env={**_without_auth_env(), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr
    tables = {row[0] for row in sqlite3.connect(database).execute("SELECT name FROM sqlite_master")}
    assert {"thoughts", "thoughts_fts"} <= tables

    server = ServiceProcess.serving(
        "thoughts",
        {**env, "AUTH_PUBLIC_KEYS_DIR": str(public_keys_dir)},
        tmp_path / "thoughts.log",
    ).start()
    try:
        assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200
        created = httpx.post(
            f"{server.url}/api/me/thoughts/",
            data={"text": "served for real"},
            headers={"Authorization": f"Bearer {token_signer.sign('cli')}"},
            timeout=5,
        )
        assert created.status_code == 201, created.text
        found = httpx.get(f"{server.url}/api/thoughts/", params={"search": "FOR REAL"}, timeout=5)
        assert [thought["text"] for thought in found.json()] == ["served for real"]
    finally:
        assert server.stop() == 0, server.logs()


def _without_auth_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("AUTH_")}
