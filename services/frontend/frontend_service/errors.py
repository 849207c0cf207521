"""Error pages that help: what went wrong, what to do, and the request id to quote.

Never a traceback: unexpected errors are logged by the kit's middleware with the request id that
the page shows, so whoever reads the logs finds the one line that matters.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from frontend_service.backends import (
    THOUGHTS,
    USERS,
    BackendRefused,
    BackendUnavailable,
    SessionExpired,
)
from frontend_service.metrics import FrontendMetrics
from frontend_service.web import CsrfRejected, get_visit, login_url, redirect, render

SERVICE_DESCRIPTIONS = {
    USERS: "The accounts service (users), which handles logins,",
    THOUGHTS: "The thoughts service, which stores and searches thoughts,",
}


def error_page(
    request: Request,
    status: int,
    message: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    visit = get_visit(request)
    visit.extra_headers.update(headers or {})
    return render(
        visit,
        "error.html",
        {
            "status": status,
            "title": title or HTTPStatus(status).phrase,
            "message": message,
            "hide_account": True,
        },
        status_code=status,
    )


def unavailable_message(exc: BackendUnavailable) -> tuple[str, str]:
    """The title and message of the 503 page: only what is known (issue 14).

    A change that reached the service without an answer may or may not have happened, so the
    page says just that, and how to find out, never "nothing was changed" nor a bare "try
    again". "Nothing was changed" only when the change never reached the service. A page that
    only reads says neither: the change before it (say, the post it follows) did happen.
    """
    if exc.unconfirmed is not None and exc.reached:
        return "Not confirmed", (
            f"We could not confirm {exc.unconfirmed}: the {exc.service} service {exc.reason}. "
            f"{exc.advice}"
        )
    what = SERVICE_DESCRIPTIONS.get(exc.service, f"The {exc.service} service")
    unchanged = "Nothing was changed. " if exc.unconfirmed is not None else ""
    return "Temporarily unavailable", (
        f"{what} is unavailable right now: it {exc.reason}. {unchanged}"
        "Please try again in a moment."
    )


TOO_LARGE = (
    "What you sent is too large for this site. Go back and shorten it: a thought is at most "
    "250 characters."
)


def refusal_page(
    request: Request, status: int, detail: str, headers: Mapping[str, str]
) -> Response:
    """The page for a request the kit refuses before any route (servicekit.limits): a form
    over the size limit, or a Content-Length that is not a number."""
    message = TOO_LARGE if status == 413 else "The form was not understood."
    return error_page(request, status, message, headers=dict(headers))


async def backend_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BackendUnavailable)
    metrics: FrontendMetrics = request.app.state.frontend_metrics
    metrics.backend_errors.labels(exc.service).inc()
    title, message = unavailable_message(exc)
    return error_page(request, 503, message, title=title, headers={"Retry-After": "10"})


async def backend_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BackendRefused)
    return error_page(
        request,
        400,
        "That could not be done: the request was not accepted. Go back and check what you asked "
        "for (a link or a form that was changed, or that points at something that never existed).",
    )


async def session_expired(request: Request, exc: Exception) -> Response:
    visit = get_visit(request)
    visit.log_out()
    next_path = None
    if request.method == "GET":
        next_path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect(visit, login_url(next_path), flash="session_expired")


async def csrf_rejected(request: Request, exc: Exception) -> Response:
    return error_page(
        request,
        403,
        "This form could not be accepted: it has expired, or it was not sent from this site. "
        "Go back, reload the page and try again. (Cookies must be enabled to use forms.)",
        title="Form expired",
    )


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    messages = {
        404: "There is no page at this address.",
        405: "This page cannot be used that way.",
        413: TOO_LARGE,
    }
    message = messages.get(exc.status_code) or (
        exc.detail if isinstance(exc.detail, str) else "The request could not be handled."
    )
    return error_page(request, exc.status_code, message, headers=dict(exc.headers or {}))


async def invalid_request(request: Request, exc: Exception) -> Response:
    return error_page(request, 400, "The address or form was not understood.")


def install_error_pages(app: FastAPI) -> None:
    """HTML error pages replace the kit's problem+json: this service's clients are browsers."""
    app.add_exception_handler(BackendUnavailable, backend_unavailable)
    app.add_exception_handler(BackendRefused, backend_refused)
    app.add_exception_handler(SessionExpired, session_expired)
    app.add_exception_handler(CsrfRejected, csrf_rejected)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
