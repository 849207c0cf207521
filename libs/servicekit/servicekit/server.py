"""The one server command, used by `make run`, the benchmarks and the container images.

Graceful shutdown on SIGTERM, in every worker: readiness goes false at once, the server keeps
serving for SHUTDOWN_DRAIN_SECONDS so the load balancer can take it out of rotation, then stops
accepting and finishes the requests in flight. SIGINT (Ctrl-C: a person at a terminal, not an
orchestrator) skips the drain; a second SIGINT stops without waiting for requests in flight.

Besides its TCP port(s), a server may listen on a Unix socket (`UNIX_SOCKET`): compose's gateway
reaches each replica that way, through a volume both mount, instead of a second TCP hop over
Docker's bridge (bench/README.md, "Through the gateway"). Everything else (the other services,
health checks, direct calls) keeps using TCP.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import socket
import stat
import threading
from collections.abc import Iterator
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from servicekit.lifecycle import begin_shutdown
from servicekit.limits import LimitedConfig, RequestLimits
from servicekit.proxy_headers import ProxyHeaders
from servicekit.settings import ServiceSettings

log = logging.getLogger("servicekit.server")


class DrainingServer(uvicorn.Server):
    drain_seconds: float = 0.0

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        begin_shutdown()
        if getattr(self, "_draining", False):
            if sig == signal.SIGINT:
                self._stop(sig)  # Ctrl-C while draining means "now"
            # A repeated SIGTERM changes nothing: an orchestrator may signal the whole process
            # group (the supervisor then forwards its own), and the drain has its deadline.
            return
        if self.should_exit or self.drain_seconds <= 0 or sig == signal.SIGINT:
            self._stop(sig)
            return
        self._draining = True
        log.info("shutdown requested; draining for %.1fs", self.drain_seconds)
        timer = threading.Timer(self.drain_seconds, self._stop, (signal.SIGTERM,))
        timer.daemon = True
        timer.start()

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


# Who may connect to the Unix socket: the service's own user and group. Compose gives the
# gateway the services' group; nobody else can even reach the file (a volume of their own).
UNIX_SOCKET_MODE = 0o660


class ServerConfig(LimitedConfig):
    """uvicorn's configuration with the request limits (servicekit.limits), and the kit's
    X-Forwarded-For handling (servicekit.proxy_headers: Unix socket peers too) in place of
    uvicorn's own."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, proxy_headers=False, **kwargs)

    def load(self) -> None:
        super().load()
        self.loaded_app = ProxyHeaders(self.loaded_app, self.forwarded_allow_ips)


@contextlib.contextmanager
def unix_listening_socket(path: Path) -> Iterator[socket.socket]:
    """A Unix stream socket bound at `path` (mode UNIX_SOCKET_MODE) while the block runs; the
    file is removed at the end if it is still this socket's.

    A socket file left by a server that was killed (SIGKILL, a crashed container) is removed
    first: nothing answers a connection to it. One that answers belongs to a running server,
    and this one stops rather than steal its path.
    """
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(mode):
            raise SystemExit(f"cannot listen on {path}: the file exists and is not a socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            try:
                probe.connect(str(path))
            except (ConnectionRefusedError, FileNotFoundError):
                log.info("removing the stale socket file %s", path)
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise SystemExit(f"cannot listen on {path}: {exc.strerror or exc}") from exc
            else:
                raise SystemExit(f"cannot listen on {path}: another server listens on it")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, UNIX_SOCKET_MODE)
    except OSError as exc:
        sock.close()
        raise SystemExit(f"cannot listen on {path}: {exc.strerror or exc}") from exc
    bound = path.stat().st_ino
    sock.set_inheritable(True)
    try:
        yield sock
    finally:
        sock.close()
        try:
            if path.stat().st_ino == bound:  # not a successor's socket at the same path
                path.unlink()
        except FileNotFoundError:
            pass


def run_worker(
    config: uvicorn.Config,
    ports: tuple[int, ...],
    drain_seconds: float,
    shared: tuple[socket.socket, ...] = (),
) -> None:
    """One worker of a multi-worker server (in its own process): a DrainingServer on sockets of
    its own in one SO_REUSEPORT group per port, plus the `shared` sockets (the Unix socket)
    that the supervisor bound once for all workers.

    With one shared socket, whichever worker wakes first accepts a whole burst of new
    connections: the benchmark saw all 32 of a client's keep-alive connections land on one of
    two workers, which then did all the work at half the machine's capacity while the other
    idled (bench/README.md). With a socket per worker, the kernel spreads new connections across
    the workers by a hash of their addresses.

    Linux has no SO_REUSEPORT group for Unix sockets (a second bind of the path fails), so all
    workers accept from the one socket: the kernel hands each new connection to whichever
    worker's accept comes first. Measured with HAProxy in front and wrk's 32 connections
    through it, the socket's connections split 13/19, 15/17 and 16/17 over two workers.
    """
    server = DrainingServer(config)
    server.drain_seconds = drain_seconds
    sockets = [listening_socket(config.host, port, reuse_port=True) for port in ports]
    server.run(sockets=[*sockets, *shared])


