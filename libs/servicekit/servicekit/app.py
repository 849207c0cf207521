"""`create_service_app(...)`: one call gives a service its whole operational surface.

Modelled on eShop's AddServiceDefaults(): JSON logs with request ids, access log, metrics,
/healthz, /readyz, /admin/version/, problem+json errors, the database, the HTTP client, the
start-up dependency check and graceful shutdown. A service adds only its own routers.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.responses import Response
from starlette.routing import Route

from servicekit.admin import AdminGuardMiddleware, admin_headers, declare_admin_security
from servicekit.db import Database, DatabaseOptions
from servicekit.flags import BadFlagFile, Flags
from servicekit.head import HeadAsGetMiddleware
from servicekit.http import create_http_client
from servicekit.lifecycle import is_shutting_down
from servicekit.limits import BodyLimitMiddleware, Refusal, problem_refusal
from servicekit.logs import configure_logging, flush_logs
from servicekit.metrics import Metrics
from servicekit.middleware import ObservabilityMiddleware
from servicekit.migrations import head_revision, known_revisions
from servicekit.problems import (
    install_problem_handlers,
    patch_openapi_validation_responses,
    problem_response,
)
from servicekit.readiness import DatabaseReadiness
from servicekit.settings import ConfigError, ServiceSettings
from servicekit.surface import InternalPortMiddleware
from servicekit.tracing import Tracing
from servicekit.upstreams import DependencyError, check_dependencies, parse_dependencies
from servicekit.version import VersionInfo, resolve_version

log = logging.getLogger("servicekit.app")

Hook = Callable[[FastAPI], Awaitable[None]]
# A service's own readiness condition: None when ready, else what is missing (shown by /readyz).
# Called on every probe, so it only reads state (no I/O).
ReadinessCheck = Callable[[FastAPI], str | None]


@dataclass
class ServiceSpec:
    """What a service tells the kit about itself."""

    title: str
    description: str
    package_version: str
    routers: Sequence[APIRouter] = ()
    migrations_dir: Path | None = None
    on_startup: Sequence[Hook] = ()
    on_shutdown: Sequence[Hook] = ()
    extra_state: dict[str, Any] = field(default_factory=dict)
    readiness_checks: Mapping[str, ReadinessCheck] = field(default_factory=dict)
    # How the service's Database connects; by default from the settings' DB_* values
    # (DatabaseOptions.from_settings).
    database_options: DatabaseOptions | None = None
    # How the kit answers a body it refuses before the routes see it (over MAX_BODY_BYTES, or
    # a Content-Length that is not a number): problem+json unless the service's clients are
    # browsers (the frontend renders a page).
    refusal: Refusal = problem_refusal


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """Makes the router's routes the app's own, where `app.include_router(router)` would nest it.

    FastAPI (0.165) serves an included router as a nested router that matches a request twice,
    once to pick the router and again inside it, past every route of the routers before it:
    on the benchmark's machine ~100 microseconds of a 700 microsecond request. A router's
    prefix, tags and dependencies are already part of each of its routes (FastAPI applies them
    when a route is declared), so the routes can join the app's list as they are. Start-up and
    shutdown hooks of a router would be lost that way: a router with any is refused.
    """
    if router.on_startup or router.on_shutdown:
        raise ValueError("add_routes: the router has start-up or shutdown hooks; use the spec's")
    app.router.routes.extend(router.routes)


def docs_routes_last(app: FastAPI) -> None:
    """Moves FastAPI's documentation routes (/openapi.json, /docs, /docs/oauth2-redirect,
    /redoc) after the service's own.

    FastAPI puts them first, and a request is matched against every route before its own: on
    the benchmark's machine a route that does not match costs about a microsecond, and every
    API request paid four for pages a person opens by hand (bench/README.md, issue 15 target 7).
    Moved only when no other route matches a documentation path, so that every request still
    reaches the route it reached before; the schema is the same (these routes are not in it).
    """
    paths = {app.openapi_url, app.docs_url, app.swagger_ui_oauth2_redirect_url, app.redoc_url}
    routes = app.router.routes
    docs = [r for r in routes if type(r) is Route and r.path in paths]
    others = [r for r in routes if not any(r is d for d in docs)]
    for route in others:
        regex = getattr(route, "path_regex", None)
        if regex is None or any(regex.match(d.path) for d in docs):
            return  # a mount, or a route that could take a documentation path: leave the order
    routes[:] = [*others, *docs]


def _ops_router(readiness_checks: Mapping[str, ReadinessCheck]) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process answers (no I/O)")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: database reachable, migrations at head, not shutting down",
        responses={503: {"description": "Not ready"}},
    )
    async def readyz(request: Request) -> Response:
        checks: dict[str, str] = {}
        ready = True
        if is_shutting_down():
            checks["shutdown"] = "in progress"
            ready = False
        for name, check in readiness_checks.items():
            missing = check(request.app)
            checks[name] = missing or "ok"
            ready = ready and missing is None
        database: DatabaseReadiness | None = request.app.state.database_readiness
        if database is not None:
            # Busy is not unready, unreachable is (the rule: servicekit.readiness).
            database_ready, database_checks = await database.check()
            checks |= database_checks
            ready = ready and database_ready
        if not ready:
            return problem_response(503, "not ready", checks=checks)
        return JSONResponse({"status": "ready", "checks": checks})

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        body = request.app.state.metrics.render()
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @router.get("/admin/version/", summary="The running version and commit")
    async def version(request: Request) -> dict[str, str]:
        info: VersionInfo = request.app.state.version
        return {"version": info.version, "commit": info.commit}

    return router


def create_service_app(settings: ServiceSettings, spec: ServiceSpec) -> FastAPI:
    version = resolve_version(settings.version_name, settings.version_sha, spec.package_version)
    configure_logging(
        settings.service_name, version.version, settings.log_level, settings.log_flush_seconds
    )
    dependencies = parse_dependencies(settings.dependencies)
    tracing = Tracing.from_settings(
        settings.service_name, version.version, settings.otel_exporter_otlp_endpoint
    )

    admin_token = settings.admin_token.get_secret_value() if settings.admin_token else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if admin_token is None:
            log.warning(
                "no ADMIN_TOKEN is configured: /admin/* answers without credentials; "
                "set ADMIN_TOKEN or ADMIN_TOKEN_FILE anywhere but a developer's loopback"
            )
        if dependencies:
            try:
                await check_dependencies(
                    dependencies,
                    app.state.http,
                    wait_seconds=settings.dependency_wait_seconds,
                    headers=admin_headers(admin_token),
                )
            except DependencyError as exc:
                # The server logs the failed start-up as a traceback; say why in one line first.
                log.critical("refusing to start: %s", exc)
                raise
        for hook in spec.on_startup:
            await hook(app)
        # Everything made so far (modules, routes, schemas, table metadata: over 100,000
        # objects) lives as long as the process. Moved out of the collector's sight, it no
        # longer makes each full collection a pause of ~75 ms for every request in flight,
        # which the benchmark saw as p99 latency (bench/README.md).
        gc.collect()
        gc.freeze()
        log.info("%s %s started", settings.service_name, version.version)
        try:
            yield
        finally:
            for hook in reversed(spec.on_shutdown):
                await hook(app)
            await app.state.http.aclose()
            if app.state.database_readiness is not None:
                app.state.database_readiness.close()
            if app.state.db is not None:
                await app.state.db.dispose()
            if tracing is not None:
                tracing.shutdown()
            log.info("%s stopped", settings.service_name)
            # Exit flushes too (logging's shutdown); this also covers an app stopped and
            # dropped inside a process that goes on (tests, an embedding server).
            flush_logs()

    app = FastAPI(
        title=spec.title,
        description=spec.description,
        version=version.version,
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry (on by default whenever the SDK is installed) would add a
        # second SERVER span to every request beside the kit's (servicekit.tracing), whether
        # or not tracing is on, and could install exporters from the environment: the kit
        # alone traces, and only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
        telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False},
    )
    app.state.settings = settings
    app.state.version = version
    app.state.metrics = Metrics(settings.service_name)
    try:
        app.state.flags = Flags.from_file(
            settings.feature_flags_file,
            service=settings.service_name,
            reload_seconds=settings.feature_flags_reload_seconds,
        )
    except BadFlagFile as exc:
        raise ConfigError(f"configuration error: FEATURE_FLAGS_FILE: {exc}") from None
    app.state.tracing = tracing
    app.state.db = (
        Database(
            settings.database_url,
            spec.database_options or DatabaseOptions.from_settings(settings),
            tracing=tracing,
        )
        if spec.migrations_dir
        else None
    )
    if app.state.db is not None:
        app.state.metrics.watch_pools(app.state.db.pool_stats)
    app.state.database_readiness = (
        DatabaseReadiness(
            app.state.db,
            head=head_revision(spec.migrations_dir),
            known=known_revisions(spec.migrations_dir),
        )
        if app.state.db is not None and spec.migrations_dir
        else None
    )
    app.state.http = create_http_client(
        timeout_seconds=settings.http_timeout_seconds,
        retries=settings.http_retries,
        metrics=app.state.metrics,
        tracing=tracing,
    )
    for key, value in spec.extra_state.items():
        setattr(app.state, key, value)

    install_problem_handlers(app)
    app.add_middleware(HeadAsGetMiddleware)
    app.add_middleware(BodyLimitMiddleware, limits=settings.request_limits(), refusal=spec.refusal)
    # Inside the observability middleware, so that refused requests are logged and counted.
    app.add_middleware(AdminGuardMiddleware, token=admin_token)
    if settings.internal_port is not None:
        app.add_middleware(InternalPortMiddleware, internal_port=settings.internal_port)
    app.add_middleware(ObservabilityMiddleware, metrics=app.state.metrics, tracing=tracing)
    for router in (_ops_router(spec.readiness_checks), *spec.routers):
        add_routes(app, router)
    docs_routes_last(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema = patch_openapi_validation_responses(schema)
            # Only a configured token guards admin routes; the schema says what the server does.
            app.openapi_schema = declare_admin_security(schema) if admin_token else schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
