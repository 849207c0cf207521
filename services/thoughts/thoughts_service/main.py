"""The app factory, served by `servicekit.server.serve("thoughts_service.main:create_app")`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI

from mythoughts_auth import (
    LegacyCompatibility,
    load_rsa_public_key,
)
from mythoughts_auth.lifecycle import install_token_verifier, stop_key_fetching, token_keys_missing
from mythoughts_auth.settings import read_public_keys
from servicekit import ConfigError, ServiceSpec, create_service_app, load_settings
from servicekit.admission import QueueLimit
from servicekit.db import DatabaseOptions
from servicekit.driver import DriverPool
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
- **A thought's text**: 1 to 250 characters once whitespace at both ends is trimmed, counted as
  a reader counts them: user-perceived characters (Unicode extended grapheme clusters, UAX
  #29), so `é` written as e + accent, `👍🏽` and `🇫🇷` are one character each; at most 1,000
  code points whatever they are made of; and at least one visible character (a text of only
  zero-width spaces, byte order marks or direction marks is refused). The frontend counts
  the same way.
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


# asyncpg prepares every statement; after five runs PostgreSQL may switch a statement to a generic
# plan, which cannot see the search pattern and so cannot tell a rare word (use the trigram index)
# from a common one (walk the primary key). Planning is cheap next to a wrong plan over a million
# rows. Set on every connection of both pools (servicekit.db); SQLite ignores it.
SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan"}


def create_app(
    settings: ThoughtsSettings | None = None,
    *,
    driver_observer: Callable[[DriverPool], DriverPool] | None = None,
) -> FastAPI:
    """`driver_observer` sees the hot paths' driver pool (DatabaseOptions): the expand/contract
    test records the statements sent through it (testkit.release_statements)."""
    settings = settings or load_settings(ThoughtsSettings)
    try:
        public_keys = read_public_keys(settings)
    except ValueError as exc:
        raise ConfigError(f"configuration error: {exc}") from None
    legacy = load_legacy_compatibility(settings)

    async def verify_tokens(app: FastAPI) -> None:
        install_token_verifier(
            app,
            settings,
            public_keys,
            on_refresh=app.state.thought_metrics.count_jwks_refresh,
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
            on_startup=[verify_tokens],
            on_shutdown=[stop_key_fetching],
            readiness_checks={"token keys": token_keys_missing},
            # The hot paths run on the driver pool (thoughts_service.repository).
            database_options=DatabaseOptions.from_settings(
                settings,
                driver_pool=True,
                statement_timeout=settings.statement_timeout_seconds,
                server_settings=SERVER_SETTINGS,
                driver_observer=driver_observer,
            ),
            extra_state={
                "jwks": None,
                "page_limits": PageLimits(settings.page_size, settings.max_page_size),
                # One per worker process: the posts waiting for their commit (settings).
                "post_queue": QueueLimit(settings.post_queue_limit, "posts"),
                "full_lists": (
                    FullLists(settings.legacy_list_batch_size)
                    if settings.legacy_compatibility
                    else None
                ),
            },
        ),
    )
    app.state.thought_metrics = ThoughtMetrics(app.state.metrics)
    return app
