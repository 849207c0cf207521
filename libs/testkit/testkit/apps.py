"""Apps started in process, lifespan included, each with an HTTP client."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import httpx
from asgi_lifespan import LifespanManager


class StartedApps:
    """Runs apps in process, lifespan included, and hands out clients; closes all at the end."""

    def __init__(self) -> None:
        self._stack = AsyncExitStack()
        self._apps: dict[int, Any] = {}  # id(client) -> the started app it calls

    async def client(
        self,
        app: Any,
        *,
        base_url: str = "http://service.test",
        client_address: tuple[str, int] = ("203.0.113.7", 4321),
    ) -> httpx.AsyncClient:
        manager = await self._stack.enter_async_context(LifespanManager(app))
        return await self._client_of(manager.app, base_url, client_address)

    async def peer(
        self, client: httpx.AsyncClient, client_address: tuple[str, int]
    ) -> httpx.AsyncClient:
        """Another client of the app that `client` calls (same state), from another address."""
        return await self._client_of(self._apps[id(client)], str(client.base_url), client_address)

    async def _client_of(
        self, app: Any, base_url: str, client_address: tuple[str, int]
    ) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=client_address)
        # Entered after its app, so closed before it: clients first, then lifespans, in reverse.
        client = await self._stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url=base_url)
        )
        self._apps[id(client)] = app
        return client

    async def aclose(self) -> None:
        await self._stack.aclose()
