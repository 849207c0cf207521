"""The users service app factory: `servicekit.server.serve("users_service.main:create_app")`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from mythoughts_auth import (
    LegacyCompatibility,
    MemoryRevocationList,
    RedisRevocationList,
    RevocationList,
    StaticKeySource,
    TokenVerifier,
)
from servicekit import ConfigError, ServiceSpec, create_service_app, load_settings
from users_service import __version__
from users_service.metrics import LoginMetrics
from users_service.passwords import Passwords
from users_service.routes import admin, api
from users_service.settings import UsersSettings
from users_service.signing import LEGACY_KID, load_signing_keys
from users_service.throttle import (
    FailureCounter,
    LoginThrottle,
    MemoryFailureCounter,
    RedisFailureCounter,
)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

DESCRIPTION = """
Accounts and login for MyThoughts. Issues RS256 access tokens and publishes the keys that
verify them at `/.well-known/jwks.json`. Log in with `POST /api/login/` (the book's endpoint) or
the OAuth2 password grant at `POST /api/token`. `/admin/*` is internal: never routed from the
public entry point.
"""


def create_app(settings: UsersSettings | None = None) -> FastAPI:
    settings = settings or load_settings(UsersSettings)
    # Keys are loaded now, not at the first request: a missing key is a start-up error.
    if settings.legacy_signing_key_file is not None and not settings.legacy_compatibility:
        raise ConfigError(
            "configuration error: LEGACY_SIGNING_KEY_FILE needs LEGACY_COMPATIBILITY=true "
            "(the book's key is only for a mixed fleet)"
        )
    signing_keys = load_signing_keys(
        settings.jwt_keys_dir, settings.jwt_signing_kid, settings.legacy_signing_key_file
    )
    legacy: LegacyCompatibility | None = None
    if settings.legacy_compatibility:
        legacy = LegacyCompatibility(signing_keys.public_keys.get(LEGACY_KID))

    async def start(app: FastAPI) -> None:
        app.state.passwords = Passwords(settings)
        counter: FailureCounter = (
            RedisFailureCounter(settings.redis_url, f"{settings.redis_prefix}login-failures:")
            if settings.redis_url
            else MemoryFailureCounter()
        )
        app.state.throttle = LoginThrottle(
            counter,
            window_seconds=settings.login_failure_window_seconds,
            max_per_client=settings.login_max_failures_per_username,
            max_per_address=settings.login_max_failures_per_address,
            backoff_max_seconds=settings.login_backoff_max_seconds,
        )

    async def stop(app: FastAPI) -> None:
        await app.state.throttle.close()
        app.state.passwords.close()
        await revocations.close()

    # Logged-out tokens and deleted accounts (mythoughts_auth.revocation): in Redis, shared with
    # every replica and with thoughts and tasks (given the same REDIS_URL); else this process's.
    revocations: RevocationList = (
        # Believed for no time: the service that revokes sees its own revocations at once.
        RedisRevocationList(settings.redis_url, settings.redis_prefix, recheck_seconds=0)
        if settings.redis_url
        else MemoryRevocationList()
    )

    app = create_service_app(
        settings,
        ServiceSpec(
            title="Users Backend API",
            description=DESCRIPTION,
            package_version=__version__,
            routers=[api, admin],
            migrations_dir=MIGRATIONS_DIR,
            on_startup=[start],
            on_shutdown=[stop],
            extra_state={
                "signing_keys": signing_keys,
                "token_verifier": TokenVerifier(
                    StaticKeySource(signing_keys.key_set()),
                    issuer=settings.jwt_issuer,
                    audience=settings.jwt_audience,
                    legacy=legacy,
                    revocations=revocations,
                ),
            },
        ),
    )
    app.state.login_metrics = LoginMetrics(app.state.metrics)
    return app
