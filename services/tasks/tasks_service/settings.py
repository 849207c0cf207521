"""Configuration of the tasks service, from the environment (see servicekit.settings)."""

from __future__ import annotations

from pydantic import Field, model_validator

from mythoughts_auth.settings import TokenVerificationSettings
from servicekit.settings import ServiceSettings


class TasksDatabaseSettings(ServiceSettings):
    """What the database-only command (migrate) needs: no keys, no pages."""

    service_name: str = "tasks"
    port: int = Field(default=8003, ge=1, le=65535)
    database_url: str = "sqlite+aiosqlite:///var/tasks.db"


class TasksSettings(TasksDatabaseSettings, TokenVerificationSettings):
    """Everything the server needs."""

    # Token settings (mythoughts_auth.settings): with no key folder and no JWKS URL the service
    # is the tutorial's app: one shared list, and a request carrying a token is refused (401)
    # rather than silently treated as anonymous.
    # True: every task route needs a valid token (no shared list); needs one of the key settings.
    tasks_require_token: bool = False

    # The tutorial's list had no pages: the default page is the whole cap, so that a client
    # that ignores the Link header sees as many tasks as any page can hold.
    page_size: int = Field(default=100, ge=1, le=1000)
    max_page_size: int = Field(default=100, ge=1, le=1000)

    @model_validator(mode="after")
    def _check_consistency(self) -> TasksSettings:
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
