"""FastAPI's documentation routes go after the service's own (servicekit.app.docs_routes_last),
unless a route of the service could take a documentation path: every request reaches the route
it reached before, and the documentation is still served."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI

from servicekit.app import docs_routes_last

DOCS = ["/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"]


def paths(app: FastAPI) -> list[str]:
    return [getattr(route, "path", "") for route in app.router.routes]


async def test_the_services_routes_come_first_and_the_docs_are_still_served(
    start_app: Callable[..., Any], make_settings: Callable[..., Any], example: Any
) -> None:
    app = example.create_app(make_settings())
    assert paths(app)[-4:] == DOCS
    assert paths(app)[:4] == ["/healthz", "/readyz", "/metrics", "/admin/version/"]

    client: httpx.AsyncClient = await start_app(make_settings())
    assert (await client.get("/openapi.json")).json()["info"]["title"]
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/redoc")).status_code == 200
    assert (await client.get("/healthz")).status_code == 200


def test_a_route_that_could_take_a_docs_path_keeps_the_order() -> None:
    app = FastAPI()

    @app.get("/{page}")
    async def page(page: str) -> dict[str, str]:
        return {"page": page}

    before = paths(app)
    docs_routes_last(app)
    assert paths(app) == before
    assert paths(app)[:4] == DOCS  # /docs still answered by the documentation, as before
