"""HEAD is answered wherever GET is (RFC 9110 §9.3.2: every general-purpose server supports
both), on a real server process: the GET route's status and headers, no body. Before, FastAPI
answered 405 to `curl -I`, to uptime monitors and to link checkers on every page and route."""

from __future__ import annotations

import socket

import httpx
import pytest

from testkit import ServiceProcess


@pytest.fixture(scope="module")
def server(example_server: ServiceProcess) -> ServiceProcess:
    return example_server


def raw_head(server: ServiceProcess, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(f"HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := connection.recv(4096):
            answer += chunk
    return answer


@pytest.mark.parametrize("path", ["/healthz", "/items/7", "/items/not-a-number", "/nowhere"])
def test_head_answers_as_get_without_a_body(server: ServiceProcess, path: str) -> None:
    get = httpx.get(f"{server.url}{path}", timeout=10)
    answer = raw_head(server, path)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {get.status_code} ".encode()), answer
    assert f"content-length: {len(get.content)}".encode() in head.lower()
    assert body == b""


def test_head_is_counted_as_head_on_its_route(server: ServiceProcess) -> None:
    raw_head(server, "/items/7")
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert 'method="HEAD",route="/items/{item_id}",status="200"' in metrics


def test_head_is_refused_where_get_is_not_served(server: ServiceProcess) -> None:
    answer = raw_head(server, "/notes")  # POST only
    assert answer.startswith(b"HTTP/1.1 405 "), answer


def test_a_head_on_a_kept_alive_connection_is_answered(server: ServiceProcess) -> None:
    """The server writes a response's headers with the first piece of its body
    (servicekit.limits): a HEAD has none, so on a kept-alive connection its headers were never
    sent and the client (curl -I, HAProxy: 502) waited until it gave up."""
    with httpx.Client(timeout=5) as client:
        for _ in range(2):  # the same connection, twice
            response = client.head(f"{server.url}/healthz")
            assert response.status_code == 200
            assert response.content == b""
