"""The frontend app factory: `servicekit.server.serve("frontend_service.main:create_app")`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from frontend_service import __version__
from frontend_service.backends import THOUGHTS, USERS, ThoughtsClient, UsersClient
from frontend_service.csrf import CsrfSigner
from frontend_service.errors import install_error_pages, refusal_page
from frontend_service.headers import SecurityHeadersMiddleware
from frontend_service.metrics import FrontendMetrics
from frontend_service.pages import router
from frontend_service.settings import FrontendSettings, socket_paths
from frontend_service.web import CookieNames
from servicekit import ServiceSpec, create_service_app, load_settings
from servicekit.pooled_http import PooledHttpClient

STATIC_DIR = Path(__file__).resolve().parent / "static"

DESCRIPTION = """
The MyThoughts web site: server-rendered pages for logging in, posting and deleting one's
thoughts and searching everybody's. It owns no data: it calls the users and thoughts services
over HTTP, like any other client.
"""


async def _close_backends(app: FastAPI) -> None:
    await app.state.users.client.aclose()
    await app.state.thoughts.client.aclose()


def create_app(settings: FrontendSettings | None = None) -> FastAPI:
    settings = settings or load_settings(FrontendSettings)
    app = create_service_app(
        settings,
        ServiceSpec(
            title="Frontend",
            description=DESCRIPTION,
            package_version=__version__,
            routers=[router],
            on_shutdown=[_close_backends],
            refusal=refusal_page,
            extra_state={
                "csrf_signer": CsrfSigner(settings.secret_key.get_secret_value()),
                "cookie_names": CookieNames.for_site(settings.cookie_secure),
            },
        ),
    )
    app.state.frontend_metrics = FrontendMetrics(app.state.metrics)

    # One client per backend and process: every page calls thoughts, and kept-alive connections
    # spare each call a connect and the per-call cost of a general-purpose client.
    def backend_client(name: str, base_url: str, unix_sockets: str) -> PooledHttpClient:
        return PooledHttpClient(
            base_url,
            dependency=name,
            timeout_seconds=settings.http_timeout_seconds,
            retries=settings.http_retries,
            metrics=app.state.metrics,
            tracing=app.state.tracing,
            unix_sockets=socket_paths(unix_sockets),
        )

    app.state.users = UsersClient(
        backend_client(USERS, settings.users_url, settings.users_unix_sockets)
    )
    app.state.thoughts = ThoughtsClient(
        backend_client(THOUGHTS, settings.thoughts_url, settings.thoughts_unix_sockets)
    )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install_error_pages(app)
    app.add_middleware(SecurityHeadersMiddleware)
    return app
