"""The HTTP API: the book's contract (docs/architecture.md), plus pagination and deleting one's own.

Lists are JSON arrays as in the book; paging travels in query parameters and the `Link` header
(servicekit.pagination), so that the book's clients, which know neither, keep working.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Annotated, Any

import orjson
from fastapi import (
    APIRouter,
    Depends,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    status,
)
from pydantic import AfterValidator

from mythoughts_auth import CurrentUser
from servicekit.bodies import body_openapi, form_or_json
from servicekit.driver import StatementTimeout
from servicekit.pagination import (
    LINK_HEADER_RESPONSE,
    PageDep,
    PageRequest,
    paginate,
    set_next_link,
)
from servicekit.problems import problem_openapi_response
from thoughts_service.dependencies import RepositoryDep
from thoughts_service.full_lists import Fetch, FullLists
from thoughts_service.metrics import ThoughtMetricsDep
from thoughts_service.models import IDEMPOTENCY_KEY_MAX, USERNAME_MAX
from thoughts_service.repository import Deletion, ThoughtRow, search_strategy
from thoughts_service.schemas import ThoughtCreate, ThoughtOut

api = APIRouter(tags=["thoughts"])
admin = APIRouter(tags=["admin"])

MAX_ID = 2**63 - 1  # ids are signed 64-bit on both databases
SEARCH_MAX = 1000


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


ThoughtId = Annotated[int, Path(ge=1, le=MAX_ID, description="The thought's id.")]
SearchParam = Annotated[
    str | None,
    Query(
        max_length=SEARCH_MAX,
        json_schema_extra={"pattern": "^[^\\x00]*$"},
        description="Only thoughts whose text contains this, ignoring case (Unicode case "
        "folding; every character, `%`, `_`, `*`, quotes, is literal). Empty: no filter.",
    ),
    AfterValidator(_no_nul),
]
NewThought = Annotated[ThoughtCreate, Depends(form_or_json(ThoughtCreate))]
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_KEY = re.compile(f"[!-~]{{1,{IDEMPOTENCY_KEY_MAX}}}")
IDEMPOTENCY_KEY_DOC = (
    f"With an `{IDEMPOTENCY_KEY_HEADER}` header (1 to {IDEMPOTENCY_KEY_MAX} visible ASCII "
    "characters, e.g. a random UUID) the post is safe to repeat, e.g. after a timeout: a later "
    "post by the same user with the same key stores nothing and answers 201 with the thought "
    "the first one made (`Idempotent-Replayed: true`); with another text, 422."
)


def idempotency_key(request: Request) -> str | None:
    """The post's Idempotency-Key, if it sent one; a malformed one is a 400.

    Read from the request rather than declared as a header parameter: Schemathesis (4.x) then
    takes the fixed bearer token of the schema test for a generated one on this operation.
    The description of the operation documents it instead.
    """
    value = request.headers.get(IDEMPOTENCY_KEY_HEADER)
    if value is not None and not _IDEMPOTENCY_KEY.fullmatch(value):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"{IDEMPOTENCY_KEY_HEADER} must be 1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters",
        )
    return value


Responses = dict[int | str, dict[str, Any]]
UNAUTHORIZED: Responses = {401: problem_openapi_response("Missing, invalid or expired token")}
NOT_FOUND: Responses = {404: problem_openapi_response("No thought has this id")}
LIST_RESPONSES: Responses = {200: LINK_HEADER_RESPONSE}


def _json(content: Any, status_code: int = 200) -> Response:
    """The body as ThoughtOut would serialize it (`...Z` timestamps), without building a model
    per row first: the rows come from our own database and need no validation. The routes
    still declare their response models, for the OpenAPI schema."""
    return Response(
        orjson.dumps(content, option=orjson.OPT_UTC_Z),
        status_code=status_code,
        media_type="application/json",
    )


def _full_lists(request: Request) -> FullLists | None:
    """The whole-list answer of LEGACY_COMPATIBILITY, when on and the request does not page."""
    full_lists: FullLists | None = getattr(request.app.state, "full_lists", None)
    return full_lists if full_lists is not None and full_lists.applies(request) else None


async def _listed(fetch: Fetch, page: PageRequest, request: Request) -> Response:
    full_lists = _full_lists(request)
    if full_lists is not None:
        return await full_lists.response(fetch, page.order)
    return _one_page(await fetch(page), page, request)


def _one_page(rows: Sequence[ThoughtRow], page: PageRequest, request: Request) -> Response:
    result = paginate(rows, page, key=lambda thought: thought.id)
    response = _json([thought.to_json() for thought in result.items])
    set_next_link(response, request, result)
    return response


@api.get(
    "/api/me/thoughts/",
    summary="List my thoughts",
    response_model=list[ThoughtOut],
    responses={**LIST_RESPONSES, **UNAUTHORIZED},
)
async def list_my_thoughts(
    username: CurrentUser,
    page: PageDep,
    thoughts: RepositoryDep,
    request: Request,
) -> Response:
    return await _listed(lambda batch: thoughts.list_by_user(username, batch), page, request)


@api.post(
    "/api/me/thoughts/",
    summary="Post a thought as the token's user",
    description=IDEMPOTENCY_KEY_DOC,
    status_code=status.HTTP_201_CREATED,
    response_model=ThoughtOut,
    openapi_extra=body_openapi(ThoughtCreate),
    responses={
        **UNAUTHORIZED,
        403: problem_openapi_response("The token's username cannot own thoughts"),
        413: problem_openapi_response("The body is too large"),
        415: problem_openapi_response("The body is neither JSON nor form-encoded"),
        422: problem_openapi_response("The Idempotency-Key was used for another text"),
    },
)
async def create_my_thought(
    username: CurrentUser,
    body: NewThought,
    thoughts: RepositoryDep,
    metrics: ThoughtMetricsDep,
    request: Request,
) -> Response:
    if len(username) > USERNAME_MAX or "\x00" in username:
        # Only a users service with different rules could sign such a token; refuse clearly
        # rather than fail in the database.
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"the token's username is not a valid username (1 to {USERNAME_MAX} characters)",
        )
    key = idempotency_key(request)
    created = await thoughts.create(username, body.text, idempotency_key=key)
    if not created.replayed:
        metrics.created.inc()
        return _json(created.thought.to_json(), status.HTTP_201_CREATED)
    if created.thought.text != body.text:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "this Idempotency-Key was already used for a thought with another text",
        )
    # The answer the first post got (or would have got): the same thought, stored once.
    response = _json(created.thought.to_json(), status.HTTP_201_CREATED)
    response.headers["Idempotent-Replayed"] = "true"
    return response


@api.delete(
    "/api/me/thoughts/{thought_id}/",
    summary="Delete one of my thoughts",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        **UNAUTHORIZED,
        403: problem_openapi_response("The thought belongs to someone else"),
        **NOT_FOUND,
    },
)
async def delete_my_thought(
    username: CurrentUser, thought_id: ThoughtId, thoughts: RepositoryDep
) -> Response:
    outcome = await thoughts.delete_owned(thought_id, username)
    if outcome is Deletion.NOT_FOUND:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"thought {thought_id} does not exist")
    if outcome is Deletion.NOT_OWNER:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"thought {thought_id} belongs to another user"
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@api.get(
    "/api/thoughts/",
    summary="List or search everybody's thoughts",
    response_model=list[ThoughtOut],
    responses={
        **LIST_RESPONSES,
        503: problem_openapi_response("The search took too long (a one or two letter search)"),
    },
)
async def list_thoughts(
    page: PageDep,
    thoughts: RepositoryDep,
    metrics: ThoughtMetricsDep,
    request: Request,
    search: SearchParam = None,
) -> Response:
    if search:
        strategy = search_strategy(search).value
        metrics.searches.labels(strategy).inc()
        started = time.perf_counter()
        try:
            return await _listed(lambda batch: thoughts.search(search, batch), page, request)
        except StatementTimeout:
            # Only a search shorter than a trigram can get here at realistic sizes: it walks
            # the table for a rare pair of characters. Answering nothing beats holding a
            # connection (or, on SQLite, the event loop) for seconds.
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "the search took too long; a longer search text is answered from the index",
                headers={"Retry-After": "1"},
            ) from None
        finally:
            metrics.search_latency.labels(strategy).observe(time.perf_counter() - started)
    return await _listed(thoughts.list_all, page, request)


@api.get(
    "/api/thoughts/{thought_id}/",
    summary="Get one thought",
    response_model=ThoughtOut,
    responses=NOT_FOUND,
)
async def get_thought(thought_id: ThoughtId, thoughts: RepositoryDep) -> Response:
    thought = await thoughts.get(thought_id)
    if thought is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"thought {thought_id} does not exist")
    return _json(thought.to_json())


@admin.delete(
    "/admin/thoughts/{thought_id}/",
    summary="Delete any thought (internal)",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=NOT_FOUND,
)
async def delete_thought(thought_id: ThoughtId, thoughts: RepositoryDep) -> Response:
    if not await thoughts.delete(thought_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"thought {thought_id} does not exist")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
