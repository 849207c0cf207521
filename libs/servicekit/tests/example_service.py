"""A tiny service built from the kit, the way real services are, for the kit's own tests.

`create_app()` with no argument reads its settings from the environment, so the same factory
serves in-process tests and the real server process (`run_example.py`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import text

from servicekit import (
    HttpClientDep,
    ServiceSettings,
    ServiceSpec,
    SessionDep,
    body_openapi,
    create_service_app,
    form_or_json,
    load_settings,
)
from servicekit.pagination import (
    LINK_HEADER_RESPONSE,
    PageDep,
    PageLimits,
    paginate,
    set_next_link,
)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "example_migrations"
PACKAGE_VERSION = "0.7.0"
# What /numbers lists: rows whose keys are 1..25.
NUMBERS = tuple(range(1, 26))
PAGE_LIMITS = PageLimits(default=10, maximum=20)

log = logging.getLogger("example")


class ExampleSettings(ServiceSettings):
    service_name: str = "example"
    # Where /call-downstream sends its request (another instance of this service).
    downstream_url: str = ""


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=50)


class Credentials(BaseModel):
    username: str = Field(min_length=1)
    password: str = Field(min_length=8)


router = APIRouter()


@router.get("/items/{item_id}")
async def get_item(item_id: int) -> dict[str, int]:
    return {"item_id": item_id}


@router.get("/boom")
async def boom() -> dict[str, str]:
    raise RuntimeError("kaboom: internal detail that must stay in the log")


@router.post("/notes", status_code=201, openapi_extra=body_openapi(NoteIn))
async def create_note(note: Annotated[NoteIn, Depends(form_or_json(NoteIn))]) -> dict[str, str]:
    return {"text": note.text}


@router.post("/login", openapi_extra=body_openapi(Credentials))
async def login(
    credentials: Annotated[Credentials, Depends(form_or_json(Credentials))],
) -> dict[str, str]:
    log.info("login for %s", credentials.username)
    return {"username": credentials.username}


@router.get("/whoami")
async def whoami(request: Request) -> dict[str, str | None]:
    """The caller's address and scheme as the kit sees them (X-Forwarded-* applied)."""
    return {"client": request.client.host if request.client else None, "scheme": request.url.scheme}


@router.get("/sync-log")
def sync_log() -> dict[str, str]:
    """A sync route runs in a worker thread; its log lines must still carry the request id."""
    log.info("logged from a worker thread")
    return {"status": "logged"}


@router.get("/worker")
async def worker() -> dict[str, int]:
    """Which worker process answered: the multi-worker shutdown test must see each one."""
    return {"pid": os.getpid()}


@router.get("/slow")
async def slow(seconds: float = 1.5) -> dict[str, float]:
    log.info("slow request started")
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@router.get("/echo-request-id")
async def echo_request_id(request: Request) -> dict[str, str | None]:
    """What this service received as X-Request-ID, before the kit replaced or generated one."""
    return {"received": request.headers.get("x-request-id")}


@router.get("/call-downstream")
async def call_downstream(request: Request, client: HttpClientDep) -> dict[str, str | None]:
    settings: ExampleSettings = request.app.state.settings
    response = await client.get(f"{settings.downstream_url}/echo-request-id")
    received: str | None = response.json()["received"]
    return {"downstream_received": received}


@router.post("/db/notes", status_code=201)
async def store_note(note: NoteIn, session: SessionDep) -> dict[str, int]:
    await session.execute(text("INSERT INTO notes (text) VALUES (:text)"), {"text": note.text})
    await session.commit()
    count = (await session.execute(text("SELECT COUNT(*) FROM notes"))).scalar_one()
    return {"count": int(count)}


@router.get("/numbers", responses={200: LINK_HEADER_RESPONSE})
async def list_numbers(page: PageDep, request: Request, response: Response) -> list[int]:
    """Keyset pagination over NUMBERS, the way a service pages over its table."""
    if page.order == "asc":
        rows = [n for n in NUMBERS if page.after is None or n > page.after]
    else:
        rows = [n for n in reversed(NUMBERS) if page.after is None or n < page.after]
    result = paginate(rows[: page.fetch_limit], page, key=lambda n: n)
    set_next_link(response, request, result)
    return result.items


def create_app(settings: ExampleSettings | None = None) -> FastAPI:
    settings = settings or load_settings(ExampleSettings)
    return create_service_app(
        settings,
        ServiceSpec(
            title="Example",
            description="The kit's test service",
            package_version=PACKAGE_VERSION,
            routers=[router],
            migrations_dir=MIGRATIONS_DIR,
            extra_state={"page_limits": PAGE_LIMITS},
        ),
    )
