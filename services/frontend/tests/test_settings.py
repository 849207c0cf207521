"""Configuration: what the frontend needs to start, and the messages when it is wrong."""

from __future__ import annotations

import pytest

from frontend_service.settings import FrontendSettings, socket_paths
from servicekit.settings import ConfigError, load_settings

SECRET = "s" * 40


def test_the_secret_key_is_required(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("SECRET_KEY_FILE", raising=False)
    with pytest.raises(ConfigError, match="SECRET_KEY: Field required"):
        load_settings(FrontendSettings)


def test_a_short_secret_key_is_refused(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "too-short")
    with pytest.raises(ConfigError, match=r"SECRET_KEY: .*at least 32 characters"):
        load_settings(FrontendSettings)


def test_the_secret_key_can_come_from_a_file(monkeypatch, tmp_path):
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    monkeypatch.setenv("SECRET_KEY_FILE", str(path))
    settings = load_settings(FrontendSettings)
    assert settings.secret_key.get_secret_value() == SECRET
    assert SECRET not in repr(settings)


def test_defaults_for_a_local_run(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", SECRET)
    settings = load_settings(FrontendSettings)
    assert settings.port == 8002
    assert settings.users_url == "http://127.0.0.1:8001"
    assert settings.thoughts_url == "http://127.0.0.1:8000"
    assert settings.cookie_secure is True
    # Without DEPENDENCIES, the services it calls are the ones checked at start-up.
    assert settings.dependencies == (
        "users=http://127.0.0.1:8001>=0.1,thoughts=http://127.0.0.1:8000>=0.1"
    )


def test_dependencies_follow_the_backend_urls_and_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", SECRET)
    monkeypatch.setenv("USERS_URL", "http://users:8001/")
    monkeypatch.setenv("THOUGHTS_URL", "https://thoughts.internal")
    settings = load_settings(FrontendSettings)
    assert settings.users_url == "http://users:8001"
    assert (
        settings.dependencies
        == "users=http://users:8001>=0.1,thoughts=https://thoughts.internal>=0.1"
    )
    monkeypatch.setenv("DEPENDENCIES", "")
    assert load_settings(FrontendSettings).dependencies == ""


def test_backend_urls_must_be_http(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", SECRET)
    monkeypatch.setenv("USERS_URL", "users:8001")
    with pytest.raises(ConfigError, match="USERS_URL: must be an http"):
        load_settings(FrontendSettings)


def test_backend_sockets_are_absolute_paths_separated_by_commas(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", SECRET)
    assert load_settings(FrontendSettings).users_unix_sockets == ""  # TCP unless given
    monkeypatch.setenv("USERS_UNIX_SOCKETS", " /run/s/users-1.sock, /run/s/users-2.sock ,")
    settings = load_settings(FrontendSettings)
    assert socket_paths(settings.users_unix_sockets) == (
        "/run/s/users-1.sock",
        "/run/s/users-2.sock",
    )
    monkeypatch.setenv("THOUGHTS_UNIX_SOCKETS", "run/thoughts.sock")
    with pytest.raises(ConfigError, match=r"THOUGHTS_UNIX_SOCKETS: .*absolute paths.*run/thoughts"):
        load_settings(FrontendSettings)
