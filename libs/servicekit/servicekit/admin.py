"""Who may call `/admin/*`: the holder of the admin token, when one is configured.

The book's services trusted the network alone: whoever reached the port could create users. A
gateway rule on the raw path prefix is not enough either, since `/%61dmin/users/` and
`/admin%2fusers/` reach the same routes once decoded. So the kit checks every request whose
*decoded*, slash-collapsed path is under `/admin`, before routing, for every service:

- `ADMIN_TOKEN` / `ADMIN_TOKEN_FILE` set: the request must carry `Authorization: Bearer <token>`
  (compared in constant time), else 401. Compose and Kubernetes always set one.
- unset: admin routes stay open (what `make run`, on loopback, and the book's own tests need),
  and the service warns at start-up that they are unauthenticated.
"""

from __future__ import annotations

import hmac
import re
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from servicekit.problems import problem_response

ADMIN_PREFIX = "/admin"
_SLASHES = re.compile(r"/+")
_AUTHORIZATION = b"authorization"
MIN_ADMIN_TOKEN_LENGTH = 16


def normalise_path(path: str) -> str:
    """The decoded path with repeated slashes collapsed and letters lower-cased."""
    return _SLASHES.sub("/", path).lower()


def is_admin_path(path: str) -> bool:
    """True for `/admin` and below, however the path spells its slashes or letter case."""
    if "admin" not in path.lower():
        return False  # most requests: no spelling of /admin lacks the word itself
    normalised = normalise_path(path)
    return normalised == ADMIN_PREFIX or normalised.startswith(ADMIN_PREFIX + "/")


def bearer_token(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == _AUTHORIZATION:
            scheme, _, token = bytes(value).partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
            return None
    return None


def admin_headers(token: str | None) -> dict[str, str]:
    """What a client of another service's admin routes sends (the start-up version check)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def declare_admin_security(schema: dict[str, Any]) -> dict[str, Any]:
    """Marks every admin operation in the OpenAPI schema as needing the admin bearer token."""
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes["adminToken"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "The ADMIN_TOKEN (none needed while it is unset)",
    }
    for path, operations in schema.get("paths", {}).items():
        if is_admin_path(path):
            for operation in operations.values():
                operation["security"] = [{"adminToken": []}]
    return schema


class AdminGuardMiddleware:
    """Refuses admin requests without the admin token, when one is configured."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_admin_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.token is None:
            await self.app(scope, receive, send)
            return
        presented = bearer_token(scope)
        if presented is not None and hmac.compare_digest(presented, self.token):
            await self.app(scope, receive, send)
            return
        response = problem_response(
            401,
            "admin routes need `Authorization: Bearer <admin token>` (the ADMIN_TOKEN)",
            headers={"WWW-Authenticate": 'Bearer realm="admin"'},
        )
        await response(scope, receive, send)
