"""FastAPI dependencies turning ``Authorization: Bearer <token>`` into a username.

Routes declare what they need and read like their contract::

    @router.get("/api/me/thoughts/")
    async def my_thoughts(username: CurrentUser) -> list[ThoughtOut]: ...

The app provides the verifier once, at start-up: ``app.state.token_verifier = TokenVerifier(...)``.

Errors are always our own 401s (RFC 6750 challenges), never FastAPI's default 403: the bearer
scheme object below is used only so that the OpenAPI schema documents the security scheme.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mythoughts_auth.revocation import RevocationUnavailable
from mythoughts_auth.verify import InvalidToken, TokenVerifier, VerifiedToken

REALM = "mythoughts"

_bearer_scheme = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="RS256 access token issued by the users service (POST /api/login/).",
)

# RFC 6750 b64token; JWTs only ever use a subset of it (base64url and dots).
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

# RFC 6750 error_description may not contain '"' or '\'; reasons never do, but a header is no
# place to find out otherwise.
_UNSAFE_IN_QUOTES = re.compile(r'["\\\x00-\x1f\x7f-\U0010ffff]')

_BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer_scheme)]


def parse_bearer(authorization_header: str | None) -> str:
    """Extract the token from an ``Authorization`` header value, or raise :class:`InvalidToken`.

    The scheme is case-insensitive (RFC 7235); the token must be a single b64token.
    """
    if authorization_header is None or not authorization_header.strip():
        raise InvalidToken("missing authorization header")
    scheme, _, credentials = authorization_header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise InvalidToken("authorization scheme must be Bearer")
    token = credentials.lstrip(" ")
    if not token:
        raise InvalidToken("missing bearer token")
    if not _B64TOKEN.fullmatch(token):
        # Also catches whitespace inside the token, e.g. two values glued together.
        raise InvalidToken("malformed bearer token")
    return token


async def current_username(request: Request, _credentials: _BearerCredentials = None) -> str:
    """The username of a verified bearer token; 401 otherwise.

    ``_credentials`` is unused: it is there so that OpenAPI shows the bearer security scheme.
    The raw header is parsed by :func:`parse_bearer` so that every failure gets our own answer.
    """
    return (await _authenticate(request, request.headers.get("authorization"))).username


async def current_token(request: Request, _credentials: _BearerCredentials = None) -> VerifiedToken:
    """The verified bearer token itself (its claims: ``jti``, ``exp`` ...); 401 otherwise."""
    return await _authenticate(request, request.headers.get("authorization"))


async def optional_username(
    request: Request, _credentials: _BearerCredentials = None
) -> str | None:
    """Like :func:`current_username`, but ``None`` when no Authorization header was sent at all.

    A header that is present but wrong is still a 401: a client that tried to authenticate
    must learn that it failed instead of silently being treated as anonymous.
    """
    header = request.headers.get("authorization")
    if header is None:
        return None
    return (await _authenticate(request, header)).username


CurrentUser = Annotated[str, Depends(current_username)]
CurrentToken = Annotated[VerifiedToken, Depends(current_token)]
OptionalUser = Annotated[str | None, Depends(optional_username)]


async def _authenticate(request: Request, header: str | None) -> VerifiedToken:
    try:
        token = parse_bearer(header)
        return await _verifier(request).verify(token)
    except InvalidToken as exc:
        raise _unauthorized(exc.reason, attempted_bearer=_is_bearer_attempt(header)) from exc
    except RevocationUnavailable:
        # Whether the token was revoked cannot be known now: never let it through.
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="cannot check tokens against the revocation list now",
            headers={"Retry-After": "5"},
        ) from None


def _verifier(request: Request) -> TokenVerifier:
    verifier = getattr(request.app.state, "token_verifier", None)
    if not isinstance(verifier, TokenVerifier):
        # A deployment bug, not the client's fault: let it surface as a 500.
        raise RuntimeError("app.state.token_verifier must be set to a TokenVerifier at start-up")
    return verifier


def _is_bearer_attempt(header: str | None) -> bool:
    return header is not None and header.strip().partition(" ")[0].lower() == "bearer"


def _unauthorized(reason: str, *, attempted_bearer: bool) -> HTTPException:
    if attempted_bearer:
        description = _UNSAFE_IN_QUOTES.sub("?", reason)
        challenge = f'Bearer error="invalid_token", error_description="{description}"'
    else:
        # RFC 6750 section 3.1: a request with no credentials, or credentials for another
        # scheme, gets a challenge without an error code.
        challenge = f'Bearer realm="{REALM}"'
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=reason,
        headers={"WWW-Authenticate": challenge},
    )
