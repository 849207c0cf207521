"""Request size is bounded before anything parses it (servicekit.limits, issue 14 item 9), on a
real server process (`run_example.py`: the server command of every service): headers at the
server, bodies while they stream, form fields on the raw bytes, and the process does not grow."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest

from servicekit.limits import RequestLimits
from testkit import ServiceProcess

LIMITS = RequestLimits()  # run_example.py serves with the defaults
MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(example_server: ServiceProcess) -> ServiceProcess:
    return example_server


def exchange(server: ServiceProcess, head: bytes, body: Iterable[bytes] = ()) -> tuple[int, int]:
    """Sends the request (stopping when the server stops reading); its status and the body
    bytes sent before the answer came."""
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        try:
            connection.sendall(head)
            for chunk in body:
                connection.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: what a limit should do
        answer = b""
        try:
            while b"\r\n" not in answer:
                data = connection.recv(4096)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
    assert answer, "the server closed the connection without an answer"
    return int(answer.split(b" ", 2)[1]), sent


def peak_rss_mb(server: ServiceProcess) -> float:
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def json_post(path: str, length: int | None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"POST {path} HTTP/1.1\r\nHost: example\r\nContent-Type: application/json\r\n"
        f"{framing}\r\n\r\n"
    ).encode()


def chunked(chunks: Iterable[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    yield b"0\r\n\r\n"


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(
    server: ServiceProcess,
) -> None:
    status, _ = exchange(server, json_post("/login", 256 * MB))  # no body sent at all
    assert status == 413


def test_a_chunked_body_is_cut_at_the_limit_and_the_process_does_not_grow(
    server: ServiceProcess,
) -> None:
    before = peak_rss_mb(server)
    body = chunked(b"a" * MB for _ in range(64))
    status, sent = exchange(server, json_post("/login", None), body)
    grown = peak_rss_mb(server) - before
    assert status == 413
    assert sent < 32 * MB, f"the server read {sent / MB:.0f} MB before refusing"
    assert grown < 16, f"the process grew by {grown:.0f} MB for a refused body"


def test_a_body_within_the_limit_is_served(server: ServiceProcess) -> None:
    body = b'{"username": "bruce", "password": "' + b"p" * 1000 + b'"}'
    status, _ = exchange(server, json_post("/login", len(body)), [body])
    assert status == 200


@pytest.mark.parametrize("content_type", ["url-encoded", "multipart"])
def test_a_form_with_too_many_fields_is_refused_before_it_is_parsed(
    server: ServiceProcess, content_type: str
) -> None:
    fields = LIMITS.max_form_fields + 1
    if content_type == "url-encoded":
        media_type = "application/x-www-form-urlencoded"
        body = "&".join(f"f{number}=x" for number in range(fields)).encode()
    else:
        media_type = "multipart/form-data; boundary=b0und"
        parts = [
            f'--b0und\r\nContent-Disposition: form-data; name="f{number}"\r\n\r\nx\r\n'
            for number in range(fields)
        ]
        body = ("".join(parts) + "--b0und--\r\n").encode()
    assert len(body) < LIMITS.max_body_bytes  # refused for the count, not the size
    head = (
        f"POST /login HTTP/1.1\r\nHost: example\r\nContent-Type: {media_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    status, _ = exchange(server, head, [body])
    assert status == 413


def test_a_form_within_the_field_limit_is_parsed(server: ServiceProcess) -> None:
    body = b"username=bruce&password=long-enough&" + b"&".join(b"x%d=1" % n for n in range(10))
    head = (
        "POST /login HTTP/1.1\r\nHost: example\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    assert exchange(server, head, [body])[0] == 200


def header_lines(count: int, size: int) -> Iterator[bytes]:
    for number in range(count):
        yield f"X-Pad-{number}: ".encode() + b"a" * size + b"\r\n"
    yield b"\r\n"


def test_huge_headers_get_431_and_are_not_kept(server: ServiceProcess) -> None:
    before = peak_rss_mb(server)
    status, sent = exchange(
        server, b"GET /healthz HTTP/1.1\r\nHost: example\r\n", header_lines(97, MB)
    )
    grown = peak_rss_mb(server) - before
    assert status == 431
    assert sent < 32 * MB
    assert grown < 16, f"the process grew by {grown:.0f} MB for refused headers"


def test_too_many_header_lines_get_431(server: ServiceProcess) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: example\r\n"
    status, _ = exchange(server, head, header_lines(LIMITS.max_header_count + 1, 1))
    assert status == 431


def test_a_huge_request_line_gets_414(server: ServiceProcess) -> None:
    path = "/healthz?" + "a" * (LIMITS.max_header_bytes + 1)
    status, _ = exchange(server, f"GET {path} HTTP/1.1\r\nHost: example\r\n\r\n".encode())
    assert status == 414


def test_ordinary_headers_are_served(server: ServiceProcess) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: example\r\nCookie: " + b"c" * 8000 + b"\r\n"
    status, _ = exchange(server, head, header_lines(40, 100))
    assert status == 200


def test_a_client_that_leaves_mid_body_is_a_499_not_a_500(server: ServiceProcess) -> None:
    """A client that sends part of its body and goes away is no error of ours: before, each one
    was counted as a 500 and logged as an unhandled error with its traceback, so dropping
    connections mid-upload raised the error rate that the alerts watch."""
    head = json_post("/login", 1000)
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
            connection.sendall(head + b'{"username": "bru')
    metrics = ""
    deadline = time.monotonic() + 10
    while 'route="/login",status="499"} 3.0' not in metrics and time.monotonic() < deadline:
        time.sleep(0.1)
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert 'route="/login",status="499"} 3.0' in metrics
    assert 'route="/login",status="500"' not in metrics
    assert "ClientDisconnect" not in server.logs()
    assert "unhandled error" not in server.logs()


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET /healthz?search=\xff HTTP/1.1\r\nHost: example\r\n\r\n",
        b"POST /login HTTP/1.1\r\nHost: example\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
        b"POST /login HTTP/1.1\r\nHost: example\r\nContent-Length: -1\r\n\r\n",
        b"POST /login HTTP/1.1\r\nHost: example\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["raw-byte-in-query", "two-content-lengths", "negative-content-length", "bad-chunk"],
)
def test_a_request_that_is_not_http_gets_a_problem_saying_so(
    server: ServiceProcess, request_head: bytes
) -> None:
    """uvicorn answered a bare text/plain "Invalid HTTP request received."."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(request_head)
        answer = b""
        while chunk := connection.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer
    assert b"content-type: application/problem+json" in head.lower()
    assert b"the request is not valid HTTP/1.1" in body
