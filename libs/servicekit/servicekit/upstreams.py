"""Start-up check that the upstream services this one calls (its DEPENDENCIES setting) run at
least a minimum version.

The book's `check_dependencies_services`: wait (bounded) for each dependency's
`/admin/version/`, compare, and refuse to start with a clear message when one is too old.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass

import httpx

log = logging.getLogger("servicekit.upstreams")

_VERSION_NUMBERS = re.compile(r"(\d+(?:\.\d+)*)")


class DependencyError(SystemExit):
    """A dependency is unreachable or too old; the service must not start."""


@dataclass(frozen=True)
class Dependency:
    name: str
    url: str
    min_version: str


def parse_dependencies(spec: str) -> list[Dependency]:
    """Parses `name=url>=1.2,other=url>=0.3` (the DEPENDENCIES setting)."""
    result = []
    for raw in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, rest = raw.partition("=")
        url, sep2, minimum = rest.partition(">=")
        name, url, minimum = name.strip(), url.strip().rstrip("/"), minimum.strip()
        # A URL without http(s):// would only fail after the whole wait, and a minimum without a
        # number (version_tuple() == ()) would let every version pass.
        if not (
            sep
            and sep2
            and name
            and url.startswith(("http://", "https://"))
            and version_tuple(minimum)
        ):
            raise ValueError(f"dependency {raw!r} must look like name=http://host:port>=1.0")
        result.append(Dependency(name, url, minimum))
    return result


def version_tuple(version: str) -> tuple[int, ...]:
    """'v1.4.2-3-gabc' -> (1, 4, 2). A version with no number sorts lowest."""
    match = _VERSION_NUMBERS.search(version)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def is_at_least(version: str, minimum: str) -> bool:
    have, want = version_tuple(version), version_tuple(minimum)
    width = max(len(have), len(want))
    return have + (0,) * (width - len(have)) >= want + (0,) * (width - len(want))


async def check_dependencies(
    dependencies: list[Dependency],
    client: httpx.AsyncClient,
    *,
    wait_seconds: float = 30.0,
    poll_seconds: float = 0.5,
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """Returns {name: version}; raises DependencyError when one is down or too old."""
    found: dict[str, str] = {}
    deadline = time.monotonic() + wait_seconds
    for dependency in dependencies:
        last_error = ""
        while True:
            try:
                response = await client.get(
                    f"{dependency.url}/admin/version/",
                    headers=headers,
                    extensions={"dependency": dependency.name},
                )
                response.raise_for_status()
                version = str(response.json()["version"])
                break
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise DependencyError(
                    f"dependency {dependency.name} at {dependency.url} did not answer "
                    f"/admin/version/ within {wait_seconds:.0f}s ({last_error})"
                )
            await asyncio.sleep(poll_seconds)
        if not is_at_least(version, dependency.min_version):
            raise DependencyError(
                f"dependency {dependency.name} at {dependency.url} runs version {version}, "
                f"but at least {dependency.min_version} is required"
            )
        log.info(
            "dependency %s is version %s (>= %s)", dependency.name, version, dependency.min_version
        )
        found[dependency.name] = version
    return found