class WorkerSupervisor:
    """Runs `workers` copies of run_worker and hands every signal on to each of them.

    Each worker drains on its own SIGTERM exactly as a single-worker server does (readiness
    false, serve through the drain, stop accepting, finish in flight), so all of them leave the
    load balancer's rotation together. A worker that dies is replaced, unless it failed to
    start (a broken app or port fails the same way every time: the supervisor stops instead).
    """

    def __init__(
        self,
        config: uvicorn.Config,
        ports: tuple[int, ...],
        workers: int,
        drain_seconds: float,
        shared: tuple[socket.socket, ...] = (),
    ) -> None:
        self.config = config
        self.ports = ports
        self.count = workers
        self.drain_seconds = drain_seconds
        self.shared = shared
        # Filled by the signal handler: SimpleQueue.put is safe to call from one.
        self.signals: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.workers: list[BaseProcess] = []

    def _start_worker(self) -> BaseProcess:
        process = multiprocessing.get_context("spawn").Process(
            target=run_worker, args=(self.config, self.ports, self.drain_seconds, self.shared)
        )
        process.start()
        return process

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda sig, _frame: self.signals.put(sig))
        log.info("supervisor %d starting %d workers", os.getpid(), self.count)
        self.workers = [self._start_worker() for _ in range(self.count)]
        exit_code = 0
        while True:
            try:
                received = self.signals.get(timeout=0.5)
                break
            except queue.Empty:
                pass
            if any(w.exitcode == STARTUP_FAILURE for w in self.workers):
                log.error("a worker failed to start; stopping")
                received, exit_code = signal.SIGTERM, STARTUP_FAILURE
                break
            for index, worker in enumerate(self.workers):
                if worker.exitcode is not None:
                    log.warning("worker %s exited (%s); replacing it", worker.pid, worker.exitcode)
                    self.workers[index] = self._start_worker()
        log.info("supervisor received signal %d; stopping %d workers", received, self.count)
        self._signal_workers(received)
        # No worker is started any more: without the supervisor's copy, the shared socket
        # closes when the last worker stops accepting, and a connection is then refused at
        # once instead of waiting in a queue that nobody accepts from.
        for sock in self.shared:
            sock.close()
        for worker in self.workers:
            # A second Ctrl-C reaches the workers from the terminal itself.
            while worker.exitcode is None:
                worker.join(0.5)
                self._forward_pending()
        return exit_code

    def _forward_pending(self) -> None:
        try:
            while True:
                self._signal_workers(self.signals.get_nowait())
        except queue.Empty:
            pass

    def _signal_workers(self, sig: int) -> None:
        for worker in self.workers:
            if worker.exitcode is None and worker.pid is not None:
                os.kill(worker.pid, sig)


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
        limits=settings.request_limits(),
        unix_socket=settings.unix_socket,
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
    limits: RequestLimits | None = None,
    unix_socket: Path | None = None,
) -> None:
    """Runs `app` ("module:factory", an app factory) until SIGTERM/SIGINT.

    With `internal_port`, the same app listens on that port too; the kit's
    InternalPortMiddleware decides which routes each port serves. `limits`: the request line
    and header limits the server enforces (servicekit.limits; the app enforces the body's).
    With `unix_socket`, the app also listens on a Unix socket at that path, serving what the
    main port serves (unix_listening_socket; servicekit.proxy_headers for its peers).
    """
    ports = (port,) if internal_port is None else (port, internal_port)
    config = ServerConfig(
        app,
        limits=limits or RequestLimits(),
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,  # our JSON logging is configured by the app factory
        access_log=False,  # our middleware writes the access log with the route template
        log_level=log_level.lower(),
        server_header=False,
        timeout_graceful_shutdown=30,
        loop="uvloop",
    )
    with contextlib.ExitStack() as stack:
        shared: tuple[socket.socket, ...] = ()
        if unix_socket is not None:
            shared = (stack.enter_context(unix_listening_socket(unix_socket)),)
            log.info("listening on unix:%s", unix_socket)
        if workers > 1:
            # The supervisor holds its ports for as long as it runs: bound in the workers'
            # SO_REUSEPORT group but never listening, so it takes no connection. Any other
            # server's bind of the port then fails, with a message, instead of joining the
            # group: our other services set SO_REUSEPORT too, and one started on a port already
            # served (or between a released probe and our workers' binds) would silently take
            # half its connections.
            # A bind without SO_REUSEPORT first: it fails on any port already bound, by
            # anyone (a bind with it would join another server's group).
            for probe in [listening_socket(host, p) for p in ports]:
                probe.close()
            for sock in [listening_socket(host, p, reuse_port=True) for p in ports]:
                stack.callback(sock.close)
            exit_code = WorkerSupervisor(config, ports, workers, drain_seconds, shared).run()
            if exit_code:
                raise SystemExit(exit_code)
            return
        server = DrainingServer(config)
        server.drain_seconds = drain_seconds
        sockets = [listening_socket(host, p) for p in ports]
        for sock in sockets:
            log.info("listening on http://%s:%d", host, sock.getsockname()[1])
        server.run(sockets=[*sockets, *shared])
