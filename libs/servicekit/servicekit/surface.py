"""Which port serves what, when a service has an internal port (`INTERNAL_PORT`).

The frontend's public port is the web site that the gateway and `make run` expose to everyone:
metrics, API docs, the OpenAPI schema and the admin routes have no business there. With an
internal port the server listens on both, and this middleware splits the routes by the port a
request came in on (the ASGI scope's `server`): operations on the internal port only, pages on
the public port only; probes (`/healthz`, `/readyz`) on both, so a load balancer and a
Kubernetes probe can use either. Without one, a single port serves everything.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from servicekit.admin import is_admin_path, normalise_path
from servicekit.problems import problem_response

INTERNAL_PATHS = frozenset(
    {"/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
PROBE_PATHS = frozenset({"/healthz", "/readyz"})


def is_internal_path(path: str) -> bool:
    return normalise_path(path).rstrip("/") in INTERNAL_PATHS or is_admin_path(path)


class InternalPortMiddleware:
    def __init__(self, app: ASGIApp, internal_port: int) -> None:
        self.app = app
        self.internal_port = internal_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        server: tuple[str, int | None] | None = scope.get("server")
        on_internal = server is not None and server[1] == self.internal_port
        path = scope["path"]
        if path in PROBE_PATHS or is_internal_path(path) == on_internal:
            await self.app(scope, receive, send)
            return
        # 404, not 403: the public port should not even admit that these routes exist.
        await problem_response(404, "not found")(scope, receive, send)
