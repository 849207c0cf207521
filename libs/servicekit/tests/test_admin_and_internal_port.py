"""Issue 14 items 11 and 13: admin routes need the admin token; the internal port's routes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

TOKEN = "test-admin-token-0123456789abcdef"


@pytest.fixture
def app_settings(example: Any, tmp_path: Any) -> Any:
    def make(**overrides: Any) -> Any:
        return example.ExampleSettings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}", **overrides
        )

    return make


@pytest.mark.parametrize("path", ["/admin/version/", "/%61dmin/version/", "/admin%2fversion/"])
async def test_admin_routes_need_the_admin_token(
    example: Any, start_app: Any, app_settings: Any, path: str
) -> None:
    client = await start_app(app_settings(admin_token=TOKEN))
    assert (await client.get(path)).status_code == 401
    wrong = {"Authorization": "Bearer not-the-admin-token-at-all"}
    assert (await client.get(path, headers=wrong)).status_code == 401
    right = {"Authorization": f"Bearer {TOKEN}"}
    assert (await client.get("/admin/version/", headers=right)).status_code == 200


async def test_internal_port_serves_operations_and_the_public_port_does_not(
    example: Any, app_settings: Any
) -> None:
    from asgi_lifespan import LifespanManager

    app = example.create_app(app_settings(port=8700, internal_port=8701))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc:8700") as public:
            for path in ("/metrics", "/docs", "/openapi.json", "/admin/version/"):
                assert (await public.get(path)).status_code == 404, path
            assert (await public.get("/healthz")).status_code == 200
        async with httpx.AsyncClient(transport=transport, base_url="http://svc:8701") as internal:
            for path in ("/metrics", "/openapi.json", "/admin/version/", "/healthz"):
                assert (await internal.get(path)).status_code == 200, path
