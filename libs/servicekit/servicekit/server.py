"""The one server command, used by `make run`, the benchmarks and the container images.

Graceful shutdown on SIGTERM: readiness goes false at once, the server keeps serving for
SHUTDOWN_DRAIN_SECONDS so the load balancer can take it out of rotation, then stops accepting and
finishes the requests in flight.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from types import FrameType
from typing import Any

import uvicorn

from servicekit.lifecycle import begin_shutdown
from servicekit.settings import ServiceSettings

log = logging.getLogger("servicekit.server")


class DrainingServer(uvicorn.Server):
    drain_seconds: float = 0.0

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit or self.drain_seconds <= 0:
            begin_shutdown()
            self._stop(sig)
            return
        if not getattr(self, "_draining", False):
            self._draining = True
            begin_shutdown()
            log.info("shutdown requested; draining for %.1fs", self.drain_seconds)
            timer = threading.Timer(self.drain_seconds, self._stop, (signal.SIGTERM,))
            timer.daemon = True
            timer.start()
        else:
            # A second signal while draining means "now".
            self._stop(sig)

    def _stop(self, sig: int) -> None:
        # uvicorn's handle_exit, minus recording the signal: uvicorn re-raises recorded signals
        # once it has shut down, so a graceful stop would end "killed by SIGTERM" (143), not 0.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


def listening_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to host:port, ready to be handed to a server or a worker.

    SO_REUSEPORT only for the workers of one supervisor: on a lone server it would let a second
    instance bind the same port without an error.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


class ReusePortMultiprocess(uvicorn.supervisors.Multiprocess):
    """uvicorn's worker supervisor, with one listening socket per worker (SO_REUSEPORT).

    With uvicorn's one shared socket, whichever worker wakes first accepts a whole burst of new
    connections: the benchmark saw all 32 of a client's keep-alive connections land on one of
    two workers, which then did all the work at half the machine's capacity while the other
    idled (bench/README.md). With a socket per worker in one SO_REUSEPORT group, the kernel
    spreads new connections across the workers by a hash of their addresses. Every worker the
    supervisor (re)starts gets a new socket of its own: uvicorn reads `self.sockets` each time.
    """

    ports: tuple[int, ...] = ()

    @property
    def sockets(self) -> list[socket.socket]:
        return [listening_socket(self.config.host, port, reuse_port=True) for port in self.ports]

    @sockets.setter
    def sockets(self, _value: Any) -> None:
        pass  # the base class stores the sockets it is given; ours are made per worker


def serve_settings(app: str, settings: ServiceSettings) -> None:
    """`serve` with the host, port, workers, drain and log level of a service's settings."""
    serve(
        app,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        drain_seconds=settings.shutdown_drain_seconds,
        log_level=settings.log_level,
        internal_port=settings.internal_port,
    )


def serve(
    app: str,
    *,
    host: str,
    port: int,
    workers: int = 1,
    drain_seconds: float = 0.0,
    log_level: str = "info",
    internal_port: int | None = None,
) -> None:
    """Runs `app` ("module:factory", an app factory) until SIGTERM/SIGINT.

    With `internal_port`, the same app listens on that port too; the kit's
    InternalPortMiddleware decides which routes each port serves.
    """
    ports = (port,) if internal_port is None else (port, internal_port)
    config = uvicorn.Config(
        app,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,  # our JSON logging is configured by the app factory
        access_log=False,  # our middleware writes the access log with the route template
        log_level=log_level.lower(),
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=30,
        loop="uvloop",
        http="httptools",
    )
    if workers > 1:
        # uvicorn's supervisor builds plain servers in its workers: they still finish in-flight
        # requests on SIGTERM, without the readiness drain. Kubernetes runs one worker per pod.
        # Binding once here first fails fast, with a message, when a port is taken.
        for probe in [listening_socket(host, p) for p in ports]:
            probe.close()
        supervisor = ReusePortMultiprocess(config, sockets=[])
        supervisor.ports = ports
        supervisor.run()
        return
    server = DrainingServer(config)
    server.drain_seconds = drain_seconds
    sockets = [listening_socket(host, p) for p in ports]
    for sock in sockets:
        log.info("listening on http://%s:%d", host, sock.getsockname()[1])
    server.run(sockets=sockets)
