"""The kit's protocol reads a connection's addresses from the transport (BoundedHttpToolsProtocol
.connection_made, cheaper than uvicorn's look-ups): the scope's client, server and scheme are
what the socket says, under uvloop and asyncio, over IPv4, IPv6 and a Unix socket (whose
shape, (path, None), servicekit.proxy_headers relies on)."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import pytest
import uvicorn

from servicekit.limits import LimitedConfig, RequestLimits


async def echo(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = json.dumps(
        {"client": scope["client"], "server": scope["server"], "scheme": scope["scheme"]}
    ).encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def ask(listener: socket.socket, loop: str) -> tuple[dict[str, Any], Any, Any]:
    """Serves the echo app on the listener under the kit's protocol, sends it one request: the
    scope it saw, and the client socket's own and peer addresses."""
    config = LimitedConfig(
        echo, limits=RequestLimits(), log_config=None, access_log=False, loop=loop
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]})
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        with socket.socket(listener.family) as client:
            client.connect(listener.getsockname())
            client.sendall(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
            mine, theirs = client.getsockname(), client.getpeername()
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()
    return json.loads(answer.split(b"\r\n\r\n", 1)[1]), mine, theirs


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_the_scope_has_the_sockets_addresses(loop: str, host: str) -> None:
    if host == "::1" and not ipv6_available():
        pytest.skip("no IPv6 loopback here")
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.bind((host, 0))
    seen, mine, theirs = ask(listener, loop)
    assert seen == {
        "client": [mine[0], mine[1]],
        "server": [theirs[0], theirs[1]],
        "scheme": "http",
    }


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_unix_socket_connection_has_the_path_as_server_and_no_client(
    loop: str, tmp_path: Any
) -> None:
    # servicekit.proxy_headers tells a Unix socket's requests by this shape: (path, None).
    path = str(tmp_path / "s.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    seen, _, _ = ask(listener, loop)
    assert seen == {"client": None, "server": [path, None], "scheme": "http"}
