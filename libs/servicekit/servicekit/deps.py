"""Declarative FastAPI dependencies every service uses, so routes read like their contract."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.db import Database
from servicekit.flags import Flags
from servicekit.metrics import Metrics

# Every dependency here is `async def`, even those that never await: FastAPI runs a plain `def`
# dependency in a worker thread, a thread hop per request that costs more than the function.


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    database: Database = request.app.state.db
    async with database.sessionmaker() as session:
        yield session


async def get_http_client(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.http
    return client


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_flags(request: Request) -> Flags:
    flags: Flags = request.app.state.flags
    return flags


SessionDep = Annotated[AsyncSession, Depends(get_session)]
HttpClientDep = Annotated[httpx.AsyncClient, Depends(get_http_client)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
FlagsDep = Annotated[Flags, Depends(get_flags)]
