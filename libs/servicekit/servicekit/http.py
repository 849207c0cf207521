"""The HTTP client services use to call each other: timeouts, bounded retries, request id, and
per call a count and duration by dependency and outcome (plus a CLIENT span when tracing is on).

A caller names the service it calls with `extensions={"dependency": "users"}`; a call without
a name is labelled with the host it goes to, which comes from configuration, not from requests.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Protocol, TypeVar

import httpx

from servicekit.context import REQUEST_ID_HEADER, current_request_id
from servicekit.metrics import Metrics
from servicekit.tracing import Tracing, end_span

log = logging.getLogger("servicekit.http")

# Only methods that are safe to repeat are retried after a response; a connection that could not
# be opened at all is retried for any method, because the request never reached the server.
# A request with an Idempotency-Key header is safe to repeat too: the server that honours the key
# (e.g. POST /api/me/thoughts/) stores it once, however often it arrives.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_HEADER_LOWER = IDEMPOTENCY_KEY_HEADER.lower()


RETRY_STATUSES = frozenset({502, 503, 504})


def worth_retrying(status_code: int, headers: Mapping[str, str] | httpx.Headers) -> bool:
    """A 502/503/504 from something in between (a proxy, a server restarting) is worth another
    try; one with `Retry-After` is the service's own considered answer ("this search took too
    long", "too busy, come back in a second"), and repeating it at once only adds to the load
    that caused it: a frontend that retried such a search twice tripled an attack (issue 14)."""
    return status_code in RETRY_STATUSES and "retry-after" not in headers


def may_repeat(method: str, header_names: Iterable[str]) -> bool:
    return method in IDEMPOTENT_METHODS or any(
        name.lower() == IDEMPOTENCY_KEY_HEADER_LOWER for name in header_names
    )


class RetryTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        retries: int = 2,
        backoff_seconds: float = 0.05,
    ) -> None:
        self.inner = inner
        self.retries = retries
        self.backoff_seconds = backoff_seconds

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self.inner.handle_async_request(request)
            except httpx.ConnectError:
                if attempt >= self.retries:
                    raise
            else:
                if (
                    attempt >= self.retries
                    or not may_repeat(request.method, request.headers.keys())
                    or not worth_retrying(response.status_code, response.headers)
                ):
                    return response
                await response.aclose()
            attempt += 1
            log.info(
                "retrying %s %s (attempt %d of %d)",
                request.method,
                request.url.path,
                attempt,
                self.retries,
            )
            await asyncio.sleep(self.backoff_seconds * 2 ** (attempt - 1))

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Answer(Protocol):
    @property
    def status_code(self) -> int: ...


AnswerT = TypeVar("AnswerT", bound=_Answer)


async def measured_call(
    call: Callable[[], Awaitable[AnswerT]],
    *,
    dependency: str,
    method: str,
    url: str,
    headers: MutableMapping[str, str] | httpx.Headers,
    metrics: Metrics | None,
    tracing: Tracing | None,
    timeout_errors: tuple[type[BaseException], ...],
    connect_errors: tuple[type[BaseException], ...],
) -> AnswerT:
    """Runs one outgoing call (its retries included): counted and timed by dependency and
    outcome and, with tracing, wrapped in a CLIENT span whose context goes out in `headers` as
    `traceparent` (written before `call` runs). Shared by both clients of the kit."""
    span = None
    if tracing is not None:
        span = tracing.start_client_span(method, url, dependency)
        tracing.inject(span, headers)
    outcome = "error"
    error: BaseException | None = None
    start = time.perf_counter()
    try:
        response = await call()
        outcome = f"{response.status_code // 100}xx"
        return response
    except timeout_errors as exc:
        outcome, error = "timeout", exc
        raise
    except connect_errors as exc:
        outcome, error = "connect_error", exc
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        if metrics is not None:
            metrics.observe_outgoing(dependency, outcome, time.perf_counter() - start)
        if span is not None:
            span.set_attribute("outcome", outcome)
            end_span(span, error, failed=outcome == "5xx")


class MeasuredTransport(httpx.AsyncBaseTransport):
    """Counts and times each call (its retries included) and, with tracing, wraps it in a span
    whose context goes out as `traceparent`."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        metrics: Metrics | None,
        tracing: Tracing | None,
    ) -> None:
        self.inner = inner
        self.metrics = metrics
        self.tracing = tracing

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        dependency = str(request.extensions.get("dependency") or request.url.host or "unknown")
        return await measured_call(
            lambda: self.inner.handle_async_request(request),
            dependency=dependency,
            method=request.method,
            url=str(request.url),
            headers=request.headers,
            metrics=self.metrics,
            tracing=self.tracing,
            timeout_errors=(httpx.TimeoutException,),
            connect_errors=(httpx.ConnectError,),
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


@functools.cache
def ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes ~0.1 s; httpx would do it again for every client it builds.
    return httpx.create_ssl_context()


async def _forward_request_id(request: httpx.Request) -> None:
    request_id = current_request_id()
    if request_id and REQUEST_ID_HEADER not in request.headers:
        request.headers[REQUEST_ID_HEADER] = request_id


def create_http_client(
    *,
    base_url: str = "",
    timeout_seconds: float = 5.0,
    retries: int = 2,
    transport: httpx.AsyncBaseTransport | None = None,
    metrics: Metrics | None = None,
    tracing: Tracing | None = None,
) -> httpx.AsyncClient:
    inner = transport or httpx.AsyncHTTPTransport(
        verify=ssl_context(),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
    )
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 2.0)),
        transport=MeasuredTransport(RetryTransport(inner, retries=retries), metrics, tracing),
        event_hooks={"request": [_forward_request_id]},
        follow_redirects=False,
    )
