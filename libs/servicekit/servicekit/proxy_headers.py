"""Whose address a request came from, when a proxy forwarded it (X-Forwarded-For/-Proto).

Over TCP the peer is believed only when FORWARDED_ALLOW_IPS names it: uvicorn's own
ProxyHeadersMiddleware, unchanged. A peer on the server's Unix socket (`UNIX_SOCKET`, the
gateway's way in under compose) has no address that setting could name — uvicorn gives it no
client at all, so its header would never count and the login throttle would see every visitor
as one unknown caller. It is believed because of where it is: only who can open the socket's
file can connect, and compose mounts the sockets' volume in the gateway and the services only.
Of its X-Forwarded-For, the last address counts: the one the gateway appended itself (it drops
whatever the client sent, deploy/gateway/haproxy.cfg), never one a client wrote.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

_FORWARDED_FOR = b"x-forwarded-for"
_FORWARDED_PROTO = b"x-forwarded-proto"
_SCHEMES = frozenset({"http", "https"})


def on_unix_socket(scope: Scope) -> bool:
    """uvicorn's `server` of a Unix socket connection is (path, None); over TCP (host, port)."""
    server = scope.get("server")
    return server is not None and server[1] is None


class ProxyHeaders:
    def __init__(self, app: ASGIApp, forwarded_allow_ips: list[str] | str) -> None:
        self.app = app
        # uvicorn types ASGI apps more narrowly than Starlette; both are the same protocol.
        uvicorn_app: Any = app
        self.over_tcp: Any = ProxyHeadersMiddleware(uvicorn_app, forwarded_allow_ips)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or not on_unix_socket(scope):
            await self.over_tcp(scope, receive, send)
            return
        forwarded_for = b""
        for name, value in scope["headers"]:
            if name == _FORWARDED_FOR:
                forwarded_for = value  # a repeated header: its last line holds the last hop
            elif name == _FORWARDED_PROTO:
                proto = value.decode("latin1").strip()
                if proto in _SCHEMES:
                    scope["scheme"] = proto
        last = forwarded_for.decode("latin1").rpartition(",")[2].strip()
        if last:
            scope["client"] = (last, 0)
        await self.app(scope, receive, send)
