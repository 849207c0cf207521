"""One pure-ASGI middleware for the request's whole operational life.

It accepts or makes the request id, times the request, writes the access-log line, records the
metrics by route *template*, makes the request's SERVER span when tracing is on, adds the
headers every response carries (request id, nosniff, HSTS over HTTPS), and turns an
unexpected exception into a 500 problem response (the traceback goes to the log, never to the
client). Pure ASGI rather than BaseHTTPMiddleware: it sits on the hot path of every request.
"""

from __future__ import annotations

import logging
import time

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit.context import (
    REQUEST_ID_HEADER,
    accept_request_id,
    loggable_client_request_id,
    request_id_var,
)
from servicekit.logs import log_fields
from servicekit.metrics import Metrics
from servicekit.problems import problem_response, unavailable_response
from servicekit.tracing import Tracing, trace_id_var
from servicekit.unavailable import as_unavailable

access_log = logging.getLogger("servicekit.access")
error_log = logging.getLogger("servicekit.errors")

_REQUEST_ID_HEADER_BYTES = REQUEST_ID_HEADER.lower().encode()
# On every response of every service: no browser may guess a type other than the one we send
# (a JSON body sniffed as HTML is a script in the API's origin).
_NOSNIFF = (b"x-content-type-options", b"nosniff")
# Only when the request came over HTTPS (directly, or X-Forwarded-Proto from a trusted proxy,
# FORWARDED_ALLOW_IPS): browsers ignore HSTS over plain HTTP, and `make run` is plain HTTP.
_HSTS = (b"strict-transport-security", b"max-age=31536000")
# Probes and scrapes are frequent and dull: count them, log them only at DEBUG.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
# The status recorded for a request whose client went away before sending its whole body
# (nginx's "client closed request"): nobody gets an answer, and it is not our error. Counted as
# a 500 with a traceback at ERROR, a client that gave up mid-upload (or an attacker opening and
# dropping connections) raised the error rate the alerts watch.
CLIENT_CLOSED_REQUEST = 499


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    if route is None and "endpoint" in scope:
        # A route matched, but only FastAPI's own routes put themselves in the scope: a plain
        # Starlette route (FastAPI's documentation pages) leaves its endpoint alone, so look it
        # up by that (only for those hand-opened pages; never the raw path, which is unbounded).
        routes = getattr(getattr(scope.get("app"), "router", None), "routes", ())
        route = next((r for r in routes if getattr(r, "endpoint", None) is scope["endpoint"]), None)
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else "unmatched"


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, tracing: Tracing | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        incoming = None
        for name, value in scope["headers"]:
            if name == _REQUEST_ID_HEADER_BYTES:
                incoming = value.decode("latin-1")
                break
        request_id = accept_request_id(incoming)
        # A client id we did not keep is logged beside ours, so a support case quoting it can
        # still find the request.
        client_request_id = (
            loggable_client_request_id(incoming) if incoming and incoming != request_id else None
        )
        token = request_id_var.set(request_id)
        request_id_bytes = request_id.encode()
        security_headers = [_NOSNIFF, _HSTS] if scope.get("scheme") == "https" else [_NOSNIFF]
        status = 500
        response_started = False
        start = time.perf_counter()
        tracing = self.tracing
        if tracing is not None:
            span, span_token = tracing.start_server_span(
                scope["method"], scope["path"], scope["headers"]
            )
            trace_token = trace_id_var.set(format(span.get_span_context().trace_id, "032x"))

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((_REQUEST_ID_HEADER_BYTES, request_id_bytes))
                headers.extend(security_headers)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except ClientDisconnect:
            if response_started:
                raise
            status = CLIENT_CLOSED_REQUEST
        except Exception as exc:
            unavailable = as_unavailable(exc)
            if unavailable is not None:
                # An unavailable dependency, not a bug: one line, and a 503 (issue 14).
                error_log.warning(
                    "database unavailable on %s %s: %s",
                    scope["method"],
                    _route_template(scope),
                    unavailable.reason,
                )
            else:
                error_log.exception(
                    "unhandled error on %s %s", scope["method"], _route_template(scope)
                )
            if response_started:
                raise
            if unavailable is not None:
                response = unavailable_response(unavailable)
            else:
                response = problem_response(500, "an internal error occurred; quote the request id")
            status = response.status_code
            await response(scope, receive, send_with_request_id)
        finally:
            duration = time.perf_counter() - start
            route = _route_template(scope)
            self.metrics.observe(route, scope["method"], status, duration)
            level = logging.DEBUG if route in QUIET_ROUTES else logging.INFO
            if access_log.isEnabledFor(level):
                method = scope["method"]
                # Our handler gets the line without a LogRecord (servicekit.logs.log_fields).
                log_fields(
                    access_log,
                    level,
                    f"{method} {route} {status}",
                    {
                        "method": method,
                        "route": route,
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(duration * 1000, 3),
                        "client": (scope.get("client") or ("", 0))[0],
                        **({"client_request_id": client_request_id} if client_request_id else {}),
                    },
                )
            request_id_var.reset(token)
            if tracing is not None:
                tracing.end_server_span(span, span_token, scope["method"], route, status)
                trace_id_var.reset(trace_token)
