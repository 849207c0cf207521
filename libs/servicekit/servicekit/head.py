"""HEAD wherever GET is served (RFC 9110 §9.3.2: a general-purpose server supports both).

FastAPI's routes answer only the methods they declare, so `curl -I`, uptime monitors and link
checkers got 405 from every page and route. The request goes to the app as a GET; the server
(uvicorn, which still sees the HEAD) sends the status and headers without the body. The
route that matched is copied back to the outer scope, so that the access log and the metrics
name it, with the method the client used.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

# What routing writes into the scope, which the observability middleware reads.
_ROUTING_KEYS = ("route", "endpoint", "path_params")


class HeadAsGetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        as_get = {**scope, "method": "GET"}
        try:
            await self.app(as_get, receive, send)
        finally:
            for key in _ROUTING_KEYS:
                if key in as_get:
                    scope[key] = as_get[key]
