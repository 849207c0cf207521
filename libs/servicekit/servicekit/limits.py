"""How large a request may be, enforced before anything parses it (issue 14).

Measured before: a 256 MB login body grew the users process by 500 MB before its 413, 300 form
fields of 1 MB grew the frontend by 280 MB before the CSRF check, and 97 MB of request headers
got a 200 (httptools, unlike h11, has no header limit of its own). So:

- Headers, at the server (`BoundedHttpToolsProtocol`): the request line and headers together
  at most `max_header_bytes`, at most `max_header_count` header lines; past either, the
  connection answers 431 (414 for the request line alone) and closes, having kept no more.
- Bodies, in the app (`BodyLimitMiddleware`): a `Content-Length` above `max_body_bytes` is
  refused with 413 before a byte is read; a chunked body is counted as it streams and cut with
  413 at the limit. A form body (url-encoded or multipart) is also cut when it holds more than
  `max_form_fields` fields, counted on the raw bytes as they arrive, before any form parser
  sees them. Refusals close the connection, so the rest of a huge body is not read either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import HTTPException, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.logging import TRACE_LOG_LEVEL
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from servicekit.problems import problem_response

_FORM_TYPES = (b"application/x-www-form-urlencoded", b"multipart/form-data")

# How a service answers the refusals made here, before its routes (status, detail, headers):
# problem+json by default; the web site renders a page (ServiceSpec.refusal).
Refusal = Callable[[Request, int, str, Mapping[str, str]], Response]


def problem_refusal(
    request: Request, status: int, detail: str, headers: Mapping[str, str]
) -> Response:
    return problem_response(status, detail, headers=dict(headers))


@dataclass(frozen=True)
class RequestLimits:
    max_header_bytes: int = 32 * 1024
    max_header_count: int = 100
    max_body_bytes: int = 64 * 1024
    max_form_fields: int = 64


class LimitedConfig(uvicorn.Config):
    """uvicorn's configuration plus the header limits that BoundedHttpToolsProtocol reads (a
    Config is what a worker process is handed, so the limits travel with it)."""

    def __init__(self, app: Any, *, limits: RequestLimits, **kwargs: Any) -> None:
        super().__init__(app, http=BoundedHttpToolsProtocol, **kwargs)
        self.request_limits = limits


INVALID_HTTP = (
    "the request is not valid HTTP/1.1: its request line, a header (bytes that are not ASCII, a "
    "repeated or negative Content-Length), or its chunked body is malformed"
)


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; data_received sends the refusal."""


class _HeadersWithBody:
    """A response's transport that sends the status line and headers together with the first
    piece of the body, in one write: uvicorn writes them as two, and on a new connection per
    request (bench/book_setting.py) each write is a system call and a packet of its own. The
    headers are held only until the body's first write (which the ASGI protocol guarantees,
    even an empty one) or the transport's close."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None
        self._first = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._first:
            self._first = False
            self._held = bytes(data)
            return
        if self._held is not None:
            data, self._held = self._held + bytes(data), None
        self._transport.write(data)

    def close(self) -> None:
        if self._held is not None:
            self._transport.write(self._held)
            self._held = None
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _address(info: Any) -> tuple[str, int | None] | None:
    """A transport's "sockname" or "peername" as uvicorn's scope wants it."""
    if isinstance(info, tuple | list):
        return (str(info[0]), int(info[1]))
    if isinstance(info, str):
        return (info, None)
    return None


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, counting the request line and headers as they are parsed,
    and writing each response's headers with its body (_HeadersWithBody)."""

    _refusal: tuple[int, str] | None = None
    _header_bytes = 0
    _header_count = 0

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        # Read once per connection, not once per header line.
        self._request_limits: RequestLimits = getattr(config, "request_limits", None) or (
            RequestLimits()
        )

    def _limits(self) -> RequestLimits:
        return self._request_limits

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # uvicorn 0.54's connection_made, with the addresses read from the transport's
        # "sockname" and "peername" instead of the "socket" it asks for twice: under uvloop that
        # builds a socket object for each connection (~12 of the ~16 µs the look-ups took,
        # bench/README.md; a new connection per request pays it on every request). Same
        # values: (host, port) for IPv4 and IPv6 (uvicorn's own fallback drops IPv6's
        # 4-tuples), the path for a Unix socket; TLS only when the server was given a
        # certificate (uvicorn's Config.is_ssl), as no other TLS reaches this protocol.
        self.connections.add(self)
        self.transport = transport
        self.flow = FlowControl(transport)
        self.server = _address(transport.get_extra_info("sockname"))
        peer = transport.get_extra_info("peername")
        # A Unix socket's peer has no address: None, as uvicorn has it.
        self.client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple | list) else None
        self.scheme = "https" if self.config.is_ssl else "http"
        if self.logger.level <= TRACE_LOG_LEVEL:
            prefix = f"{self.client[0]}:{self.client[1]} - " if self.client else ""
            self.logger.log(TRACE_LOG_LEVEL, "%sHTTP connection made", prefix)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._header_count = 0

    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        # A new request's cycle (not an upgrade, which makes none). One that waits to send
        # "100 Continue" writes that line alone first, and the client waits for it: left as is.
        # So is a HEAD: uvicorn writes no body for it, so its headers would never leave.
        if (
            cycle is not previous
            and not cycle.waiting_for_100_continue
            and cycle.scope["method"] != "HEAD"
        ):
            cycle.transport = _HeadersWithBody(self.transport)  # type: ignore[assignment]

    def _refuse(self, status: int, detail: str) -> None:
        self._refusal = (status, detail)
        raise _Refused(detail)

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        if self._header_bytes > self._limits().max_header_bytes:
            limit = self._limits().max_header_bytes
            self._refuse(414, f"the request line is longer than {limit} bytes")
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        limits = self._limits()
        self._header_count += 1
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if self._header_count > limits.max_header_count:
            self._refuse(431, f"a request may have at most {limits.max_header_count} headers")
        if self._header_bytes > limits.max_header_bytes:
            limit = limits.max_header_bytes
            self._refuse(431, f"the request headers are larger than {limit} bytes")
        super().on_header(name, value)

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this for any parser error, ours included: answer ours with its status,
        # and the parser's with a problem too (uvicorn's own is a bare text/plain "Invalid HTTP
        # request received.", which says neither what is wrong nor that it is not a server error).
        status, detail = self._refusal or (400, INVALID_HTTP)
        body = problem_response(status, detail).body
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[status],
                    b"content-type: application/problem+json\r\n",
                    b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                    b"connection: close\r\n\r\n",
                    bytes(body),
                ]
            )
        )
        self.transport.close()


