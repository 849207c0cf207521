"""The app factory, served by `servicekit.server.serve("tasks_service.main:create_app")`."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI

from mythoughts_auth.lifecycle import install_token_verifier, stop_key_fetching, token_keys_missing
from mythoughts_auth.settings import read_public_keys
from servicekit import ConfigError, ServiceSpec, create_service_app, load_settings
from servicekit.pagination import PageLimits
from tasks_service import __version__
from tasks_service.metrics import TaskMetrics
from tasks_service.models import TASK_MAX
from tasks_service.ownership import BEARER_SCHEME
from tasks_service.routes import api, register_welcome
from tasks_service.settings import TasksSettings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

DESCRIPTION = f"""
The to-do API of the "Microservices K8s" tutorial, kept compatible with its clients, as a
MyThoughts service (its MongoDB replaced by SQLite or PostgreSQL).

- **The tutorial's contract**: `GET /`, `GET /tasks` (`{{"data": [{{"id", "task"}}]}}`, oldest
  first), `POST /task`, `PUT /task/{{id}}`, `DELETE /task/{{id}}`, `POST /tasks/delete`, each
  answering 200 with the tutorial's `{{"message": ...}}` ("No Task found!" included).
- **Bodies**: `{{"task": "..."}}` read as JSON whatever the Content-Type, as the tutorial's
  `get_json(force=True)` did. A task is 1 to {TASK_MAX} characters, not only whitespace.
- **Ids**: 24 hexadecimal characters, shaped like the MongoDB ObjectIds the tutorial handed out.
- **Errors**: what the tutorial's app crashed on (no body, bad JSON, a missing, non-string,
  empty or too long `task`, a malformed id) answers 400 problem+json naming the problem, and
  nothing is stored or changed.
- **Pages**: `GET /tasks` holds at most `limit` tasks (default and cap 100). When more may
  follow, `Link: <...>; rel="next"` gives the next page's URL; tasks added meanwhile never make
  a page repeat or skip one.
- **Ownership** (`{BEARER_SCHEME}`, optional): with `Authorization: Bearer <token>` from the
  users service (`POST /api/login/`), every route acts on your own list, which nobody else sees
  or changes; without the header, on the shared list, as in the tutorial. An invalid token is a
  401, never the shared list. {{ownership}}
"""

OPTIONAL_NOTE = "This deployment accepts requests without a token."
REQUIRED_NOTE = "This deployment requires a token on every task route (TASKS_REQUIRE_TOKEN)."
NO_TOKENS_NOTE = (
    "This deployment verifies no tokens (no AUTH_JWKS_URL or AUTH_PUBLIC_KEYS_DIR): "
    "there is only the shared list."
)


def _ownership_note(settings: TasksSettings) -> str:
    if not settings.verifies_tokens:
        return NO_TOKENS_NOTE
    return REQUIRED_NOTE if settings.tasks_require_token else OPTIONAL_NOTE


def create_app(settings: TasksSettings | None = None) -> FastAPI:
    settings = settings or load_settings(TasksSettings)
    try:
        public_keys = read_public_keys(settings)
    except ValueError as exc:
        raise ConfigError(f"configuration error: {exc}") from None

    async def verify_tokens(app: FastAPI) -> None:
        install_token_verifier(
            app, settings, public_keys, on_refresh=app.state.task_metrics.count_jwks_refresh
        )

    welcome = APIRouter(tags=["tasks"])
    # The tutorial's welcome names the pod it runs in: read once, the host name does not change.
    register_welcome(welcome, socket.gethostname())
    app = create_service_app(
        settings,
        ServiceSpec(
            title="Tasks API",
            description=DESCRIPTION.replace("{ownership}", _ownership_note(settings)),
            package_version=__version__,
            routers=[welcome, api],
            migrations_dir=MIGRATIONS_DIR,
            on_startup=[verify_tokens],
            on_shutdown=[stop_key_fetching],
            readiness_checks={"token keys": token_keys_missing},
            extra_state={
                "jwks": None,
                "page_limits": PageLimits(settings.page_size, settings.max_page_size),
                "require_token": settings.tasks_require_token,
                "token_verifier": None,
            },
        ),
    )
    app.state.task_metrics = TaskMetrics(app.state.metrics)
    if not settings.tasks_require_token:
        _document_token_as_optional(app)
    return app


def _document_token_as_optional(app: FastAPI) -> None:
    """OpenAPI: FastAPI lists the bearer scheme as required; `{}` beside it means "or none"."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for path_item in schema.get("paths", {}).values():
                for operation in path_item.values():
                    security = operation.get("security")
                    if security and {} not in security:
                        operation["security"] = [{}, *security]
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]
