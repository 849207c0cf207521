"""The users and thoughts services, as this frontend sees them: plain HTTP clients of their APIs.

Every call goes through the kit's pooled client (`servicekit.pooled_http`, one per backend and
process, made by `main.create_app`: kept-alive connections, timeouts, bounded retries, the request
id forwarded as X-Request-ID, metrics and tracing). What can go wrong is turned into a few
exceptions the pages know how to show:

- `BackendUnavailable`: the service is down, slow or failing (5xx) -> the 503 page. It says
  whether the call may have reached the service (`reached`), and for a change, what could not
  be confirmed then (`unconfirmed`): a post that timed out may have been stored.
- `BackendRefused`: the service refused a request the page did not expect it to (4xx) -> a
  400 page: the request was wrong, the service is fine.
- `SessionExpired`: the service refused our session token (401) -> back to the login page.
- `FormError`: the service refused what the user typed -> the message next to the field.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from servicekit.pooled_http import (
    CallFailed,
    CallTimedOut,
    ConnectFailed,
    PooledHttpClient,
    PooledResponse,
)

log = logging.getLogger("frontend.backends")

USERS = "users"
THOUGHTS = "thoughts"


class BackendUnavailable(Exception):
    def __init__(self, service: str, reason: str, *, reached: bool = True) -> None:
        super().__init__(f"the {service} service {reason}")
        self.service = service
        self.reason = reason
        # False only when no connection was made: then the service saw nothing of the call.
        self.reached = reached
        # For a change: what we cannot know when the call reached the service but got no
        # answer (e.g. "whether your thought was saved"), and what the visitor can do about it.
        self.unconfirmed: str | None = None
        self.advice = ""

    def of_change(self, unconfirmed: str, advice: str) -> BackendUnavailable:
        self.unconfirmed, self.advice = unconfirmed, advice
        return self


class BackendRefused(Exception):
    """The service refused a request of ours (a 4xx the page did not expect): the request was
    wrong, the service is not down, and saying "unavailable" would send people away."""

    def __init__(self, service: str, status: int) -> None:
        super().__init__(f"the {service} service refused the request (HTTP {status})")
        self.service = service
        self.status = status


class SessionExpired(Exception):
    """The session token was refused: expired, or signed with a key that was retired."""


@dataclass
class FormError(Exception):
    """Messages for form fields ("" is the whole form), and Retry-After when throttled."""

    fields: dict[str, str] = field(default_factory=dict)
    retry_after: int | None = None


@dataclass(frozen=True)
class Thought:
    id: int
    username: str
    text: str
    timestamp: datetime

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Thought:
        timestamp = datetime.fromisoformat(str(data["timestamp"]).replace("Z", "+00:00"))
        if timestamp.tzinfo is None:
            timestamp = timestamp.replace(tzinfo=UTC)
        return cls(
            id=int(data["id"]),
            username=str(data["username"]),
            text=str(data["text"]),
            timestamp=timestamp.astimezone(UTC),
        )


@dataclass(frozen=True)
class ThoughtPage:
    thoughts: list[Thought]
    # The opaque cursor of the next (older) page, from the `Link: <...>; rel="next"` header.
    next_cursor: str | None


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _problem_fields(response: PooledResponse, default_field: str = "") -> dict[str, str]:
    """An RFC 9457 problem body as {field: message}."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    fields: dict[str, str] = {}
    if isinstance(body, dict):
        for error in body.get("errors") or []:
            if isinstance(error, dict) and error.get("message"):
                fields.setdefault(str(error.get("field", default_field)), str(error["message"]))
        if not fields and body.get("detail"):
            fields[default_field] = str(body["detail"])
    return fields or {default_field: f"the request was refused ({response.status_code})"}


def _retry_after(response: PooledResponse) -> int | None:
    try:
        return max(1, int(response.header("Retry-After") or ""))
    except ValueError:
        return None


def next_cursor(response: PooledResponse, parameter: str) -> str | None:
    """The cursor parameter of the RFC 8288 `rel="next"` link, if there is a next page."""
    url = response.link("next")
    if not url:
        return None
    values = parse_qs(urlsplit(url).query).get(parameter)
    return values[0] if values else None


class Backend:
    """One backend service, called through its own pooled client (made once per process)."""

    def __init__(self, client: PooledHttpClient) -> None:
        self.name = client.dependency
        self.client = client

    async def call(self, method: str, path: str, **kwargs: Any) -> PooledResponse:
        try:
            response = await self.client.request(method, path, **kwargs)
        except CallTimedOut as exc:
            reached = exc.reached
            reason = "did not answer in time" if reached else f"could not be reached ({exc})"
        except ConnectFailed as exc:
            reached, reason = False, f"could not be reached ({exc})"
        except CallFailed as exc:
            # The request may have been sent before the connection failed.
            reached, reason = True, f"could not be reached ({exc})"
        else:
            reached = True
            if response.status_code < 500:
                return response
            reason = f"failed (HTTP {response.status_code})"
        log.warning(
            "%s service unavailable: %s %s %s",
            self.name,
            method,
            path,
            reason,
            extra={"backend": self.name},
        )
        raise BackendUnavailable(self.name, reason, reached=reached)

    def unexpected(self, response: PooledResponse) -> BackendUnavailable | BackendRefused:
        """An answer the page did not expect: a 4xx is a refusal of what was asked (the 400 page),
        anything else means the service is not working (the 503 page)."""
        log.warning(
            "%s service answered %s %s with HTTP %d",
            self.name,
            response.method,
            response.path,
            response.status_code,
            extra={"backend": self.name},
        )
        if 400 <= response.status_code < 500:
            return BackendRefused(self.name, response.status_code)
        return BackendUnavailable(self.name, f"answered unexpectedly (HTTP {response.status_code})")


