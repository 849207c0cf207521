"""What every page needs: the visitor's cookies, the backends, CSRF checks, rendering, redirects.

The session is a cookie holding the token issued by the users service: HttpOnly (no script can
read it), SameSite=Lax (not sent with cross-site POSTs), Secure unless COOKIE_SECURE=false (local
plain HTTP only). With Secure cookies the names take the `__Host-` prefix, which browsers only
accept from HTTPS, for the whole site, without a Domain attribute.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup
from starlette.responses import Response

from frontend_service.backends import ThoughtsClient, UsersClient
from frontend_service.csrf import CSRF_FIELD, CsrfSigner, new_nonce
from frontend_service.metrics import FrontendMetrics
from frontend_service.settings import FrontendSettings
from servicekit.context import current_request_id
from servicekit.deps import from_request

# The templates ship with the package and never change while it runs: compiled once, and not
# checked against their files on every page (Jinja's auto_reload). Autoescaping on, for .html.
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=jinja2.select_autoescape(),
    auto_reload=False,
)

# Short messages shown once, on the page a redirect leads to. The flash cookie holds only a key
# of this table, so nothing a visitor sends can end up in the page through it.
FLASH_MESSAGES: dict[str, tuple[str, str]] = {
    "posted": ("info", "Your thought is posted."),
    "deleted": ("info", "The thought is deleted."),
    "gone": ("info", "That thought was already gone."),
    "logged_out": ("info", "You have logged out."),
    "welcome": ("info", "Welcome! Your account is ready."),
    "session_expired": ("warning", "Your session has expired. Please log in again."),
    "login_required": ("info", "Log in to see your thoughts."),
}

# The session cookie outlives the token a little, so that an expired token can still be told
# apart from "never logged in" and the visitor gets "your session has expired".
SESSION_COOKIE_GRACE_SECONDS = 12 * 3600
FLASH_COOKIE_SECONDS = 60


class CsrfRejected(Exception):
    """A state-changing request without a valid CSRF token."""


@dataclass(frozen=True)
class CookieNames:
    session: str
    csrf: str
    flash: str

    @classmethod
    def for_site(cls, secure: bool) -> CookieNames:
        prefix = "__Host-" if secure else ""
        return cls(f"{prefix}mt_session", f"{prefix}mt_csrf", f"{prefix}mt_flash")


@dataclass
class Visit:
    """One request as the pages see it: who is visiting, with which cookies."""

    request: Request
    settings: FrontendSettings
    cookies: CookieNames
    signer: CsrfSigner
    session: str | None
    csrf_nonce: str
    nonce_is_new: bool
    flash: str | None
    # Cookie changes to apply to whatever response this request ends with.
    set_session: str | None = None
    clear_session: bool = False
    next_flash: str | None = None
    flash_shown: bool = False
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def csrf_token(self) -> str:
        session = None if self.clear_session else (self.set_session or self.session)
        return self.signer.token(self.csrf_nonce, session)

    def log_in(self, token: str) -> None:
        self.set_session = token
        # A fresh nonce with the new session: nothing rendered before the login stays valid.
        self.csrf_nonce, self.nonce_is_new = new_nonce(), True

    def log_out(self) -> None:
        self.clear_session = True

    def finish(self, response: Response) -> Response:
        """Applies the cookie changes of this visit to the response."""
        cookies, secure = self.cookies, self.settings.cookie_secure
        common: dict[str, Any] = {
            "path": "/",
            "secure": secure,
            "httponly": True,
            "samesite": "lax",
        }
        if self.set_session:
            response.set_cookie(
                cookies.session,
                self.set_session,
                max_age=session_max_age(self.set_session),
                **common,
            )
        elif self.clear_session:
            response.delete_cookie(cookies.session, **common)
        if self.nonce_is_new:
            # No max-age: the nonce lives as long as the browser session.
            response.set_cookie(cookies.csrf, self.csrf_nonce, **common)
        if self.next_flash:
            response.set_cookie(
                cookies.flash, self.next_flash, max_age=FLASH_COOKIE_SECONDS, **common
            )
        elif self.flash is not None and self.flash_shown:
            response.delete_cookie(cookies.flash, **common)
        # Pages depend on who is logged in: never store them in a shared or browser cache.
        response.headers["Cache-Control"] = "no-store"
        response.headers.update(self.extra_headers)
        return response


def _unverified_claims(token: str) -> dict[str, Any] | None:
    """The token's claims, read without verifying the signature (None if unreadable).

    The frontend does not need to verify the token, nor the users service to do it: every
    backend it is sent to verifies it offline (libs/auth). What the frontend reads here only
    decides what to show and when to ask for a new login.
    """
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, TypeError):
        return None
    return claims if isinstance(claims, dict) else None


def session_max_age(token: str) -> int | None:
    """Seconds until the token expires (plus grace), read from its claims without verifying."""
    claims = _unverified_claims(token)
    try:
        remaining = int(claims["exp"]) - int(time.time())  # type: ignore[index]
    except (KeyError, ValueError, TypeError):
        return None
    return max(0, remaining) + SESSION_COOKIE_GRACE_SECONDS


def session_username(token: str) -> str | None:
    """Who the session says is logged in, for the page's "Logged in as"; None when the token is
    unreadable or expired (then the visitor must log in again).

    Read from the token, not asked of the users service, so that every page but login and
    sign-up works while users is down (issue 14). The name is only shown: what a page does with
    the session (list, post, delete) is done by a backend that verifies the token, and a forged
    cookie could only show its own maker a name.
    """
    claims = _unverified_claims(token)
    if claims is None:
        return None
    username, expires = claims.get("username"), claims.get("exp")
    if not isinstance(username, str) or not username or not isinstance(expires, int | float):
        return None
    if isinstance(expires, bool) or expires <= time.time():
        return None
    return username


# A JWT in its compact form: three base64url parts. Bounded, so that no cookie can make us send
# a huge header to a backend.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
MAX_TOKEN_LENGTH = 4096


def plausible_token(value: str | None) -> str | None:
    """The session cookie's value if it could be one of our tokens, else None (no session).

    A browser sends back whatever a cookie was set to, by us or by anyone who could set one:
    a value with other characters (say, non-ASCII) cannot even go into the Authorization
    header of a backend call, and made every page a 500 (issue 14)."""
    if value and len(value) <= MAX_TOKEN_LENGTH and _TOKEN_SHAPE.fullmatch(value):
        return value
    return None


def get_settings(request: Request) -> FrontendSettings:
    settings: FrontendSettings = request.app.state.settings
    return settings


def get_visit(request: Request) -> Visit:
    settings = get_settings(request)
    cookies: CookieNames = request.app.state.cookie_names
    nonce = request.cookies.get(cookies.csrf)
    flash = request.cookies.get(cookies.flash)
    return Visit(
        request=request,
        settings=settings,
        cookies=cookies,
        signer=request.app.state.csrf_signer,
        session=plausible_token(request.cookies.get(cookies.session)),
        csrf_nonce=nonce or new_nonce(),
        nonce_is_new=not nonce,
        flash=flash if flash in FLASH_MESSAGES else (None if flash is None else ""),
    )


def get_users(request: Request) -> UsersClient:
    users: UsersClient = request.app.state.users
    return users


def get_thoughts(request: Request) -> ThoughtsClient:
    thoughts: ThoughtsClient = request.app.state.thoughts
    return thoughts


# The plain functions serve the code that calls them directly too (error pages).
SettingsDep = Annotated[FrontendSettings, from_request(get_settings)]
VisitDep = Annotated[Visit, from_request(get_visit)]
UsersDep = Annotated[UsersClient, from_request(get_users)]
ThoughtsDep = Annotated[ThoughtsClient, from_request(get_thoughts)]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def csrf_protect(request: Request) -> None:
    """Router dependency: every request that can change state must carry a valid token."""
    if request.method in SAFE_METHODS:
        return
    cookies: CookieNames = request.app.state.cookie_names
    signer: CsrfSigner = request.app.state.csrf_signer
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    token = None
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form(max_files=0, max_fields=16)
        value = form.get(CSRF_FIELD)
        token = value if isinstance(value, str) else None
    if not signer.is_valid(
        token,
        request.cookies.get(cookies.csrf),
        plausible_token(request.cookies.get(cookies.session)),
    ):
        raise CsrfRejected


def format_time(value: datetime) -> str:
    return value.strftime("%d %b %Y, %H:%M UTC")


TEMPLATES.filters["when"] = format_time


def render(
    visit: Visit,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    username: str | None = None,
) -> HTMLResponse:
    flash = FLASH_MESSAGES.get(visit.flash) if visit.flash else None
    visit.flash_shown = True
    page: dict[str, Any] = {
        "username": username,
        # Every form of the page carries the same hidden field: made once (Markup.format
        # escapes the values), not by a template macro per form.
        "csrf_input": Markup('<input type="hidden" name="{}" value="{}">').format(
            CSRF_FIELD, visit.csrf_token
        ),
        "flash": flash,
        "request_id": current_request_id(),
        "search": "",
        "errors": {},
        **(context or {}),
    }
    started = time.perf_counter()
    response = HTMLResponse(TEMPLATES.get_template(template).render(page), status_code=status_code)
    metrics: FrontendMetrics = visit.request.app.state.frontend_metrics
    metrics.rendered(template, status_code, time.perf_counter() - started)
    visit.finish(response)
    return response


def redirect(visit: Visit, url: str, *, flash: str | None = None) -> Response:
    """303 See Other: after a POST the browser follows with a GET (no resubmission on reload)."""
    visit.next_flash = flash
    return visit.finish(RedirectResponse(url, status_code=303))


def safe_next(value: str | None, default: str = "/") -> str:
    """Only local paths: `next` must never send a visitor to another site after login."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    return value


def login_url(next_path: str | None = None) -> str:
    if not next_path or next_path == "/":
        return "/login"
    return f"/login?next={quote(next_path, safe='/')}"
