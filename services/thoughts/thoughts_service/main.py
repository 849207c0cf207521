"""The app factory, served by `servicekit.server.serve("thoughts_service.main:create_app")`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy import event

from mythoughts_auth import (
    JWKSKeySource,
    KeySet,
    KeySource,
    LegacyCompatibility,
    StaticKeySource,
    TokenVerifier,
    load_rsa_public_key,
)
from mythoughts_auth.lifecycle import stop_key_fetching, token_keys_missing
from servicekit import ConfigError, ServiceSpec, create_service_app, load_settings
from servicekit.db import Database
from servicekit.pagination import PageLimits
from thoughts_service import __version__
from thoughts_service.full_lists import FullLists
from thoughts_service.metrics import ThoughtMetrics
from thoughts_service.routes import admin, api
from thoughts_service.settings import ThoughtsSettings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

DESCRIPTION = """
Thoughts of MyThoughts: post as the token's user, list yours, list and search everybody's.

- **Authentication**: `/api/me/*` takes `Authorization: Bearer <token>` from the users service
  (`POST /api/login/`).
- **Bodies**: JSON or form-encoded, as the book's clients send both.
- **Pages**: every list is a JSON array of at most `limit` thoughts (default 20; larger values are
  clamped to 100, both configurable), ordered by id (`order=asc`, the default, or `order=desc`
  for newest first). When more may follow, `Link: <...>; rel="next"` gives the next page's URL.
  Thoughts posted meanwhile never make a page repeat or skip a thought.
- **Search**: `GET /api/thoughts/?search=...` finds thoughts containing the text, ignoring case
  (Unicode NFC + full case folding), every character taken literally; index-backed on SQLite
  (FTS5 trigram) and PostgreSQL (pg_trgm).
- **Errors**: RFC 9457 problem+json; validation errors answer 400 and name the field.
- `/admin/*` is internal: never routed from the public entry point.
"""


def load_public_keys(settings: ThoughtsSettings) -> KeySet | None:
    """The key folder's keys, read now so that a bad folder stops the service before it serves;
    None when keys come from the users service's JWKS instead."""
    if settings.auth_public_keys_dir is None:
        return None
    try:
        return KeySet.from_pem_dir(settings.auth_public_keys_dir)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"configuration error: AUTH_PUBLIC_KEYS_DIR: {exc}") from None


def load_legacy_compatibility(settings: ThoughtsSettings) -> LegacyCompatibility | None:
    """The mixed-fleet policy of LEGACY_COMPATIBILITY, its key read now (a bad file stops the
    service before it serves)."""
    if not settings.legacy_compatibility:
        return None
    if settings.auth_legacy_public_key_file is None:
        return LegacyCompatibility()
    try:
        return LegacyCompatibility(load_rsa_public_key(settings.auth_legacy_public_key_file))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"configuration error: AUTH_LEGACY_PUBLIC_KEY_FILE: {exc}") from None


def _force_custom_plans(dbapi_connection: Any, _record: Any) -> None:
    # asyncpg prepares every statement; after five runs PostgreSQL may switch a statement to a
    # generic plan, which cannot see the search pattern and so cannot tell a rare word (use the
    # trigram index) from a common one (walk the primary key). Planning is cheap next to a
    # wrong plan over a million rows. run_async: a plain SET through the DBAPI cursor would open
    # a transaction that the pool rolls back, undoing it.
    dbapi_connection.run_async(
        lambda connection: connection.execute("SET plan_cache_mode = force_custom_plan")
    )


def create_app(settings: ThoughtsSettings | None = None) -> FastAPI:
    settings = settings or load_settings(ThoughtsSettings)
    public_keys = load_public_keys(settings)
    legacy = load_legacy_compatibility(settings)

    async def install_token_verifier(app: FastAPI) -> None:
        source: KeySource
        if public_keys is not None:
            source = StaticKeySource(public_keys)
        else:
            assert settings.auth_jwks_url, "ThoughtsSettings requires a key folder or a JWKS URL"
            source = JWKSKeySource(
                settings.auth_jwks_url,
                http_client=app.state.http,
                cache_seconds=settings.auth_jwks_cache_seconds,
                min_refetch_interval=settings.auth_jwks_min_refetch_seconds,
                on_refresh=app.state.thought_metrics.count_jwks_refresh,
            )
            # Fetched in the background, retried with backoff: a users service that is down
            # keeps this instance unready (token_keys_missing), never stops it starting.
            source.start()
            app.state.jwks = source
        app.state.token_verifier = TokenVerifier(
            source,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway_seconds=settings.jwt_leeway_seconds,
            legacy=legacy,
        )

    app = create_service_app(
        settings,
        ServiceSpec(
            title="Thoughts Backend API",
            description=DESCRIPTION,
            package_version=__version__,
            routers=[api, admin],
            migrations_dir=MIGRATIONS_DIR,
            on_startup=[install_token_verifier],
            on_shutdown=[stop_key_fetching],
            readiness_checks={"token keys": token_keys_missing},
            extra_state={
                "jwks": None,
                "page_limits": PageLimits(settings.page_size, settings.max_page_size),
                "full_lists": (
                    FullLists(settings.legacy_list_batch_size)
                    if settings.legacy_compatibility
                    else None
                ),
            },
        ),
    )
    app.state.thought_metrics = ThoughtMetrics(app.state.metrics)
    database: Database = app.state.db
    if database.dialect == "postgresql":
        event.listen(database.engine.sync_engine, "connect", _force_custom_plans)
        # The same for the connections of the hot paths (thoughts_service.repository).
        database.driver_server_settings["plan_cache_mode"] = "force_custom_plan"
    database.limit_driver_statements(settings.statement_timeout_seconds)
    return app
