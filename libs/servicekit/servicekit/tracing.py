"""OpenTelemetry tracing: W3C trace context in and out, spans for requests, calls and queries.

Tracing is on when OTEL_EXPORTER_OTLP_ENDPOINT is set (spans go there over OTLP/HTTP) and
absent otherwise: no tracer is made, and the middleware, the HTTP client and the database test
one `is None` each, so a service without an endpoint pays nothing measurable. A process whose
host program has already installed an SDK tracer provider (a test's in-memory exporter, the
`opentelemetry-instrument` wrapper) keeps it instead of getting a second one.

Incoming `traceparent` headers continue the caller's trace; outgoing calls carry the current
span's. The trace id of the request is kept in `trace_id_var`, so every log line can name it
beside the request id (servicekit.logs) without asking OpenTelemetry on each line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger("servicekit.tracing")

PROPAGATOR = TraceContextTextMapPropagator()
_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})

trace_id_var: ContextVar[str | None] = ContextVar("trace_id", default=None)


def current_trace_id() -> str | None:
    return trace_id_var.get()


class Tracing:
    """The tracer of one service, or nothing; made once at construction (create_service_app)."""

    def __init__(self, tracer: Tracer, provider: Any | None) -> None:
        self.tracer = tracer
        # The provider this service installed (flushed at shutdown); None when it found one.
        self._owned_provider = provider

    @classmethod
    def from_settings(cls, service: str, version: str, endpoint: str | None) -> Tracing | None:
        if not endpoint:
            return None
        from opentelemetry.sdk.trace import TracerProvider

        provider = trace.get_tracer_provider()
        owned = None
        if not isinstance(provider, TracerProvider):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider = owned = TracerProvider(
                resource=Resource.create({"service.name": service, "service.version": version})
            )
            exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
            provider.add_span_processor(BatchSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            log.info("tracing on: spans exported to %s", endpoint)
        # The tracer is named after the service, so spans say which service made them even
        # when several services share one provider (tests run them in one process).
        return cls(provider.get_tracer(service, version), owned)

    def shutdown(self) -> None:
        if self._owned_provider is not None:
            self._owned_provider.shutdown()

    # Incoming requests ---------------------------------------------------------------------

    def start_server_span(
        self, method: str, path: str, headers: Iterable[tuple[bytes, bytes]]
    ) -> tuple[Span, object]:
        """A SERVER span continuing the caller's trace, made current; returns it and the
        token that `end_server_span` detaches."""
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in headers
            if name in _TRACE_HEADERS
        }
        parent = PROPAGATOR.extract(carrier)
        span = self.tracer.start_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        return span, token

    @staticmethod
    def end_server_span(span: Span, token: object, method: str, route: str, status: int) -> None:
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(StatusCode.ERROR)
        span.end()
        otel_context.detach(token)  # type: ignore[arg-type]

    # Outgoing calls and queries ------------------------------------------------------------

    def start_client_span(self, method: str, url: str, dependency: str) -> Span:
        return self.tracer.start_span(
            f"{method} {dependency}",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": method, "url.full": url, "peer.service": dependency},
        )

    @staticmethod
    def inject(span: Span, headers: Any) -> None:
        """Writes `traceparent` for `span` into a mutable mapping of headers."""
        PROPAGATOR.inject(headers, context=trace.set_span_in_context(span))

    def start_query_span(self, system: str, statement: str) -> Span:
        # The statement's text only: its parameters may be passwords or tokens.
        operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        return self.tracer.start_span(
            f"{operation} {system}",
            kind=SpanKind.CLIENT,
            attributes={"db.system": system, "db.statement": statement[:1000]},
        )


def end_span(span: Span, error: BaseException | None = None, *, failed: bool = False) -> None:
    if error is not None:
        span.set_status(StatusCode.ERROR, type(error).__name__)
    elif failed:
        span.set_status(StatusCode.ERROR)
    span.end()


class TracedDriverPool:
    """A driver pool (servicekit.driver) whose statements are spans; used only with tracing."""

    def __init__(self, inner: Any, tracing: Tracing, system: str) -> None:
        self._inner = inner
        self._tracing = tracing
        self._system = system

    async def fetch(
        self, sql: str, arguments: Sequence[Any], *, may_be_slow: bool = False
    ) -> list[Sequence[Any]]:
        span = self._tracing.start_query_span(self._system, sql)
        try:
            rows: list[Sequence[Any]] = await self._inner.fetch(
                sql, arguments, may_be_slow=may_be_slow
            )
        except BaseException as exc:
            end_span(span, exc)
            raise
        end_span(span)
        return rows

    async def write(self, sql: str, arguments: Sequence[Any]) -> list[Sequence[Any]]:
        span = self._tracing.start_query_span(self._system, sql)
        try:
            rows: list[Sequence[Any]] = await self._inner.write(sql, arguments)
        except BaseException as exc:
            end_span(span, exc)
            raise
        end_span(span)
        return rows

    async def close(self) -> None:
        await self._inner.close()

    def __getattr__(self, name: str) -> Any:
        # Anything else a pool offers (its size, its statistics) is the inner pool's.
        return getattr(self._inner, name)


def trace_sqlalchemy(engine: Any, tracing: Tracing, system: str) -> None:
    """A span per statement SQLAlchemy runs on `engine` (its sync engine's cursor events)."""
    from sqlalchemy import event

    def before(
        _conn: Any,
        _cursor: Any,
        statement: str,
        _parameters: Any,
        context: Any,
        _executemany: bool,
    ) -> None:
        if context is not None:
            context._servicekit_span = tracing.start_query_span(system, statement)

    def after(*args: Any) -> None:
        span = getattr(args[4], "_servicekit_span", None)
        if span is not None:
            end_span(span)

    def failed(exception_context: Any) -> None:
        span = getattr(exception_context.execution_context, "_servicekit_span", None)
        if span is not None:
            end_span(span, exception_context.original_exception)

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    event.listen(engine, "handle_error", failed)
