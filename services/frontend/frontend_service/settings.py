"""Configuration of the frontend, from the environment (see servicekit.settings)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from servicekit.settings import ServiceSettings

DEFAULT_USERS_URL = "http://127.0.0.1:8001"
DEFAULT_THOUGHTS_URL = "http://127.0.0.1:8000"
# The oldest backend versions whose API this frontend speaks (checked at start-up).
MIN_USERS_VERSION = "0.1"
MIN_THOUGHTS_VERSION = "0.1"
MIN_SECRET_KEY_LENGTH = 32


def socket_paths(value: str) -> tuple[str, ...]:
    """The paths of a comma-separated list (USERS_UNIX_SOCKETS), blanks dropped."""
    return tuple(path.strip() for path in value.split(",") if path.strip())


class FrontendSettings(ServiceSettings):
    service_name: str = "frontend"
    port: int = Field(default=8002, ge=1, le=65535)
    # INTERNAL_PORT: metrics, docs, the OpenAPI schema and /admin/version/ are served there,
    # never on the public port (servicekit.surface). On by default: the frontend's port is the
    # public web site, whoever starts it and however (make run gives it a port of its own).
    internal_port: int | None = Field(default=9002, ge=1, le=65535)

    users_url: str = DEFAULT_USERS_URL
    thoughts_url: str = DEFAULT_THOUGHTS_URL
    # USERS_UNIX_SOCKETS / THOUGHTS_UNIX_SOCKETS: the replicas' Unix sockets (servicekit's
    # UNIX_SOCKET), comma-separated absolute paths, to call them there instead of at the URL's
    # host (which then only names them). Compose sets both: users believes the visitor's address
    # this frontend forwards (its per-address login throttle) only from a peer on its socket, so
    # no other container, and no process reaching users' published port, can choose the address
    # it is counted as; and a call over a socket costs both sides less than one over TCP.
    users_unix_sockets: str = ""
    thoughts_unix_sockets: str = ""

    # Secure cookies are only sent over HTTPS: turn off for plain-HTTP local runs only.
    cookie_secure: bool = True
    # Signs the CSRF tokens. Give it as SECRET_KEY or, better, SECRET_KEY_FILE.
    secret_key: SecretStr

    # Thoughts per page on the home and search pages.
    page_size: int = Field(default=20, ge=1, le=100)

    @field_validator("secret_key")
    @classmethod
    def _long_secret(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(
                f"must be at least {MIN_SECRET_KEY_LENGTH} characters; make one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        return value

    @field_validator("users_url", "thoughts_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("users_unix_sockets", "thoughts_unix_sockets")
    @classmethod
    def _absolute_paths(cls, value: str) -> str:
        paths = socket_paths(value)
        relative = [path for path in paths if not path.startswith("/")]
        if relative:
            raise ValueError(f"must be absolute paths, comma-separated; not: {', '.join(relative)}")
        return ",".join(paths)

    @model_validator(mode="before")
    @classmethod
    def _default_dependencies(cls, data: Any) -> Any:
        """Without DEPENDENCIES, check the users and thoughts services this frontend calls.

        DEPENDENCIES="" (set but empty) turns the start-up check off.
        """
        if isinstance(data, dict) and "dependencies" not in data:
            users = str(data.get("users_url", DEFAULT_USERS_URL)).strip().rstrip("/")
            thoughts = str(data.get("thoughts_url", DEFAULT_THOUGHTS_URL)).strip().rstrip("/")
            data = {
                **data,
                "dependencies": (
                    f"users={users}>={MIN_USERS_VERSION},"
                    f"thoughts={thoughts}>={MIN_THOUGHTS_VERSION}"
                ),
            }
        return data
