"""The kit's HTTP client: timeouts, bounded retries (only where repeating is safe)."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import httpx
import pytest

from servicekit import http as http_module
from servicekit.http import RetryTransport, create_http_client
from testkit import free_port


class Recorder:
    """A MockTransport handler answering a scripted sequence of statuses (or errors)."""

    def __init__(self, *outcomes: int | Exception) -> None:
        self.outcomes = list(outcomes)
        self.methods: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.methods.append(request.method)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return httpx.Response(outcome, text=f"answer {len(self.methods)}")


def client_for(recorder: Recorder, retries: int = 2) -> httpx.AsyncClient:
    return create_http_client(
        base_url="http://downstream.test", retries=retries, transport=httpx.MockTransport(recorder)
    )


async def test_get_is_retried_on_503_up_to_the_bound_then_the_last_answer_returned() -> None:
    recorder = Recorder(503)
    async with client_for(recorder, retries=2) as client:
        response = await client.get("/thing")

    assert response.status_code == 503
    assert response.text == "answer 3"
    assert recorder.methods == ["GET", "GET", "GET"]


async def test_a_503_with_retry_after_is_the_services_answer_and_not_retried() -> None:
    """Issue 14: the frontend repeated each "the search took too long" twice, tripling the
    load of an attack. A 503 that says when to come back is returned as it is."""
    calls: list[str] = []

    def too_long(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return httpx.Response(503, headers={"Retry-After": "1"}, json={"detail": "too long"})

    async with create_http_client(
        base_url="http://downstream.test", retries=2, transport=httpx.MockTransport(too_long)
    ) as client:
        response = await client.get("/api/thoughts/", params={"search": "the and of"})

    assert response.status_code == 503
    assert calls == ["GET"]


async def test_get_retry_stops_at_the_first_success() -> None:
    recorder = Recorder(502, 504, 200)
    async with client_for(recorder, retries=5) as client:
        response = await client.get("/thing")

    assert (response.status_code, response.text) == (200, "answer 3")
    assert len(recorder.methods) == 3


async def test_zero_retries_means_one_attempt() -> None:
    recorder = Recorder(503)
    async with client_for(recorder, retries=0) as client:
        assert (await client.get("/thing")).status_code == 503
    assert recorder.methods == ["GET"]


@pytest.mark.parametrize("status", [500, 429, 404, 200])
async def test_other_statuses_are_not_retried(status: int) -> None:
    recorder = Recorder(status)
    async with client_for(recorder) as client:
        assert (await client.get("/thing")).status_code == status
    assert recorder.methods == ["GET"]


async def test_post_is_never_retried_after_a_response() -> None:
    recorder = Recorder(503, 200)
    async with client_for(recorder) as client:
        response = await client.post("/thing", json={"text": "once"})

    assert response.status_code == 503
    assert recorder.methods == ["POST"]


async def test_a_post_with_an_idempotency_key_is_retried_with_the_same_key() -> None:
    keys: list[str | None] = []
    statuses = [503, 201]

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers.get("idempotency-key"))
        return httpx.Response(statuses.pop(0))

    async with create_http_client(
        base_url="http://downstream.test", transport=httpx.MockTransport(handler)
    ) as client:
        response = await client.post(
            "/thing", json={"text": "once"}, headers={"Idempotency-Key": "k-1"}
        )

    assert response.status_code == 201
    assert keys == ["k-1", "k-1"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "HEAD", "OPTIONS"])
async def test_idempotent_methods_are_retried(method: str) -> None:
    recorder = Recorder(503, 200)
    async with client_for(recorder) as client:
        response = await client.request(method, "/thing")

    assert response.status_code == 200
    assert recorder.methods == [method, method]


async def test_a_refused_connection_is_retried_for_any_method() -> None:
    refused = httpx.ConnectError("connection refused")
    recorder = Recorder(refused, 201)
    async with client_for(recorder) as client:
        response = await client.post("/thing", json={"text": "never arrived"})

    assert response.status_code == 201
    assert recorder.methods == ["POST", "POST"]


async def test_a_read_timeout_is_not_retried() -> None:
    recorder = Recorder(httpx.ReadTimeout("slow"), 200)
    async with client_for(recorder) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/thing")
    assert recorder.methods == ["GET"]


class CountingTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.attempts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_really_refused_connection_is_retried_then_raised() -> None:
    counting = CountingTransport(httpx.AsyncHTTPTransport())
    url = f"http://127.0.0.1:{free_port()}/admin/version/"
    async with httpx.AsyncClient(transport=RetryTransport(counting, retries=2)) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(url)

    assert counting.attempts == 3


def test_the_shared_tls_context_verifies_certificates() -> None:
    context = http_module.ssl_context()
    assert context is http_module.ssl_context()  # built once, not per client
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


def test_timeouts_are_set() -> None:
    default = create_http_client()
    assert default.timeout == httpx.Timeout(5.0, connect=2.0)
    short = create_http_client(timeout_seconds=0.5)
    assert short.timeout == httpx.Timeout(0.5, connect=0.5)
    assert default.follow_redirects is False


async def test_a_slow_server_times_out(live_server: Callable[..., str]) -> None:
    url = live_server()
    async with create_http_client(base_url=url, timeout_seconds=0.3, retries=2) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/slow", params={"seconds": 0.8})
