"""Per-request context shared by logging, the HTTP client and error handlers."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
# Accept what load balancers and clients commonly send (UUIDs, hex, base64-ish tokens) and
# nothing that could inject into logs or headers.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:+/=-]{1,128}$")

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(candidate: str | None) -> str:
    """Keeps a caller's request id when it is safe, otherwise makes a new one."""
    # fullmatch: with match(), `$` also matches before a trailing newline ("id\n" passed).
    if candidate and _VALID_REQUEST_ID.fullmatch(candidate):
        return candidate
    return new_request_id()


def current_request_id() -> str | None:
    return request_id_var.get()
