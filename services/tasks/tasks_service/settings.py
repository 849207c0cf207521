"""Configuration of the tasks service, from the environment (see servicekit.settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from servicekit.settings import ServiceSettings


class TasksDatabaseSettings(ServiceSettings):
    """What the database-only command (migrate) needs: no keys, no pages."""

    service_name: str = "tasks"
    port: int = Field(default=8003, ge=1, le=65535)
    database_url: str = "sqlite+aiosqlite:///var/tasks.db"


class TasksSettings(TasksDatabaseSettings):
    """Everything the server needs."""

    # Where the public keys that verify MyThoughts access tokens come from: at most one of a
    # folder of `<kid>.pub.pem` files or the users service's JWKS URL. With neither, the service
    # is the tutorial's app: one shared list, and a request carrying a token is refused (401)
    # rather than silently treated as anonymous.
    auth_public_keys_dir: Path | None = None
    auth_jwks_url: str | None = None
    jwt_issuer: str = "mythoughts-users"
    jwt_audience: str = "mythoughts"
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=600)
    auth_jwks_cache_seconds: float = Field(default=300, gt=0, le=86400)
    auth_jwks_min_refetch_seconds: float = Field(default=30, ge=0, le=3600)
    # True: every task route needs a valid token (no shared list); needs one of the key settings.
    tasks_require_token: bool = False

    # The tutorial's list had no pages: the default page is the whole cap, so that a client
    # that ignores the Link header sees as many tasks as any page can hold.
    page_size: int = Field(default=100, ge=1, le=1000)
    max_page_size: int = Field(default=100, ge=1, le=1000)

    @property
    def verifies_tokens(self) -> bool:
        return self.auth_public_keys_dir is not None or bool(self.auth_jwks_url)

    @model_validator(mode="after")
    def _check_consistency(self) -> TasksSettings:
        if self.auth_public_keys_dir is not None and self.auth_jwks_url:
            raise ValueError(
                "set at most one of AUTH_PUBLIC_KEYS_DIR (a folder of <kid>.pub.pem files) or "
                "AUTH_JWKS_URL (e.g. http://users:8001/.well-known/jwks.json)"
            )
        if self.tasks_require_token and not self.verifies_tokens:
            raise ValueError(
                "TASKS_REQUIRE_TOKEN=true needs AUTH_JWKS_URL or AUTH_PUBLIC_KEYS_DIR to verify "
                "the tokens"
            )
        if self.page_size > self.max_page_size:
            raise ValueError(
                f"PAGE_SIZE ({self.page_size}) must not exceed MAX_PAGE_SIZE ({self.max_page_size})"
            )
        return self
