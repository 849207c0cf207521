"""Configuration of the thoughts service, from the environment (see servicekit.settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from servicekit.settings import ServiceSettings


class ThoughtsDatabaseSettings(ServiceSettings):
    """What the database-only commands (migrate, load-synthetic) need: no keys, no pages."""

    service_name: str = "thoughts"
    port: int = Field(default=8000, ge=1, le=65535)
    database_url: str = "sqlite+aiosqlite:///var/thoughts.db"


class ThoughtsSettings(ThoughtsDatabaseSettings):
    """Everything the server needs."""

    # Where the public keys that verify access tokens come from: exactly one of
    # - a folder of `<kid>.pub.pem` files (e.g. a mounted Secret; no network needed), or
    # - the users service's JWKS URL (keys are fetched, cached and refreshed on rotation).
    auth_public_keys_dir: Path | None = None
    auth_jwks_url: str | None = None
    jwt_issuer: str = "mythoughts-users"
    jwt_audience: str = "mythoughts"
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=600)
    # How long fetched keys are trusted, and how often an unknown `kid` may trigger a refetch
    # (the bound stops a flood of made-up key ids from hammering the users service).
    auth_jwks_cache_seconds: float = Field(default=300, gt=0, le=86400)
    auth_jwks_min_refetch_seconds: float = Field(default=30, ge=0, le=3600)

    # A mixed fleet during a migration from the book's services (README, "Taking over"): accept
    # our tokens without `aud` (a users service in LEGACY_COMPATIBILITY), the book's tokens when
    # AUTH_LEGACY_PUBLIC_KEY_FILE is its public key, and answer a list request with neither
    # `limit` nor `cursor` with every row, as the book's clients expect. Off by default.
    legacy_compatibility: bool = False
    auth_legacy_public_key_file: Path | None = None
    # Rows per database read of such a full list, streamed out as they come: bounded memory.
    legacy_list_batch_size: int = Field(default=1000, ge=1, le=100_000)

    # A read that takes longer is cancelled (a search answers 503): no request may hold a
    # database connection, or on SQLite the event loop, for long (see servicekit.driver).
    statement_timeout_seconds: float = Field(default=2.0, gt=0, le=300)

    # Lists: `limit` defaults to page_size; larger limits are clamped to max_page_size.
    page_size: int = Field(default=20, ge=1, le=1000)
    max_page_size: int = Field(default=100, ge=1, le=1000)

    @model_validator(mode="after")
    def _check_consistency(self) -> ThoughtsSettings:
        if (self.auth_public_keys_dir is None) == (not self.auth_jwks_url):
            raise ValueError(
                "set exactly one of AUTH_PUBLIC_KEYS_DIR (a folder of <kid>.pub.pem files) or "
                "AUTH_JWKS_URL (e.g. http://users:8001/.well-known/jwks.json) so that access "
                "tokens can be verified"
            )
        if self.auth_legacy_public_key_file is not None and not self.legacy_compatibility:
            raise ValueError(
                "AUTH_LEGACY_PUBLIC_KEY_FILE needs LEGACY_COMPATIBILITY=true (the book's key is "
                "only for a mixed fleet)"
            )
        if self.page_size > self.max_page_size:
            raise ValueError(
                f"PAGE_SIZE ({self.page_size}) must not exceed MAX_PAGE_SIZE ({self.max_page_size})"
            )
        return self
