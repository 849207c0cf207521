"""Typed settings from the environment (12-factor).

Every service subclasses `ServiceSettings`. Any field may also be given as `<NAME>_FILE`, the path
of a file holding the value: that is how container orchestrators hand out secrets without putting
them in the environment. Bad or missing configuration stops the service at start-up with one clear
message per problem instead of failing later on the first request.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from servicekit.limits import RequestLimits


class ConfigError(SystemExit):
    """Raised at start-up for unusable configuration; exits with the message, not a traceback."""


class FileVariantSource(PydanticBaseSettingsSource):
    """Reads `<NAME>_FILE` for every field: the value is the file's content, stripped."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        env_name = f"{field_name.upper()}_FILE"
        path = os.environ.get(env_name)
        if not path:
            return None, field_name, False
        try:
            return Path(path).read_text(encoding="utf-8").strip(), field_name, False
        except OSError as exc:
            raise ConfigError(
                f"configuration error: {env_name}={path!r} cannot be read: {exc}"
            ) from exc

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                values[key] = value
        return values


class ServiceSettings(BaseSettings):
    """Settings every service has. Subclasses add their own fields."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    service_name: str = "service"
    database_url: str = Field(
        default="sqlite+aiosqlite:///var/service.db",
        description="sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host/db",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    log_level: str = Field(default="INFO", pattern="(?i)^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    # Log lines are written in batches at most this often (and at once for a WARNING or worse,
    # at 64 KiB and at exit): one write per batch instead of one per line, like nginx's
    # `access_log buffer= flush=`. A process killed without an exit (SIGKILL, OOM) loses at most
    # this much of its log. 0 writes every line at once (servicekit.logs).
    log_flush_seconds: float = Field(default=0.2, ge=0, le=5)
    version_name: str | None = None
    version_sha: str | None = None
    # Seconds /readyz reports "not ready" before the server stops accepting connections, so that
    # a load balancer takes the instance out of rotation before any request is refused. 10 s
    # covers the slowest prober we deploy behind: a Kubernetes readiness probe every 5 s, out
    # after 2 failures; the gateway (a check every 1 s, out after 2) needs ~3 s. Local runs and
    # tests, with no load balancer, set 0.
    shutdown_drain_seconds: float = Field(default=10.0, ge=0, le=60)
    http_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    http_retries: int = Field(default=2, ge=0, le=5)
    # Comma-separated "name=url>=min_version" entries checked at start-up.
    dependencies: str = ""
    dependency_wait_seconds: float = Field(default=30.0, ge=0, le=600)
    # Database connections per worker process, all pools together (servicekit.db).
    db_pool_size: int = Field(default=10, ge=1, le=200)
    # Reads that may be slow (a scan, a search) run at most this many at once per process; the
    # others wait this long for a turn, then answer 503 with Retry-After (servicekit.admission).
    db_slow_queries: int = Field(default=2, ge=1, le=64)
    db_slow_query_wait_seconds: float = Field(default=1.0, ge=0, le=60)
    # Client-side deadlines of every database operation (servicekit.db.DatabaseOptions): a
    # database that stops answering fails a request with 503 in seconds, not at the end of the
    # outage (the server's statement_timeout cannot fire when the server is unreachable).
    db_connect_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    db_acquire_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    db_query_timeout_seconds: float = Field(default=3.0, gt=0, le=600)
    # The bearer token every /admin/* request must carry (servicekit.admin). Unset: admin routes
    # answer loopback clients only, with a warning at start-up. Give it as ADMIN_TOKEN_FILE.
    admin_token: SecretStr | None = None
    # A second port for /metrics, /docs, /openapi.json and /admin/* (servicekit.surface), which
    # the main port then no longer serves. Unset: one port serves everything.
    internal_port: int | None = Field(default=None, ge=1, le=65535)

    # A Unix socket the server listens on besides its port(s), serving what the main port
    # serves (servicekit.server): how compose's gateway reaches each replica, through a volume
    # both mount. Its peers' X-Forwarded-For is believed (servicekit.proxy_headers).
    unix_socket: Path | None = None

    @field_validator("unix_socket")
    @classmethod
    def _usable_socket_path(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        if not value.is_absolute():
            raise ValueError(f"must be an absolute path, got {str(value)!r}")
        # The kernel's limit: sockaddr_un holds 108 bytes, the last one a NUL.
        if len(os.fsencode(value)) > 107:
            raise ValueError("a Unix socket's path may be at most 107 bytes long")
        return value

    @field_validator("admin_token")
    @classmethod
    def _long_admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        from servicekit.admin import MIN_ADMIN_TOKEN_LENGTH

        if value is not None and len(value.get_secret_value()) < MIN_ADMIN_TOKEN_LENGTH:
            raise ValueError(
                f"must be at least {MIN_ADMIN_TOKEN_LENGTH} characters; make one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @model_validator(mode="after")
    def _distinct_ports(self) -> ServiceSettings:
        if self.internal_port is not None and self.internal_port == self.port:
            raise ValueError(f"INTERNAL_PORT must differ from PORT ({self.port})")
        return self

    # Feature flags (servicekit.flags): a YAML/JSON file, e.g. a mounted ConfigMap, looked at
    # again at most every FEATURE_FLAGS_RELOAD_SECONDS. Unset: every flag answers its default.
    feature_flags_file: Path | None = None
    feature_flags_reload_seconds: float = Field(default=5.0, ge=0, le=3600)

    # How large a request may be, checked before anything parses it (servicekit.limits): the
    # request line and headers together, the number of header lines (431 past either), the
    # body (413, Content-Length checked up front, chunked bodies cut at the limit) and the
    # fields of a form body.
    max_header_bytes: int = Field(default=32 * 1024, ge=1024, le=1024 * 1024)
    max_header_count: int = Field(default=100, ge=10, le=1000)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_form_fields: int = Field(default=64, ge=1, le=10_000)

    def request_limits(self) -> RequestLimits:
        return RequestLimits(
            max_header_bytes=self.max_header_bytes,
            max_header_count=self.max_header_count,
            max_body_bytes=self.max_body_bytes,
            max_form_fields=self.max_form_fields,
        )

    # Tracing is on when set: spans go to this OTLP/HTTP collector (servicekit.tracing).
    otel_exporter_otlp_endpoint: str | None = None

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        from servicekit.db import parse_database_url

        parse_database_url(value)  # ValueError with what to write instead
        return value

    @field_validator("dependencies")
    @classmethod
    def _dependency_spec(cls, value: str) -> str:
        from servicekit.upstreams import parse_dependencies

        parse_dependencies(value)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, FileVariantSource(settings_cls), env_settings)


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def load_settings(settings_cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Builds the settings or exits with a message naming every bad variable."""
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper() or "settings"
            problems.append(f"  {name}: {error['msg'].removeprefix('Value error, ')}")
        raise ConfigError(
            f"configuration error in {settings_cls.__name__}:\n" + "\n".join(problems)
        ) from None
    except SettingsError as exc:
        # A list/dict setting whose value is not JSON fails before validation, as SettingsError.
        raise ConfigError(f"configuration error in {settings_cls.__name__}:\n  {exc}") from None
