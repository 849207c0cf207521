"""Configuration of the thoughts service, from the environment (see servicekit.settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from mythoughts_auth.settings import TokenVerificationSettings
from servicekit.settings import ServiceSettings


class ThoughtsDatabaseSettings(ServiceSettings):
    """What the database-only command (migrate) needs: no keys, no pages."""

    service_name: str = "thoughts"
    port: int = Field(default=8000, ge=1, le=65535)
    database_url: str = "sqlite+aiosqlite:///var/thoughts.db"


class ThoughtsSettings(ThoughtsDatabaseSettings, TokenVerificationSettings):
    """Everything the server needs (the token settings: mythoughts_auth.settings)."""

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

    # Posts of one worker process waiting for their commit (or in it); one more is answered 503
    # with Retry-After at once, and stored nothing. A post waits behind the database's one write
    # lock (SQLite) or the insert-order lock (PostgreSQL); without a bound, an arrival rate above
    # what the database commits made the queue and every post's latency grow for as long as it
    # lasted (bench/README.md, "Latency under a steady load"). 128 is ~0.1 to 0.2 s of commits
    # at the benchmark's rates, far more than a closed loop of 32 connections ever queues.
    post_queue_limit: int = Field(default=128, ge=1, le=100_000)

    # Lists: `limit` defaults to page_size; larger limits are clamped to max_page_size.
    page_size: int = Field(default=20, ge=1, le=1000)
    max_page_size: int = Field(default=100, ge=1, le=1000)

    @model_validator(mode="after")
    def _check_consistency(self) -> ThoughtsSettings:
        if not self.verifies_tokens:
            raise ValueError(
                "set AUTH_PUBLIC_KEYS_DIR (a folder of <kid>.pub.pem files) or AUTH_JWKS_URL "
                "(e.g. http://users:8001/.well-known/jwks.json) so that access tokens can be "
                "verified"
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
