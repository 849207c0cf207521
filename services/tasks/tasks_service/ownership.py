"""Whose list a request acts on: the shared list (the tutorial's), or the token owner's own.

- No `Authorization` header: the shared list, as the tutorial's app had only that one; with
  TASKS_REQUIRE_TOKEN=true, a 401 instead.
- A valid MyThoughts bearer token (verified by libs/auth, as the thoughts service does): the
  token's user's own list, which nobody else can see, change or empty.
- A header that is present but not a valid token: 401. A client that tried to authenticate
  must learn that it failed rather than silently land in the shared list.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mythoughts_auth.dependencies import REALM, current_username
from tasks_service.models import OWNER_MAX, SHARED_LIST

BEARER_SCHEME = "MyThoughtsBearer"
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name=BEARER_SCHEME,
    bearerFormat="JWT",
    description="Optional: an RS256 access token of the users service (`POST /api/login/`). "
    "With it, the routes act on your own list; without it, on the shared list.",
)
_Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


async def list_owner(request: Request, _credentials: _Credentials = None) -> str:
    """The owner of the list this request acts on (SHARED_LIST for the shared one).

    `_credentials` is unused: it puts the bearer scheme in the OpenAPI schema. The header is
    parsed and verified by libs/auth, so that every failure gets its 401 and challenge.
    """
    require_token: bool = request.app.state.require_token
    if request.headers.get("authorization") is None and not require_token:
        return SHARED_LIST
    if getattr(request.app.state, "token_verifier", None) is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "this tasks service verifies no tokens (neither AUTH_JWKS_URL nor "
            "AUTH_PUBLIC_KEYS_DIR is set): send no Authorization header to use the shared list",
            headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'},
        )
    username = await current_username(request)
    if not username or len(username) > OWNER_MAX or "\x00" in username:
        # Only a users service with other rules could sign such a token: refuse it clearly
        # rather than fail in the database.
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"the token's username is not a valid username (1 to {OWNER_MAX} characters)",
        )
    return username


ListOwner = Annotated[str, Depends(list_owner)]
