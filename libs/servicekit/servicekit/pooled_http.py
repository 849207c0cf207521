"""A small HTTP/1.1 client for calls made on every request: kept-alive connections per origin.

The frontend calls the thoughts service for every page it serves. Through httpx (the kit's
`create_http_client`, which stays for everything else: start-up checks, JWKS) one call cost
~0.9 ms of CPU on the benchmark's machine, about half of a whole page; the same call here costs
~0.1 ms (bench/README.md, "Target 1: pages"). aiohttp, the well-kept alternative, was measured
too (bench/http_clients.py, 2026-12-06, quiet machine, client CPU per call of a 20-thought page,
best of 3): httpx 534 us, aiohttp 148 us, this client 95 us. aiohttp's extra ~50 us is ~2 % of a
page's CPU across the processes: this client is kept for that margin and for the policy below
being written once, but it is the first thing to replace by aiohttp if it ever needs more than
small fixes. It keeps what the kit's client gives:

- timeouts: connecting at most `connect_seconds`, the whole answer at most `timeout_seconds`;
- bounded retries with the same policy as `servicekit.http` (`may_repeat`, `worth_retrying`): a
  connection that could not be opened is retried for any method, a 502/503/504 without
  `Retry-After` only for a request that is safe to repeat;
- the request id forwarded as X-Request-ID, a CLIENT span whose context goes out as
  `traceparent` when tracing is on, and per call the kit's outgoing count and duration.

It speaks only what our services answer: HTTP/1.1 (over TLS for an `https://` base URL, with
the kit's CA bundle), no redirects followed, no HEAD, bodies delimited by Content-Length or
chunked, parsed by httptools (the parser uvicorn serves with).

Given `unix_sockets` (the origin's replicas' sockets, servicekit.server's `UNIX_SOCKET`), it
connects there instead of to the URL's host, which then only names the origin (Host header,
logs, metrics). Compose calls the users service this way: users believes the visitor's address
in X-Forwarded-For from a peer on its socket and from no TCP peer (servicekit.proxy_headers).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

import httptools
import orjson

from servicekit.context import REQUEST_ID_HEADER, current_request_id
from servicekit.http import may_repeat, measured_call, ssl_context, worth_retrying
from servicekit.metrics import Metrics
from servicekit.tracing import Tracing

log = logging.getLogger("servicekit.http")

# Our services' answers are pages of at most a hundred thoughts: anything far larger is a
# broken or hostile peer, not a response to keep in memory.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024


class CallFailed(Exception):
    """The call got no complete answer. `reached` is False only when no connection was made
    (then the service saw nothing of it)."""

    reached = True


class ConnectFailed(CallFailed):
    reached = False


class CallTimedOut(CallFailed):
    """No complete answer within the timeout (connecting included: then `reached` is False)."""

    def __init__(self, message: str, *, reached: bool) -> None:
        super().__init__(message)
        self.reached = reached


class ConnectionBroken(CallFailed):
    """The connection failed after the request was (perhaps) sent."""


@dataclass(frozen=True)
class PooledResponse:
    method: str
    path: str
    status_code: int
    # Names in lower case; a repeated header's values joined with ", " (RFC 9110 5.3).
    headers: Mapping[str, str]
    content: bytes

    def header(self, name: str) -> str | None:
        """A header's value, whatever the case of `name`."""
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body as JSON (orjson); ValueError when it is not."""
        return orjson.loads(self.content)

    def link(self, rel: str) -> str | None:
        """The target of the RFC 8288 `Link` header's relation `rel`, if there is one."""
        for part in self.headers.get("link", "").split(","):
            target, _, params = part.partition(";")
            target = target.strip()
            if not (target.startswith("<") and target.endswith(">")):
                continue
            for param in params.split(";"):
                name, _, value = param.strip().partition("=")
                if name.lower() == "rel" and rel in value.strip('"').split():
                    return target[1:-1]
        return None


