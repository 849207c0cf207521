"""Prometheus RED metrics at /metrics, labelled by route template so label sets stay bounded."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from servicekit.metrics import Metrics

Labels = tuple[str, str, str]


async def scrape(client: httpx.AsyncClient) -> dict[str, dict[Labels, float]]:
    """{sample name: {(route, method, status): value}} for the HTTP metrics."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name.startswith("http_request") and "le" not in sample.labels:
                labels = sample.labels
                key = (labels["route"], labels["method"], labels["status"])
                samples.setdefault(sample.name, {})[key] = sample.value
    return samples


async def test_requests_are_counted_and_timed_by_route_template(
    client: httpx.AsyncClient,
) -> None:
    for item_id in (1, 2, 3):
        assert (await client.get(f"/items/{item_id}")).status_code == 200
    assert (await client.get("/items/x")).status_code == 400

    samples = await scrape(client)

    counts = samples["http_requests_total"]
    assert counts[("/items/{item_id}", "GET", "200")] == 3.0
    assert counts[("/items/{item_id}", "GET", "400")] == 1.0
    assert samples["http_request_duration_seconds_count"][("/items/{item_id}", "GET", "200")] == 3
    assert samples["http_request_duration_seconds_sum"][("/items/{item_id}", "GET", "200")] > 0
    assert not [key for key in counts if key[0].startswith("/items/") and "{" not in key[0]]


async def test_a_thousand_raw_paths_make_one_series(client: httpx.AsyncClient) -> None:
    for item_id in range(1000):
        await client.get(f"/items/{item_id}")

    counts = (await scrape(client))["http_requests_total"]

    item_series = {key: value for key, value in counts.items() if key[0].startswith("/items")}
    assert item_series == {("/items/{item_id}", "GET", "200"): 1000.0}


async def test_unmatched_paths_share_one_route_label(client: httpx.AsyncClient) -> None:
    for number in range(50):
        assert (await client.get(f"/scan/{number}/wp-admin.php")).status_code == 404

    counts = (await scrape(client))["http_requests_total"]

    assert counts[("unmatched", "GET", "404")] == 50.0
    assert not [key for key in counts if "scan" in key[0]]


async def test_the_documentation_pages_are_labelled_by_their_route(
    client: httpx.AsyncClient,
) -> None:
    # FastAPI's own pages are plain Starlette routes, which do not put themselves in the scope.
    assert (await client.get("/openapi.json")).status_code == 200
    assert (await client.get("/docs")).status_code == 200

    counts = (await scrape(client))["http_requests_total"]

    assert counts[("/openapi.json", "GET", "200")] == 1.0
    assert counts[("/docs", "GET", "200")] == 1.0
    assert ("unmatched", "GET", "200") not in counts


async def test_unknown_methods_are_labelled_other(client: httpx.AsyncClient) -> None:
    for method in ("PROPFIND", "BREW", "MKCOL"):
        assert (await client.request(method, "/items/1")).status_code == 405
    assert (await client.request("PATCH", "/items/1")).status_code == 405

    counts = (await scrape(client))["http_requests_total"]

    assert counts[("/items/{item_id}", "OTHER", "405")] == 3.0
    assert counts[("/items/{item_id}", "PATCH", "405")] == 1.0
    assert not [key for key in counts if key[1] in {"PROPFIND", "BREW", "MKCOL"}]


async def test_an_unexpected_error_is_counted_as_500(client: httpx.AsyncClient) -> None:
    assert (await client.get("/boom")).status_code == 500
    counts = (await scrape(client))["http_requests_total"]
    assert counts[("/boom", "GET", "500")] == 1.0


def test_each_app_has_its_own_registry_and_business_counters() -> None:
    first, second = Metrics("one"), Metrics("two")
    first.observe("/a", "GET", 200, 0.01)
    created = first.counter("thoughts_created_total", "Thoughts created.", ("source",))
    created.labels("api").inc(2)

    assert b'http_requests_total{method="GET",route="/a",status="200"} 1.0' in first.render()
    assert b'thoughts_created_total{source="api"} 2.0' in first.render()
    assert b'route="/a"' not in second.render()
    assert b"thoughts_created_total" not in second.render()
