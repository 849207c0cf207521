"""The pages: home (my thoughts), search, login, logout, sign-up.

Every page works without JavaScript: links and plain forms, POST-redirect-GET after each change.
"""

from __future__ import annotations

import re
import uuid
from contextlib import suppress
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Path, Query
from starlette.responses import Response

from frontend_service.backends import BackendUnavailable, FormError, SessionExpired, UsersClient
from frontend_service.errors import error_page
from frontend_service.web import (
    ThoughtsDep,
    UsersDep,
    Visit,
    VisitDep,
    csrf_protect,
    login_url,
    redirect,
    render,
    safe_next,
    session_username,
)
from servicekit.text import is_visible, user_perceived_length

MAX_THOUGHT_LENGTH = 250
MAX_SEARCH_LENGTH = 200

router = APIRouter(dependencies=[Depends(csrf_protect)])

CursorParam = Annotated[str | None, Query(max_length=500)]
# No length limit of its own: the kit's body limit (64 KiB) bounds it, and thought_error then
# says how long the text is (a limit here answered "the form was not understood").
TextField = Annotated[str, Form()]
# The post form's Idempotency-Key: made with the form, so the same form sent twice (a retry
# after "we could not confirm") posts once. Anything else than what new_post_key() makes is
# replaced by a fresh key.
PostKeyField = Annotated[str, Form(max_length=100)]
_POST_KEY = re.compile(r"[0-9a-f]{32}")


def new_post_key() -> str:
    return uuid.uuid4().hex


ShortField = Annotated[str, Form(max_length=1_000)]


def _client_address(visit: Visit) -> str | None:
    """The browser's address, so the users service throttles failed logins per visitor."""
    return visit.request.client.host if visit.request.client else None


def thought_error(text: str) -> str | None:
    """The obvious mistakes, caught before calling the thoughts service (which has the last word:
    it trims whitespace at both ends, as here, and counts what is left the same way: in
    user-perceived characters, servicekit.text)."""
    trimmed = text.strip()
    if not trimmed:
        return "Write something first: a thought cannot be empty."
    if not is_visible(trimmed):
        return "Write something visible: this thought has only invisible characters."
    length = user_perceived_length(trimmed)
    if length > MAX_THOUGHT_LENGTH:
        return f"A thought can be at most {MAX_THOUGHT_LENGTH} characters; this one has {length}."
    return None


