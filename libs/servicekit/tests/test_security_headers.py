"""Headers every response of every service carries (issue 14 item 13): nosniff always, HSTS
when the request came over HTTPS (browsers ignore it over plain HTTP)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from testkit import StartedApps


@pytest.mark.parametrize("path", ["/healthz", "/items/7", "/no-such-route", "/metrics"])
async def test_every_response_says_nosniff(client: Any, path: str) -> None:
    response = await client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "strict-transport-security" not in response.headers  # plain HTTP


async def test_over_https_every_response_carries_hsts(
    example: Any, make_settings: Callable[..., Any], started_apps: StartedApps
) -> None:
    client = await started_apps.client(
        example.create_app(make_settings()), base_url="https://example.test"
    )
    for path in ("/healthz", "/no-such-route"):
        response = await client.get(path)
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert int(response.headers["strict-transport-security"].split("=")[1]) >= 31536000
        assert response.headers["x-content-type-options"] == "nosniff"
