"""FaultProxy: a TCP proxy a test puts between a service and what it depends on, to break the link.

The fault tests of issue 14 inject their faults themselves, never into the machine's PostgreSQL
server or a shared service: the service under test is pointed at the proxy's port, and the test
makes the proxy

- `black_hole()`: stop answering. Bytes already on the way and those that follow are held, not
  forwarded, in both directions; new connections are accepted but get no answer (a database
  host that drops packets, a frozen process). `restore()` delivers what was held, as a healed
  network would;
- `refuse()`: refuse new connections (nothing listens on the port any more; connects fail with
  ECONNREFUSED), as a stopped server does; open connections are reset;
- `cut()`: reset every open connection now (a server that was killed, a backend terminated),
  new ones are served as before.

The proxy runs its own event loop in a thread, so it works the same for a service in the
test's process (an ASGI app in the test's loop, which a black hole must not freeze) and for a
service process. Every method may be called from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")

_CHUNK = 65536


class FaultProxy:
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port` until told otherwise."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connections = 0  # accepted so far
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._open: set[asyncio.StreamWriter] = set()

    # -- life cycle (from the test's thread) -----------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def route(self, url: str) -> str:
        """`url` (a database or service URL to the proxy's target) through the proxy instead."""
        parts = urlsplit(url)
        credentials, _, _ = parts.netloc.rpartition("@")
        netloc = f"{credentials}@{self.address}" if credentials else self.address
        return urlunsplit(parts._replace(netloc=netloc))

    # -- faults --------------------------------------------------------------------------------

    def black_hole(self) -> None:
        self._call(self._set_flowing(False))

    def refuse(self) -> None:
        self._call(self._refuse())

    def cut(self) -> None:
        self._call(self._reset_all())

    def restore(self) -> None:
        """Back to forwarding: listening again after `refuse()`, held bytes delivered after
        `black_hole()`."""
        self._call(self._restore())

    # -- inside the proxy's loop ---------------------------------------------------------------

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        await self._close_listener()
        await self._reset_all()

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _set_flowing(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _refuse(self) -> None:
        await self._close_listener()
        await self._reset_all()

    async def _restore(self) -> None:
        if self._server is None:
            await self._listen()
        await self._set_flowing(True)

    async def _reset_all(self) -> None:
        for writer in list(self._open):
            _reset(writer)
        self._open.clear()

    async def _serve(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        self._open.add(client)
        assert self._flowing is not None
        try:
            await self._flowing.wait()  # a black hole answers no new connection either
            upstream_reader, upstream = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(client)
            self._open.discard(client)
            return
        self._open.add(upstream)
        pumps = [
            asyncio.ensure_future(self._pump(client_reader, upstream)),
            asyncio.ensure_future(self._pump(upstream_reader, client)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for writer in (client, upstream):
                self._open.discard(writer)
                with contextlib.suppress(Exception):
                    writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                await self._flowing.wait()
                data = await reader.read(_CHUNK)
                if not data:
                    return
                await self._flowing.wait()  # read before the hole opened: held, not lost
                writer.write(data)
                await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Closes with a TCP reset (SO_LINGER 0): the peer sees ECONNRESET, not an orderly end."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        writer.transport.abort()
