"""The start-up check that the services this one calls run at least a minimum version."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from servicekit.http import create_http_client
from servicekit.upstreams import (
    Dependency,
    DependencyError,
    check_dependencies,
    is_at_least,
    parse_dependencies,
    version_tuple,
)
from testkit import free_port


def test_parse_one_dependency() -> None:
    assert parse_dependencies("users=http://users:8001>=1.2") == [
        Dependency("users", "http://users:8001", "1.2")
    ]


def test_parse_several_with_spaces_trailing_slashes_and_empty_entries() -> None:
    spec = " users = http://users:8001/ >= 0.3 ,, thoughts=https://thoughts.internal>=v1.10, "
    assert parse_dependencies(spec) == [
        Dependency("users", "http://users:8001", "0.3"),
        Dependency("thoughts", "https://thoughts.internal", "v1.10"),
    ]


@pytest.mark.parametrize("spec", ["", " ", " , ,"])
def test_parse_nothing(spec: str) -> None:
    assert parse_dependencies(spec) == []


@pytest.mark.parametrize(
    "entry",
    [
        "users",
        "users=http://users:8001",
        "users=http://users:8001>=",
        "=http://users:8001>=1.0",
        " =http://users:8001>=1.0",
        "users=>=1.0",
        "users= >=1.0",
        "users=users:8001>=1.0",
        "users=http://>=1.0",
        "users=http://users:8001>=latest",
    ],
)
def test_parse_rejects_bad_entries_with_a_clear_message(entry: str) -> None:
    with pytest.raises(ValueError, match="must look like") as caught:
        parse_dependencies(f"thoughts=http://thoughts:8002>=0.1,{entry}")
    assert str(caught.value) == (
        f"dependency {entry.strip()!r} must look like name=http://host:port>=1.0"
    )


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("v1.4.2-3-gabc123-dirty", (1, 4, 2)),
        ("1.10", (1, 10)),
        ("release-7", (7,)),
        ("abc", ()),
        ("", ()),
    ],
)
def test_version_tuple(version: str, expected: tuple[int, ...]) -> None:
    assert version_tuple(version) == expected


@pytest.mark.parametrize(
    ("version", "minimum", "expected"),
    [
        ("v1.10", "v1.9", True),
        ("v1.9", "v1.10", False),
        ("0.1.0", "0.1", True),
        ("0.1", "0.1.0", True),
        ("0.1", "0.1.1", False),
        ("1.2.3", "1.2.3", True),
        ("2.0", "1.99.99", True),
        ("v1.4.2-3-gabc123", "1.4.2", True),
        ("abc", "0.0.1", False),
        ("0.0.1", "abc", True),
        ("abc", "abc", True),
    ],
)
def test_is_at_least(version: str, minimum: str, expected: bool) -> None:
    assert is_at_least(version, minimum) is expected


async def test_check_passes_for_a_new_enough_dependency(live_server: Callable[..., str]) -> None:
    users = live_server(version_name="v1.10.0")
    thoughts = live_server(version_name="0.3")
    dependencies = parse_dependencies(f"users={users}>=v1.9,thoughts={thoughts}/>=0.3")

    async with create_http_client() as client:
        found = await check_dependencies(dependencies, client, wait_seconds=1)

    assert found == {"users": "v1.10.0", "thoughts": "0.3"}


async def test_check_refuses_a_dependency_that_is_too_old(live_server: Callable[..., str]) -> None:
    users = live_server(version_name="1.9.4")
    dependencies = parse_dependencies(f"users={users}>=1.10")

    async with create_http_client() as client:
        with pytest.raises(DependencyError) as caught:
            await check_dependencies(dependencies, client, wait_seconds=1)

    assert str(caught.value) == (
        f"dependency users at {users} runs version 1.9.4, but at least 1.10 is required"
    )


async def test_check_gives_up_after_the_bounded_wait_when_nothing_listens() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    dependencies = parse_dependencies(f"users={url}>=1.0")

    started = time.monotonic()
    async with create_http_client() as client:
        with pytest.raises(DependencyError) as caught:
            await check_dependencies(dependencies, client, wait_seconds=1, poll_seconds=0.2)
    elapsed = time.monotonic() - started

    assert 1.0 <= elapsed < 4.0
    assert str(caught.value).startswith(
        f"dependency users at {url} did not answer /admin/version/ within 1s (ConnectError: "
    )


async def test_check_waits_through_answers_that_are_not_a_version(
    live_server: Callable[..., str],
) -> None:
    users = live_server()
    dependencies = [Dependency("users", f"{users}/items", "1.0")]  # /items/admin/version/: 404

    async with create_http_client() as client:
        with pytest.raises(DependencyError) as caught:
            await check_dependencies(dependencies, client, wait_seconds=0.5, poll_seconds=0.1)

    assert str(caught.value).startswith(
        f"dependency users at {users}/items did not answer /admin/version/ within 0s "
        "(HTTPStatusError: Client error '404 Not Found'"
    )


async def test_a_service_refuses_to_start_when_a_dependency_is_too_old(
    example: Any, make_settings: Callable[..., Any], live_server: Callable[..., str]
) -> None:
    users = live_server(version_name="0.9")
    app = example.create_app(
        make_settings(dependencies=f"users={users}>=1.0", dependency_wait_seconds=1)
    )

    # The lifespan itself, in this task: DependencyError is a SystemExit, which asyncio would let
    # escape from a background task straight out of the event loop (uvicorn logs it and exits 3).
    try:
        with pytest.raises(DependencyError) as caught:
            async with app.router.lifespan_context(app):
                pass
    finally:
        await app.state.http.aclose()  # a real process would exit here

    assert str(caught.value) == (
        f"dependency users at {users} runs version 0.9, but at least 1.0 is required"
    )


async def test_a_service_starts_when_its_dependencies_are_new_enough(
    live_server: Callable[..., str],  # first: set up first, so it stops after the app
    start_app: Callable[..., Any],
    make_settings: Callable[..., Any],
) -> None:
    users = live_server(version_name="1.0.1")
    client = await start_app(make_settings(dependencies=f"users={users}>=1.0"))
    assert (await client.get("/healthz")).status_code == 200
