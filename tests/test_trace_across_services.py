"""One browser action, one trace: frontend -> users and frontend -> thoughts, parent to child.

"Log in, then post a thought" as an instrumented browser makes it: one root span, its
`traceparent` on each request the browser sends (the login form, the login, the home page it
is sent to, the post). The three services run in this process so that one OpenTelemetry SDK
provider with the in-memory exporter sees every span (testkit's `span_exporter`):
users and thoughts as real uvicorn servers on free ports, so the frontend's calls and the
`traceparent` they carry go over real HTTP; the frontend through its ASGI interface, as the
browser's first hop. Tracing is switched on the way production switches it on, by setting
OTEL_EXPORTER_OTLP_ENDPOINT in each service's settings (the kit then uses the provider it finds).

Also checked: every access-log line of those requests, in all three services, names the trace.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from devtools.__main__ import build_parser
from devtools.logs import main as logs_main
from frontend_service.main import create_app as create_frontend
from frontend_service.settings import FrontendSettings
from servicekit.logs import JsonFormatter
from servicekit.tracing import PROPAGATOR
from testkit import DatabaseFactory, StartedApps, csrf_token, free_port
from thoughts_service.main import MIGRATIONS_DIR as THOUGHTS_MIGRATIONS
from thoughts_service.main import create_app as create_thoughts
from thoughts_service.settings import ThoughtsSettings
from users_service.main import MIGRATIONS_DIR as USERS_MIGRATIONS
from users_service.main import create_app as create_users
from users_service.settings import UsersSettings
from users_service.signing import generate_key

# Tracing on, as OTEL_EXPORTER_OTLP_ENDPOINT turns it on; nothing is sent there, because the
# test's provider (the in-memory exporter) is installed first and the kit keeps it.
OTLP_ENDPOINT = "http://127.0.0.1:4318"


class Lines(logging.Handler):
    """Formats each record as the services' JSON line at the moment it is logged (the trace id
    is read from the request's context then, as on stdout)."""

    def __init__(self) -> None:
        super().__init__()
        self.formatter_ = JsonFormatter("any", "test")
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.formatter_.format(record)))


@pytest.fixture
def restored_logging() -> Iterator[None]:
    # create_service_app replaces the root handlers (servicekit.logs): put them back afterwards.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def _serve(app: FastAPI, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server stopped while starting"
        await asyncio.sleep(0.02)
    return server, task


@pytest.fixture
def databases(database_factory: DatabaseFactory) -> dict[str, str]:
    # Migrated here, outside the event loop: Alembic runs one of its own.
    return {
        "users": database_factory.fresh("sqlite", USERS_MIGRATIONS),
        "thoughts": database_factory.fresh("sqlite", THOUGHTS_MIGRATIONS),
    }


