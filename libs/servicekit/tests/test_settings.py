"""Typed settings from the environment, `<NAME>_FILE` secrets, and start-up config errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from servicekit.settings import ConfigError, ServiceSettings, load_settings


class ListSettings(ServiceSettings):
    allowed_hosts: list[str] = []


def test_environment_values_are_parsed_and_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_NAME", "thoughts")
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.setenv("HTTP_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://thoughts@db/thoughts")

    settings = load_settings(ServiceSettings)

    assert settings.service_name == "thoughts"
    assert settings.port == 8123
    assert settings.http_timeout_seconds == 2.5
    assert settings.log_level == "debug"
    assert settings.database_url == "postgresql+asyncpg://thoughts@db/thoughts"
    assert settings.http_retries == 2  # untouched fields keep their defaults


def test_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "8123")
    assert load_settings(ServiceSettings, port=9000).port == 9000


def test_file_variant_is_read_and_stripped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "database_url"
    secret.write_text("postgresql+asyncpg://app:s3cret@db/app\n", encoding="utf-8")
    port = tmp_path / "port"
    port.write_text("  8044  \n", encoding="utf-8")
    monkeypatch.setenv("DATABASE_URL_FILE", str(secret))
    monkeypatch.setenv("PORT_FILE", str(port))

    settings = load_settings(ServiceSettings)

    assert settings.database_url == "postgresql+asyncpg://app:s3cret@db/app"
    assert settings.port == 8044


def test_empty_file_variant_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT_FILE", "")
    assert load_settings(ServiceSettings).port == 8000


def test_unreadable_file_variant_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "nope"
    monkeypatch.setenv("DATABASE_URL_FILE", str(missing))

    with pytest.raises(ConfigError) as caught:
        load_settings(ServiceSettings)

    message = str(caught.value)
    assert message.startswith(f"configuration error: DATABASE_URL_FILE='{missing}' cannot be read")
    assert "No such file or directory" in message


def test_a_directory_as_file_variant_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PORT_FILE", str(tmp_path))
    with pytest.raises(ConfigError, match=r"^configuration error: PORT_FILE="):
        load_settings(ServiceSettings)


def test_bad_values_name_every_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "abc")
    monkeypatch.setenv("LOG_LEVEL", "LOUD")

    with pytest.raises(ConfigError) as caught:
        load_settings(ServiceSettings)

    lines = str(caught.value).splitlines()
    assert lines[0] == "configuration error in ServiceSettings:"
    assert (
        lines[1] == "  PORT: Input should be a valid integer, unable to parse string as an integer"
    )
    assert lines[2].startswith("  LOG_LEVEL: String should match pattern")
    assert len(lines) == 3


def test_out_of_range_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_RETRIES", "9")
    with pytest.raises(ConfigError) as caught:
        load_settings(ServiceSettings)
    assert str(caught.value).splitlines()[1] == (
        "  HTTP_RETRIES: Input should be less than or equal to 5"
    )


def test_unparsable_complex_value_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A service's own list/dict setting that is not JSON must not escape as a traceback."""
    monkeypatch.setenv("ALLOWED_HOSTS", "not json")
    with pytest.raises(ConfigError) as caught:
        load_settings(ListSettings)
    assert str(caught.value).startswith("configuration error in ListSettings:")
    assert '"allowed_hosts"' in str(caught.value)


def test_config_error_exits_with_the_message_and_no_traceback() -> None:
    code = "from servicekit import ServiceSettings, load_settings; load_settings(ServiceSettings)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PORT": "abc", "LOG_LEVEL": "LOUD", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "configuration error in ServiceSettings:"
    assert lines[1].startswith("  PORT: ")
    assert lines[2].startswith("  LOG_LEVEL: ")
    assert len(lines) == 3  # no traceback, no pydantic dump with URLs and input values


def test_unsupported_database_and_bad_dependencies_are_config_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://db/app")
    monkeypatch.setenv("DEPENDENCIES", "users= >=1.0")
    with pytest.raises(ConfigError) as caught:
        load_settings(ServiceSettings)
    message = str(caught.value)
    assert "DATABASE_URL: DATABASE_URL driver 'mysql' is not supported" in message
    assert "DEPENDENCIES: dependency 'users= >=1.0' must look like" in message
    assert "Value error" not in message


def test_a_unix_socket_must_be_an_absolute_path_the_kernel_can_bind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UNIX_SOCKET", "/run/mythoughts/sockets/users-1.sock")
    assert load_settings(ServiceSettings).unix_socket == Path(
        "/run/mythoughts/sockets/users-1.sock"
    )
    monkeypatch.setenv("UNIX_SOCKET", "sockets/users-1.sock")
    with pytest.raises(ConfigError, match="UNIX_SOCKET: must be an absolute path"):
        load_settings(ServiceSettings)
    monkeypatch.setenv("UNIX_SOCKET", "/" + "s" * 107)
    with pytest.raises(ConfigError, match="UNIX_SOCKET: a Unix socket's path may be at most 107"):
        load_settings(ServiceSettings)
