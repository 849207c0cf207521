"""Keyset (cursor) pagination for list endpoints, with RFC 8288 `Link: <...>; rel="next"`.

A page is "the next `limit` rows after the last key the client saw", never "skip N rows":

- it costs the same on page 1 and page 10,000 (an index range scan, no OFFSET walking);
- rows inserted or deleted between two fetches can neither repeat a row nor skip one, as long as
  the key is unique, never reused, and committed in key order (see the service's insert path).

The query parameters every list endpoint takes:

- `limit`: the page size, 1 or more. Absent: the service's default page size. Above the service's
  maximum it is *clamped* to the maximum, not refused: a client cannot know a deployment's cap in
  advance, and a client that follows the `Link` header still reaches every row, only in more pages.
- `order`: `asc` (the default, oldest first) or `desc` (newest first).
- `cursor`: where to continue, taken from the previous page's `Link` header. It is opaque: the
  unpadded urlsafe-base64 of the last key as a signed 64-bit integer, always 11 characters. Every
  11-character urlsafe-base64 string is a valid position (an unknown position simply continues
  from there), anything else is answered 400.

A page that may have a successor carries `Link: </same/path?same=params&cursor=...>; rel="next"`
(a path-absolute reference, resolved against the request URL, so it survives any gateway host
name). The last page has no `Link` header.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar
from urllib.parse import quote, urlencode

from fastapi import Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError

Order = Literal["asc", "desc"]
T = TypeVar("T")

CURSOR_PATTERN = r"^[A-Za-z0-9_-]{11}$"
_CURSOR = re.compile(CURSOR_PATTERN)
_KEY_BYTES = 8


@dataclass(frozen=True)
class PageLimits:
    """A service's page sizes; put one in `app.state.page_limits` (ServiceSpec.extra_state)."""

    default: int = 20
    maximum: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.default <= self.maximum:
            raise ValueError(
                f"the default page size ({self.default}) must be between 1 and the maximum "
                f"page size ({self.maximum})"
            )


@dataclass(frozen=True)
class PageRequest:
    """What the client asked for, validated: `after` is the decoded cursor (None: first page)."""

    limit: int
    order: Order = "asc"
    after: int | None = None

    @property
    def fetch_limit(self) -> int:
        """Rows to fetch: one more than the page, to know whether a next page exists."""
        return self.limit + 1


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(key: int) -> str:
    raw = key.to_bytes(_KEY_BYTES, "big", signed=True)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> int:
    """The key a cursor stands for; ValueError with a readable reason when it is not a cursor."""
    if not _CURSOR.fullmatch(cursor):  # match(): `$` also matches before a final "\n"
        raise ValueError("not a page cursor: use the cursor of the previous page's Link header")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=")
    except binascii.Error:  # unreachable for strings matching the pattern; kept as a guard
        raise ValueError("not a page cursor: use the previous page's Link header") from None
    return int.from_bytes(raw, "big", signed=True)


def _invalid_cursor(cursor: str, reason: str) -> RequestValidationError:
    # Raised as a validation error so that it gets the same 400 problem+json naming the field.
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", "cursor"), "msg": reason, "input": cursor}]
    )


LimitParam = Annotated[
    int | None,
    Query(
        ge=1,
        description=(
            "Page size. Defaults to the service's default page size; values above the service's "
            "maximum page size are clamped to that maximum (follow the Link header for the rest)."
        ),
    ),
]
OrderParam = Annotated[
    Order,
    Query(description="`asc`: by id ascending, oldest first (default). `desc`: newest first."),
]
CursorParam = Annotated[
    str | None,
    Query(
        # In the schema only: a mismatch is reported by page_request with a readable reason.
        json_schema_extra={"pattern": CURSOR_PATTERN},
        description=(
            "Opaque position to continue from, copied from the previous page's "
            '`Link: <...>; rel="next"` header.'
        ),
    ),
]


async def page_request(
    request: Request,
    limit: LimitParam = None,
    order: OrderParam = "asc",
    cursor: CursorParam = None,
) -> PageRequest:
    """FastAPI dependency turning `limit`, `order` and `cursor` into a PageRequest.

    `async def` although it never awaits: FastAPI runs a plain `def` dependency in a worker
    thread, a thread hop on every request that costs far more than the function itself.
    """
    limits: PageLimits = getattr(request.app.state, "page_limits", None) or PageLimits()
    after = None
    if cursor is not None:
        try:
            after = decode_cursor(cursor)
        except ValueError as exc:
            raise _invalid_cursor(cursor, str(exc)) from None
    size = limits.default if limit is None else min(limit, limits.maximum)
    return PageRequest(limit=size, order=order, after=after)


PageDep = Annotated[PageRequest, Depends(page_request)]


def paginate(rows: Sequence[T], page: PageRequest, key: Callable[[T], int]) -> Page[T]:
    """Cuts rows fetched with `LIMIT page.fetch_limit` into the page and the next cursor."""
    items = list(rows[: page.limit])
    has_more = len(rows) > page.limit and bool(items)
    return Page(items, encode_cursor(key(items[-1])) if has_more else None)


def next_page_url(request: Request, cursor: str) -> str:
    """The request's own path and query, with `cursor` replaced: a path-absolute reference."""
    params = [
        (name, value) for name, value in request.query_params.multi_items() if name != "cursor"
    ]
    params.append(("cursor", cursor))
    return f"{quote(request.url.path)}?{urlencode(params)}"


def set_next_link(response: Response, request: Request, page: Page[Any]) -> None:
    if page.next_cursor is not None:
        response.headers["Link"] = f'<{next_page_url(request, page.next_cursor)}>; rel="next"'


# For a list endpoint's `responses={200: LINK_HEADER_RESPONSE}` in OpenAPI.
LINK_HEADER_RESPONSE: dict[str, Any] = {
    "description": "One page. When more rows may follow, the Link header points to the next page.",
    "headers": {
        "Link": {
            "description": 'RFC 8288 link to the next page: `</path?...&cursor=...>; rel="next"`; '
            "absent on the last page.",
            "schema": {"type": "string"},
        }
    },
}