@pytest.fixture
async def three_services(
    span_exporter: Any, restored_logging: None, databases: dict[str, str], tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Lines]]:
    keys = tmp_path / "keys"
    generate_key(keys, "trace-key")
    users_port, thoughts_port = free_port(), free_port()
    users_url, thoughts_url = f"http://127.0.0.1:{users_port}", f"http://127.0.0.1:{thoughts_port}"
    common: dict[str, Any] = {
        "version_name": "0.1.0",
        "version_sha": "test",
        "otel_exporter_otlp_endpoint": OTLP_ENDPOINT,
    }
    users = create_users(
        UsersSettings(
            database_url=databases["users"],
            jwt_keys_dir=keys,
            argon2_time_cost=1,
            argon2_memory_kib=1024,
            argon2_parallelism=1,
            **common,
        )
    )
    thoughts = create_thoughts(
        ThoughtsSettings(
            database_url=databases["thoughts"],
            auth_jwks_url=f"{users_url}/.well-known/jwks.json",
            **common,
        )
    )
    frontend = create_frontend(
        FrontendSettings(
            users_url=users_url,
            thoughts_url=thoughts_url,
            secret_key="a-test-secret-key-that-is-long-enough-0123456789",
            cookie_secure=False,
            **common,
        )
    )
    lines = Lines()
    logging.getLogger().addHandler(lines)
    servers = [await _serve(users, users_port), await _serve(thoughts, thoughts_port)]
    apps = StartedApps()
    try:
        async with httpx.AsyncClient() as client:
            created = await client.post(
                f"{users_url}/admin/users/", json={"username": "tracy", "password": "tracy-pass-1"}
            )
            assert created.status_code == 201, created.text
            # thoughts fetches the signing keys in the background: ready once it has them.
            for _ in range(200):
                if (await client.get(f"{thoughts_url}/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
        browser = await apps.client(frontend, base_url="http://frontend.test")
        span_exporter.clear()  # only the browser action's spans from here on
        yield browser, lines
    finally:
        await apps.aclose()
        for server, task in servers:
            server.should_exit = True
            await task


def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def _service(span: ReadableSpan) -> str:
    # The kit names each service's tracer after the service.
    assert span.instrumentation_scope is not None
    return span.instrumentation_scope.name


async def test_log_in_and_post_through_the_site_is_one_trace_across_three_services(
    three_services: tuple[httpx.AsyncClient, Lines], span_exporter: Any, tmp_path: Path
) -> None:
    browser, lines = three_services
    tracer = trace.get_tracer("browser")
    with tracer.start_as_current_span("browser: log in and post") as root:

        def traced() -> dict[str, str]:
            headers: dict[str, str] = {}
            PROPAGATOR.inject(headers)  # the current span: the browser's action
            return headers

        form = await browser.get("/login", headers=traced())
        login = await browser.post(
            "/login",
            data={
                "username": "tracy",
                "password": "tracy-pass-1",
                "csrf_token": csrf_token(form.text),
            },
            headers=traced(),
        )
        assert login.status_code == 303, login.text[:300]
        home = await browser.get("/", headers=traced())
        posted = await browser.post(
            "/thoughts/",
            data={"text": "one trace, three services", "csrf_token": csrf_token(home.text)},
            headers=traced(),
        )
        assert posted.status_code == 303, posted.text[:300]
    trace_id = root.get_span_context().trace_id

    spans: list[ReadableSpan] = list(span_exporter.get_finished_spans())
    assert spans
    assert {s.context.trace_id for s in spans} == {trace_id}, "every span in the one trace"
    # One SERVER span per request, the kit's: FastAPI's own telemetry is off (servicekit.app).
    assert {_service(s) for s in spans} == {"browser", "frontend", "users", "thoughts"}
    root_span = next(s for s in spans if s.name == "browser: log in and post")
    assert root_span.parent is None

    frontend_requests = {s.name: s for s in _children(spans, root_span)}
    assert set(frontend_requests) >= {"GET /login", "POST /login", "GET /", "POST /thoughts/"}
    assert all(
        _service(s) == "frontend" and s.kind is SpanKind.SERVER for s in frontend_requests.values()
    )

    def call_into(frontend_span: str, service: str, route: str) -> ReadableSpan:
        """frontend SERVER -> frontend CLIENT -> <service> SERVER `route`, parent to child."""
        calls = [
            c
            for c in _children(spans, frontend_requests[frontend_span])
            if c.kind is SpanKind.CLIENT
            and c.attributes
            and c.attributes.get("peer.service") == service
        ]
        assert calls, f"{frontend_span}: no call to {service}"
        served = [s for c in calls for s in _children(spans, c) if s.kind is SpanKind.SERVER]
        assert [(_service(s), s.name) for s in served] == [(service, route)], served
        return served[0]

    login_in_users = call_into("POST /login", "users", "POST /api/login/")
    home_in_thoughts = call_into("GET /", "thoughts", "GET /api/me/thoughts/")
    post_in_thoughts = call_into("POST /thoughts/", "thoughts", "POST /api/me/thoughts/")
    # Each service's database statements are children of the request that ran them.
    for served in (login_in_users, home_in_thoughts, post_in_thoughts):
        statements = [
            s for s in _children(spans, served) if s.attributes and "db.system" in s.attributes
        ]
        assert statements, f"{served.name}: no database span"
        assert all(_service(s) == _service(served) for s in statements)

    # Every access-log line of these requests names the trace, in all three services.
    trace_hex = format(trace_id, "032x")
    access = [line for line in lines.lines if line["logger"] == "servicekit.access"]
    for route in ("/login", "/", "/thoughts/", "/api/login/", "/api/me/thoughts/"):
        logged = [line for line in access if line.get("route") == route]
        assert logged, f"no access line for {route}"
        assert {line["trace_id"] for line in logged} == {trace_hex}, route

    # `python -m devtools logs <trace id>` finds the same lines (here from one saved file).
    saved = tmp_path / "services.log"
    saved.write_text("".join(f"svc-1  | {json.dumps(line)}\n" for line in lines.lines))
    output = io.StringIO()
    args = build_parser().parse_args(["logs", trace_hex, str(saved)])
    assert logs_main(args, tmp_path, output) == 0
    shown = output.getvalue().splitlines()
    assert len(shown) == len([line for line in lines.lines if line["trace_id"] == trace_hex])
    assert all(line.endswith(f"trace={trace_hex}") for line in shown)