class UsersClient(Backend):
    async def login(self, username: str, password: str, client_address: str | None) -> str:
        """The session token; FormError on wrong credentials or throttling."""
        headers = {"X-Forwarded-For": client_address} if client_address else {}
        response = await self.call(
            "POST",
            "/api/login/",
            json={"username": username, "password": password},
            headers=headers,
        )
        if response.status_code == 200:
            authorized = str(response.json().get("Authorized", ""))
            scheme, _, token = authorized.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise self.unexpected(response)
            return token
        if response.status_code == 401:
            raise FormError({"password": "Wrong username or password."})
        if response.status_code == 429:
            wait = _retry_after(response)
            raise FormError({"password": throttled_message(wait)}, retry_after=wait)
        if response.status_code == 400:
            raise FormError(_problem_fields(response))
        raise self.unexpected(response)

    async def log_out(self, token: str) -> None:
        """Revokes the session's token at the users service, so that no service accepts it
        again; a token it already refuses (401) is as good as revoked."""
        response = await self.call("POST", "/api/logout/", headers=_bearer(token))
        if response.status_code not in (204, 401):
            raise self.unexpected(response)

    async def signup_enabled(self) -> bool:
        response = await self.call("GET", "/api/features/")
        if response.status_code != 200:
            raise self.unexpected(response)
        return bool(response.json().get("signup", False))

    async def sign_up(self, username: str, password: str) -> None:
        try:
            response = await self.call(
                "POST", "/api/users/", json={"username": username, "password": password}
            )
        except BackendUnavailable as exc:
            raise exc.of_change(
                "whether your account was created",
                "Try logging in with it in a moment: if that works, it was.",
            ) from None
        if response.status_code == 201:
            return
        if response.status_code == 409:
            raise FormError({"username": "That username is taken; choose another one."})
        if response.status_code == 403:
            raise FormError({"": "Sign-up is not available on this server."})
        if response.status_code == 400:
            raise FormError(_problem_fields(response))
        raise self.unexpected(response)


def throttled_message(wait: int | None) -> str:
    if wait is None:
        return "Too many failed logins. Wait a while before trying again."
    if wait < 120:
        return f"Too many failed logins. Try again in {wait} seconds."
    return f"Too many failed logins. Try again in {(wait + 59) // 60} minutes."


class ThoughtsClient(Backend):
    # Query parameters of the thoughts API (docs/architecture.md plus pagination).
    LIMIT = "limit"
    CURSOR = "cursor"
    SEARCH = "search"
    ORDER = ("order", "desc")

    def _page_params(self, limit: int, cursor: str | None) -> dict[str, str | int]:
        params: dict[str, str | int] = {self.LIMIT: limit, self.ORDER[0]: self.ORDER[1]}
        if cursor:
            params[self.CURSOR] = cursor
        return params

    def _page(self, response: PooledResponse) -> ThoughtPage:
        body = response.json()
        items = body if isinstance(body, list) else body.get("items", [])
        return ThoughtPage(
            thoughts=[Thought.from_api(item) for item in items],
            next_cursor=next_cursor(response, self.CURSOR),
        )

    async def mine(self, token: str, *, limit: int, cursor: str | None) -> ThoughtPage:
        response = await self.call(
            "GET",
            "/api/me/thoughts/",
            params=self._page_params(limit, cursor),
            headers=_bearer(token),
        )
        if response.status_code == 401:
            raise SessionExpired
        if response.status_code == 400 and cursor:
            raise FormError({"cursor": "That page link is no longer valid."})
        if response.status_code != 200:
            raise self.unexpected(response)
        return self._page(response)

    async def search(self, query: str, *, limit: int, cursor: str | None) -> ThoughtPage:
        params = self._page_params(limit, cursor)
        if query:
            params[self.SEARCH] = query
        response = await self.call("GET", "/api/thoughts/", params=params)
        if response.status_code == 400:
            raise FormError(_problem_fields(response, self.SEARCH))
        if response.status_code != 200:
            raise self.unexpected(response)
        return self._page(response)

    async def post(self, token: str, text: str, idempotency_key: str) -> Thought:
        """Posts the thought. The key makes repeating the post safe: the thoughts service
        stores one thought per key, so the kit's client may retry it and so may the visitor
        (the same form sent again carries the same key)."""
        try:
            response = await self.call(
                "POST",
                "/api/me/thoughts/",
                json={"text": text},
                headers={**_bearer(token), "Idempotency-Key": idempotency_key},
            )
        except BackendUnavailable as exc:
            raise exc.of_change(
                "whether your thought was saved",
                "Look for it among your thoughts before posting it again. Sending this same "
                "form again (Back, then Post) is safe: it will not be posted twice.",
            ) from None
        if response.status_code == 401:
            raise SessionExpired
        if response.status_code == 400:
            raise FormError(_problem_fields(response, "text"))
        if response.status_code == 422:
            # This form's key already posted another text (the form was edited after it was
            # sent); the page comes back with a fresh form.
            raise FormError({"text": "This form was already used for another thought: post again."})
        if response.status_code != 201:
            raise self.unexpected(response)
        return Thought.from_api(response.json())

    async def delete(self, token: str, thought_id: int) -> bool:
        """True when deleted, False when it was not there (already deleted, or not ours)."""
        try:
            response = await self.call(
                "DELETE", f"/api/me/thoughts/{thought_id}/", headers=_bearer(token)
            )
        except BackendUnavailable as exc:
            raise exc.of_change(
                "whether the thought was deleted",
                "Look at your thoughts in a moment: deleting it again is safe.",
            ) from None
        if response.status_code == 401:
            raise SessionExpired
        if response.status_code in (403, 404):
            return False
        if response.status_code not in (200, 204):
            raise self.unexpected(response)
        return True
