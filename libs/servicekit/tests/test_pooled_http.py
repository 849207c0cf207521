"""The pooled client (servicekit.pooled_http) against a real TCP server that answers as scripted:
kept-alive connections, bodies, the retry policy of the kit's client, timeouts, metrics, tracing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from servicekit.context import request_id_var
from servicekit.metrics import Metrics
from servicekit.pooled_http import (
    CallTimedOut,
    ConnectFailed,
    ConnectionBroken,
    PooledHttpClient,
)
from servicekit.tracing import Tracing
from testkit import free_port

# An answer: (status, extra header lines, body); "chunked" in the headers sends the body in
# two chunks; "close" closes the connection after answering; "hang" never answers.
Answer = tuple[int, list[str], bytes]


@dataclass
class ScriptedServer:
    """Reads HTTP/1.1 requests (headers and Content-Length bodies) and answers them in turn."""

    answers: list[Answer | str]
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    connections: int = 0
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
                headers = {}
                for header in header_lines:
                    name, _, value = header.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((line, headers, body))
                answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
                if answer == "hang":
                    await asyncio.sleep(3600)
                if answer == "close":
                    return
                assert not isinstance(answer, str)
                status, extra, content = answer
                if "chunked" in extra:
                    half = len(content) // 2
                    parts = [content[:half], content[half:]]
                    chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p)
                    payload = chunks + b"0\r\n\r\n"
                    framing = "Transfer-Encoding: chunked"
                else:
                    payload, framing = content, f"Content-Length: {len(content)}"
                lines = [f"HTTP/1.1 {status} X", framing, *(e for e in extra if ":" in e)]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
                await writer.drain()
                if "close" in extra:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """start(*answers): a ScriptedServer on a TCP port; with socket="name", on the Unix socket
    tmp_path / name instead."""
    servers: list[ScriptedServer] = []

    async def start(*answers: Answer | str, socket: str | None = None) -> ScriptedServer:
        scripted = ScriptedServer(list(answers))
        if socket is None:
            scripted.server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
        else:
            scripted.server = await asyncio.start_unix_server(scripted.handle, tmp_path / socket)
        servers.append(scripted)
        return scripted

    yield start
    for scripted in servers:
        assert scripted.server is not None
        scripted.server.close()


def client(url: str, **options: Any) -> PooledHttpClient:
    return PooledHttpClient(url, dependency="thoughts", backoff_seconds=0.001, **options)


async def test_calls_share_one_kept_alive_connection_and_bodies_are_read(serve: Any) -> None:
    server = await serve(
        (200, ['Link: </api/thoughts/?cursor=abc&limit=2>; rel="next"'], b'[{"id": 1}]'),
        (200, ["chunked", "Retry-After: 7"], b'{"items": [1, 2, 3, 4]}'),
    )
    http = client(server.url)
    first = await http.request("GET", "/api/thoughts/", params={"limit": 2, "search": "a b&c"})
    second = await http.request("POST", "/api/me/thoughts/", json={"text": "ünï"})
    await http.aclose()

    assert first.status_code == 200
    assert first.json() == [{"id": 1}]
    assert first.link("next") == "/api/thoughts/?cursor=abc&limit=2"
    assert first.link("prev") is None
    assert second.json() == {"items": [1, 2, 3, 4]}  # chunked, reassembled
    assert second.header("retry-after") == second.header("Retry-After") == "7"
    assert server.connections == 1
    assert server.requests[0][0] == "GET /api/thoughts/?limit=2&search=a+b%26c HTTP/1.1"
    line, headers, body = server.requests[1]
    assert line == "POST /api/me/thoughts/ HTTP/1.1"
    assert headers["content-type"] == "application/json"
    assert body.decode() == '{"text":"ünï"}'


async def test_a_connection_the_server_closed_is_not_reused(serve: Any) -> None:
    server = await serve((200, ["close"], b"one"), (200, [], b"two"))
    http = client(server.url)
    assert (await http.request("GET", "/")).content == b"one"
    assert (await http.request("GET", "/")).content == b"two"
    await http.aclose()
    assert server.connections == 2


async def test_get_is_retried_on_503_up_to_the_bound_then_the_last_answer_returned(
    serve: Any,
) -> None:
    server = await serve((503, [], b"busy"))
    response = await client(server.url, retries=2).request("GET", "/thing")
    assert response.status_code == 503
    assert len(server.requests) == 3


async def test_a_503_with_retry_after_is_not_retried(serve: Any) -> None:
    server = await serve((503, ["Retry-After: 1"], b"too long"))
    response = await client(server.url, retries=2).request("GET", "/api/thoughts/")
    assert response.status_code == 503
    assert len(server.requests) == 1


async def test_a_post_is_retried_only_with_an_idempotency_key(serve: Any) -> None:
    server = await serve((502, [], b""))
    http = client(server.url, retries=1)
    await http.request("POST", "/api/login/", json={})
    assert len(server.requests) == 1
    await http.request("POST", "/api/me/thoughts/", json={}, headers={"Idempotency-Key": "k"})
    assert len(server.requests) == 3


async def test_a_refused_connection_is_retried_then_fails_as_not_reached() -> None:
    http = client(f"http://127.0.0.1:{free_port()}", retries=2)
    with pytest.raises(ConnectFailed) as caught:
        await http.request("POST", "/api/login/", json={})
    assert caught.value.reached is False


async def test_a_server_that_does_not_answer_times_out_as_reached(serve: Any) -> None:
    server = await serve("hang")
    started = time.monotonic()
    with pytest.raises(CallTimedOut) as caught:
        await client(server.url, timeout_seconds=0.3, retries=2).request("GET", "/slow")
    assert caught.value.reached is True
    assert time.monotonic() - started < 2  # not retried: the request reached the service


async def test_a_connection_dropped_without_an_answer_is_broken_not_hung(serve: Any) -> None:
    server = await serve("close")
    with pytest.raises(ConnectionBroken):
        await client(server.url, retries=0).request("POST", "/api/login/", json={})


async def test_header_values_cannot_add_headers(serve: Any) -> None:
    server = await serve((200, [], b""))
    http = client(server.url)
    with pytest.raises(ValueError, match="control characters"):
        await http.request("GET", "/", headers={"Authorization": "Bearer x\r\nX-Admin: 1"})
    assert server.requests == []


async def test_request_id_metrics_and_traceparent_go_with_each_call(
    serve: Any, span_exporter: Any
) -> None:
    server = await serve((200, [], b"{}"), (503, ["Retry-After: 1"], b""))
    metrics = Metrics("test")
    tracing = Tracing.from_settings("test", "1", "http://collector.test:4318")
    http = client(server.url, metrics=metrics, tracing=tracing)
    token = request_id_var.set("req-0123456789")
    try:
        await http.request("GET", "/a")
        await http.request("GET", "/b")
    finally:
        request_id_var.reset(token)

    headers = server.requests[0][1]
    assert headers["x-request-id"] == "req-0123456789"
    spans = span_exporter.get_finished_spans()
    assert [span.name for span in spans] == ["GET thoughts", "GET thoughts"]
    context = spans[0].context
    assert headers["traceparent"].startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
    rendered = metrics.render().decode()
    assert 'dependency="thoughts",outcome="2xx"} 1.0' in rendered
    assert 'dependency="thoughts",outcome="5xx"} 1.0' in rendered


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="http"):
        PooledHttpClient("ftp://thoughts", dependency="thoughts")


async def test_over_unix_sockets_new_connections_take_the_replicas_in_turn(
    serve: Any, tmp_path: Path
) -> None:
    # "close": every call needs a new connection, so each shows which socket it went to.
    one = await serve((200, ["close"], b"one"), socket="one.sock")
    two = await serve((200, ["close"], b"two"), socket="two.sock")
    http = client(
        "http://users:8001", unix_sockets=[str(tmp_path / "one.sock"), str(tmp_path / "two.sock")]
    )
    bodies = [(await http.request("GET", "/api/users/x/")).content for _ in range(4)]
    await http.aclose()
    assert bodies == [b"one", b"two", b"one", b"two"]
    assert one.connections == two.connections == 2
    line, headers, _ = one.requests[0]
    assert line == "GET /api/users/x/ HTTP/1.1"
    assert headers["host"] == "users:8001"  # the URL still names the origin


async def test_a_unix_socket_that_refuses_passes_the_turn_and_none_fails_as_not_reached(
    serve: Any, tmp_path: Path
) -> None:
    alive = await serve((200, [], b"alive"), socket="alive.sock")
    missing = str(tmp_path / "restarting.sock")  # a replica that is not listening
    http = client("http://users:8001", unix_sockets=[missing, str(tmp_path / "alive.sock")])
    for _ in range(3):
        assert (await http.request("POST", "/api/login/", json={})).content == b"alive"
    await http.aclose()
    assert alive.connections == 1  # opened once (a refusal moved the turn), then kept alive

    nobody = client("http://users:8001", unix_sockets=[missing], retries=1)
    with pytest.raises(ConnectFailed) as caught:
        await nobody.request("POST", "/api/login/", json={})
    assert caught.value.reached is False


def test_unix_sockets_are_for_plain_http_only() -> None:
    with pytest.raises(ValueError, match="plain http"):
        PooledHttpClient("https://users", dependency="users", unix_sockets=["/run/users.sock"])