async def _home(
    visit: VisitDep,
    thoughts: ThoughtsDep,
    *,
    cursor: str | None = None,
    draft: str = "",
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    assert visit.session is not None
    username = session_username(visit.session)
    if username is None:
        raise SessionExpired
    try:
        page = await thoughts.mine(visit.session, limit=visit.settings.page_size, cursor=cursor)
    except FormError:
        # A stale or mangled page link: start again from the newest thoughts.
        return redirect(visit, "/")
    return render(
        visit,
        "home.html",
        {
            "page": page,
            "cursor": cursor,
            "draft": draft,
            "errors": errors or {},
            "max_length": MAX_THOUGHT_LENGTH,
            "post_key": new_post_key(),
        },
        status_code=status_code,
        username=username,
    )


@router.get("/", summary="Home: my thoughts, newest first")
async def home(visit: VisitDep, thoughts: ThoughtsDep, cursor: CursorParam = None) -> Response:
    if not visit.session:
        return redirect(visit, "/login")
    return await _home(visit, thoughts, cursor=cursor)


@router.post("/thoughts/", summary="Post a thought")
async def post_thought(
    visit: VisitDep, thoughts: ThoughtsDep, text: TextField = "", post_key: PostKeyField = ""
) -> Response:
    if not visit.session:
        return redirect(visit, login_url(), flash="login_required")
    problem = thought_error(text)
    if problem is None:
        key = post_key if _POST_KEY.fullmatch(post_key) else new_post_key()
        try:
            await thoughts.post(visit.session, text, key)
        except FormError as exc:
            problem = exc.fields.get("text") or next(iter(exc.fields.values()))
        else:
            return redirect(visit, "/", flash="posted")
    return await _home(visit, thoughts, draft=text, errors={"text": problem}, status_code=400)


# The thoughts service's ids are signed 64-bit integers; anything else names no thought.
ThoughtIdPath = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.post("/thoughts/{thought_id}/delete", summary="Delete one of my thoughts")
async def delete_thought(
    visit: VisitDep, thoughts: ThoughtsDep, thought_id: ThoughtIdPath
) -> Response:
    if not visit.session:
        return redirect(visit, login_url(), flash="login_required")
    deleted = await thoughts.delete(visit.session, thought_id)
    return redirect(visit, "/", flash="deleted" if deleted else "gone")


@router.get("/search", summary="Search everybody's thoughts (no login needed)")
async def search(
    visit: VisitDep,
    thoughts: ThoughtsDep,
    search: Annotated[str, Query(max_length=1_000)] = "",
    cursor: CursorParam = None,
) -> Response:
    username = session_username(visit.session) if visit.session else None
    if visit.session and username is None:
        # Searching needs no login: carry on as a visitor and forget the stale session.
        visit.log_out()
    query = search.strip()
    errors: dict[str, str] = {}
    page = None
    if len(query) > MAX_SEARCH_LENGTH:
        errors["search"] = f"Search for at most {MAX_SEARCH_LENGTH} characters."
    else:
        try:
            page = await thoughts.search(query, limit=visit.settings.page_size, cursor=cursor)
        except FormError as exc:
            if cursor and "cursor" in exc.fields:
                # A stale or mangled page link: start again from the newest matches.
                return redirect(visit, f"/search?{urlencode({'search': query})}")
            errors["search"] = exc.fields.get("search") or "That search could not be run."
    return render(
        visit,
        "search.html",
        {
            "page": page,
            "search": query,
            "cursor": cursor,
            "errors": errors,
            # The page's own search box replaces the top bar's: one box, with its errors.
            "own_search_form": True,
        },
        status_code=400 if errors else 200,
        username=username,
    )


async def _signup_offer(users: UsersClient) -> dict[str, bool]:
    """Whether the login page offers sign-up, and whether it must say that the users service is
    unavailable: the form still shows (and says so) rather than the page failing."""
    try:
        return {"signup": await users.signup_enabled(), "users_unavailable": False}
    except BackendUnavailable:
        return {"signup": False, "users_unavailable": True}


@router.get("/login", summary="The login form")
async def login_form(
    visit: VisitDep, users: UsersDep, next: Annotated[str, Query(max_length=2_000)] = "/"
) -> Response:
    return render(
        visit,
        "login.html",
        {"next": safe_next(next), "username_value": "", **await _signup_offer(users)},
    )


@router.post("/login", summary="Log in")
async def login(
    visit: VisitDep,
    users: UsersDep,
    username: ShortField = "",
    password: ShortField = "",
    next: Annotated[str, Form(max_length=2_000)] = "/",
) -> Response:
    errors: dict[str, str] = {}
    if not username.strip():
        errors["username"] = "Enter your username."
    if not password:
        errors["password"] = "Enter your password."  # noqa: S105 - a message
    if not errors:
        try:
            token = await users.login(username, password, _client_address(visit))
        except FormError as exc:
            errors = exc.fields
            if exc.retry_after:
                visit.extra_headers["Retry-After"] = str(exc.retry_after)
        else:
            visit.log_in(token)
            return redirect(visit, safe_next(next))
    return render(
        visit,
        "login.html",
        {
            "next": safe_next(next),
            "username_value": username,
            "errors": errors,
            **await _signup_offer(users),
        },
        status_code=429 if "Retry-After" in visit.extra_headers else 400,
    )


@router.post("/logout", summary="Log out")
async def logout(visit: VisitDep, users: UsersDep) -> Response:
    # The cookie goes even when the users service cannot revoke the token (backends.py logged
    # why): the token then stays valid until it expires, but this browser no longer holds it.
    if visit.session:
        with suppress(BackendUnavailable):
            await users.log_out(visit.session)
    visit.log_out()
    return redirect(visit, "/login", flash="logged_out")


@router.get("/signup", summary="The sign-up form (when the users service enables it)")
async def signup_form(visit: VisitDep, users: UsersDep) -> Response:
    if not await users.signup_enabled():
        return error_page(visit.request, 404, "Sign-up is not available on this server.")
    return render(visit, "signup.html", {"username_value": ""})


@router.post("/signup", summary="Create an account and log in")
async def signup(
    visit: VisitDep,
    users: UsersDep,
    username: ShortField = "",
    password: ShortField = "",
    password_again: ShortField = "",
) -> Response:
    if not await users.signup_enabled():
        return error_page(visit.request, 404, "Sign-up is not available on this server.")
    errors: dict[str, str] = {}
    if not username.strip():
        errors["username"] = "Choose a username."
    if len(password) < 8:
        errors["password"] = "Choose a password of at least 8 characters."  # noqa: S105
    elif password != password_again:
        errors["password_again"] = "The two passwords differ."  # noqa: S105
    if not errors:
        try:
            await users.sign_up(username, password)
            token = await users.login(username, password, _client_address(visit))
        except FormError as exc:
            errors = exc.fields
        else:
            visit.log_in(token)
            return redirect(visit, "/", flash="welcome")
    return render(
        visit, "signup.html", {"username_value": username, "errors": errors}, status_code=400
    )
