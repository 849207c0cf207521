"""The one server command, used by `make run`, the benchmarks and the container images.

Graceful shutdown on SIGTERM: readiness goes false at once, the server keeps serving for
SHUTDOWN_DRAIN_SECONDS so the load balancer can take it out of rotation, then stops accepting and
finishes the requests in flight.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

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


def serve_settings(app: str, settings: ServiceSettings) -> None:
    """`serve` with the host, port, workers, drain and log level of a service's settings."""
    serve(
        app,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        drain_seconds=settings.shutdown_drain_seconds,
        log_level=settings.log_level,
    )


def serve(
    app: str,
    *,
    host: str,
    port: int,
    workers: int = 1,
    drain_seconds: float = 0.0,
    log_level: str = "info",
) -> None:
    """Runs `app` ("module:factory", an app factory) until SIGTERM/SIGINT."""
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
        uvicorn.supervisors.Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    server = DrainingServer(config)
    server.drain_seconds = drain_seconds
    server.run()