def _check_header(name: str, value: str) -> None:
    # Values come from cookies and forms through the pages' own checks; this is the last line:
    # a CR or LF would let a value add headers or a second request.
    if any(c in name or c in value for c in "\r\n\0") or ":" in name:
        raise ValueError(f"header {name!r}: control characters are not allowed")


class _Connection(asyncio.Protocol):
    """One kept-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[tuple[int, dict[str, str], bytes, bool]] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._received = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._received = True
        if self._answer is None or self._answer.done():
            # Nothing was asked: a peer that talks out of turn cannot be trusted with the next
            # request.
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionBroken(f"unreadable response ({type(exc).__name__})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionBroken("the connection was closed before the response ended"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self._headers[key] = f"{self._headers[key]}, {text}" if key in self._headers else text

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_RESPONSE_BYTES:
            self._fail(ConnectionBroken(f"response larger than {MAX_RESPONSE_BYTES} bytes"))
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._answer is not None and not self._answer.done():
            status = self._parser.get_status_code()
            keep_alive = self._parser.should_keep_alive()
            self._answer.set_result((status, self._headers, b"".join(self._body), keep_alive))

    def _fail(self, error: CallFailed) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)
        self.close()

    async def exchange(self, request: bytes) -> tuple[int, dict[str, str], bytes, bool]:
        assert self.transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self._headers, self._body, self._size, self._received = {}, [], 0, False
        self.transport.write(request)
        return await self._answer

    @property
    def received_anything(self) -> bool:
        return self._received

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class PooledHttpClient:
    """Calls one origin (`base_url`) over kept-alive connections. Made once per app; `aclose()`
    at shutdown. Connections are opened when first needed, in the running event loop."""

    def __init__(
        self,
        base_url: str,
        *,
        dependency: str,
        timeout_seconds: float = 5.0,
        retries: int = 2,
        backoff_seconds: float = 0.05,
        max_connections: int = 100,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
        unix_sockets: Sequence[str] = (),
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{base_url!r}: an http:// or https:// URL with a host is needed")
        if unix_sockets and parts.scheme == "https":
            raise ValueError(f"{base_url!r}: Unix sockets are for plain http:// only")
        self.base_url = base_url.rstrip("/")
        self.dependency = dependency
        self._tls = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port or (443 if self._tls else 80)
        self._host_header = parts.netloc
        self._prefix = parts.path.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.connect_seconds = min(timeout_seconds, 2.0)
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.max_connections = max_connections
        self._metrics = metrics
        self._tracing = tracing
        self._idle: list[_Connection] = []
        self._slots: asyncio.Semaphore | None = None
        self._unix_sockets = tuple(unix_sockets)
        self._next_socket = 0

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> PooledResponse:
        """One call, retried as the policy allows; CallFailed (or a subclass) without an answer."""
        if method == "HEAD":
            raise ValueError("HEAD is not supported")
        target = self._prefix + path + (f"?{urlencode(params)}" if params else "")
        outgoing = dict(headers or {})
        request_id = current_request_id()
        if request_id and REQUEST_ID_HEADER not in outgoing:
            outgoing[REQUEST_ID_HEADER] = request_id
        body = b"" if json is None else orjson.dumps(json)
        if json is not None:
            outgoing["Content-Type"] = "application/json"

        async def call() -> PooledResponse:
            # Encoded here: measured_call has written traceparent into the headers by now.
            raw = self._encode(method, target, outgoing, body)
            return await self._with_retries(method, target, raw, outgoing)

        return await measured_call(
            call,
            dependency=self.dependency,
            method=method,
            url=f"{self.base_url}{target}",
            headers=outgoing,
            metrics=self._metrics,
            tracing=self._tracing,
            timeout_errors=(CallTimedOut,),
            connect_errors=(ConnectFailed,),
        )

    def _encode(self, method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header}"]
        for name, value in headers.items():
            _check_header(name, value)
            lines.append(f"{name}: {value}")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        if any(c in target for c in " \r\n\0"):
            raise ValueError("the request target must not contain spaces or control characters")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def _with_retries(
        self, method: str, target: str, raw: bytes, headers: Mapping[str, str]
    ) -> PooledResponse:
        repeatable = may_repeat(method, headers.keys())
        attempt = 0
        while True:
            try:
                response = await self._once(method, target, raw, repeatable)
            except ConnectFailed:
                if attempt >= self.retries:
                    raise
            else:
                if (
                    attempt >= self.retries
                    or not repeatable
                    or not worth_retrying(response.status_code, response.headers)
                ):
                    return response
            attempt += 1
            log.info("retrying %s %s (attempt %d of %d)", method, target, attempt, self.retries)
            await asyncio.sleep(self.backoff_seconds * 2 ** (attempt - 1))

    async def _once(self, method: str, target: str, raw: bytes, repeatable: bool) -> PooledResponse:
        slots = self._slots
        if slots is None:
            slots = self._slots = asyncio.Semaphore(self.max_connections)
        deadline = asyncio.get_running_loop().time() + self.timeout_seconds
        try:
            async with asyncio.timeout_at(deadline):
                await slots.acquire()
        except TimeoutError:
            raise CallTimedOut("PoolTimeout", reached=False) from None
        try:
            connection = await self._connection(deadline)
            try:
                status, headers, content, keep_alive = await self._exchange(
                    connection, raw, deadline
                )
            except ConnectionBroken:
                # A kept-alive connection the server closed as we sent: it saw nothing. Once,
                # on a fresh connection, when the request is safe to repeat anyway.
                if not (connection.reused and repeatable and not connection.received_anything):
                    raise
                connection = await self._connection(deadline, fresh=True)
                status, headers, content, keep_alive = await self._exchange(
                    connection, raw, deadline
                )
            if keep_alive and not connection.closed:
                connection.reused = True
                self._idle.append(connection)
            else:
                self._discard(connection)
            return PooledResponse(method, target.split("?", 1)[0], status, headers, content)
        finally:
            slots.release()

    async def _exchange(
        self, connection: _Connection, raw: bytes, deadline: float
    ) -> tuple[int, dict[str, str], bytes, bool]:
        try:
            async with asyncio.timeout_at(deadline):
                return await connection.exchange(raw)
        except TimeoutError:
            self._discard(connection)
            raise CallTimedOut("ReadTimeout", reached=True) from None
        except BaseException:
            self._discard(connection)
            raise

    async def _connection(self, deadline: float, *, fresh: bool = False) -> _Connection:
        while self._idle and not fresh:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(min(deadline, loop.time() + self.connect_seconds)):
                if self._unix_sockets:
                    return await self._open_unix(loop)
                _, connection = await loop.create_connection(
                    _Connection,
                    self._host,
                    self._port,
                    ssl=ssl_context() if self._tls else None,
                )
        except TimeoutError:
            raise CallTimedOut("ConnectTimeout", reached=False) from None
        except OSError as exc:
            raise ConnectFailed(type(exc).__name__) from None
        return connection

    async def _open_unix(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        """A connection to the next socket in turn, so that the replicas share the connections
        (as DNS's addresses share them over TCP); a socket that refuses (its replica is down or
        restarting) passes the turn to the next. The last error if none accepts."""
        start = self._next_socket
        self._next_socket = (start + 1) % len(self._unix_sockets)
        error: OSError | None = None
        for offset in range(len(self._unix_sockets)):
            path = self._unix_sockets[(start + offset) % len(self._unix_sockets)]
            try:
                _, connection = await loop.create_unix_connection(_Connection, path)
            except OSError as exc:
                error = exc
            else:
                return connection
        assert error is not None
        raise error

    @staticmethod
    def _discard(connection: _Connection) -> None:
        # Never back in the pool: the next request gets another connection.
        connection.close()

    async def aclose(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