class BodyTooLarge(HTTPException):
    """A body past a limit; raised from `receive`, so whatever was reading it stops there (and,
    being an HTTPException, is answered as one: FastAPI's body parsing lets those through)."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail, headers={"Connection": "close"})


class _FieldCounter:
    """Counts the fields of a form body from its raw bytes, chunk by chunk."""

    def __init__(self, content_type: bytes) -> None:
        self.fields = 0
        self._tail = b""
        if content_type.startswith(_FORM_TYPES[1]):
            boundary = b""
            for parameter in content_type.split(b";")[1:]:
                key, _, value = parameter.strip().partition(b"=")
                if key.lower() == b"boundary":
                    boundary = value.strip(b'"')
            # Each part starts with a delimiter line; the closing one counts one too many.
            self._separator = b"--" + boundary if boundary else b"\r\n--"
            self._offset = -1
        else:
            self._separator, self._offset = b"&", 1

    def feed(self, chunk: bytes) -> int:
        if not chunk:
            return self.fields + self._offset
        data = self._tail + chunk
        self.fields += data.count(self._separator) - self._tail.count(self._separator)
        # Keep what could be the start of a separator cut in two by the chunk boundary.
        self._tail = data[-(len(self._separator) - 1) :] if len(self._separator) > 1 else b""
        return self.fields + self._offset


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, limits: RequestLimits, refusal: Refusal = problem_refusal
    ) -> None:
        self.app = app
        self.limits = limits
        self.refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits = self.limits
        content_length: bytes | None = None
        content_type = b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                content_length = value
            elif name == b"content-type":
                content_type = value.lower()
        if content_length is not None:
            declared = int(content_length) if content_length.isdigit() else None
            if declared is None or declared > limits.max_body_bytes:
                detail = (
                    f"the body is larger than {limits.max_body_bytes} bytes"
                    if declared is not None
                    else "the Content-Length header is not a number"
                )
                status = 413 if declared is not None else 400
                refusal = self.refusal(
                    Request(scope, receive), status, detail, {"Connection": "close"}
                )
                await refusal(scope, receive, send)
                return
        counter = _FieldCounter(content_type) if content_type.startswith(_FORM_TYPES) else None
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                chunk: bytes = message.get("body", b"")
                received += len(chunk)
                if received > limits.max_body_bytes:
                    raise BodyTooLarge(f"the body is larger than {limits.max_body_bytes} bytes")
                if counter is not None and counter.feed(chunk) > limits.max_form_fields:
                    raise BodyTooLarge(f"a form may have at most {limits.max_form_fields} fields")
            return message

        await self.app(scope, limited_receive, send)
