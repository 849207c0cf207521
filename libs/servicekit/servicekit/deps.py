"""Declarative FastAPI dependencies every service uses, so routes read like their contract."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

import httpx
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.db import Database
from servicekit.flags import Flags
from servicekit.metrics import Metrics

T = TypeVar("T")


def from_state(name: str) -> Any:
    """The dependency of one key of the app's state, for a one-line declaration:
    `MetricsDep = Annotated[Metrics, from_state("metrics")]` (the Annotated type is what the
    route sees; the app factory put the value there)."""

    # async, though it never awaits: FastAPI runs a plain `def` dependency in a worker thread,
    # a thread hop per request that costs more than the function. Said here, once.
    async def read(request: Request) -> Any:
        return getattr(request.app.state, name)

    read.__name__ = f"state_{name}"
    return Depends(read)


def from_request(build: Callable[[Request], T]) -> Any:
    """The dependency of a plain function of the request (which other code may also call
    directly), run on the event loop rather than in a worker thread (see from_state)."""

    async def run(request: Request) -> T:
        return build(request)

    run.__name__ = build.__name__
    return Depends(run)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    database: Database = request.app.state.db
    async with database.sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
HttpClientDep = Annotated[httpx.AsyncClient, from_state("http")]
MetricsDep = Annotated[Metrics, from_state("metrics")]
FlagsDep = Annotated[Flags, from_state("flags")]
