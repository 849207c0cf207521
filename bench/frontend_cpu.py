"""The frontend's own CPU per page, measured in process: what bench/run.py's "frontend home" and
"frontend search" cost the frontend, without the server, wrk or the other processes.

    .venv/bin/python bench/run.py --db sqlite --thoughts 100000 --only healthz   # loads the data
    .venv/bin/python bench/frontend_cpu.py [--pages 2000] [--profile home|search] > /dev/null

Starts the users and thoughts services as real processes on the benchmark's SQLite data
(var/bench/sqlite), makes the frontend app in this process with the benchmark's settings (logs
go to stdout, hence `> /dev/null`), and calls it as uvicorn would (one ASGI call per page, the
lifespan run) in a loop: `time.process_time` per page, printed on stderr. `--profile` adds a
cProfile by CPU time of that page (slower; for where the time goes, not for the figure).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from typing import Any

import run as bench
import uvloop
from asgi_lifespan import LifespanManager

WORK_DIR = bench.ROOT / "var" / "bench" / "sqlite"


async def call_page(app: Any, path: str, query: str, cookie: str | None) -> bytes:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"host", b"bench"), (b"user-agent", b"frontend_cpu")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5555),
        "server": ("127.0.0.1", 8002),
    }
    await app(scope, receive, send)
    if sent[0]["status"] != 200:
        raise RuntimeError(f"{path}?{query} answered {sent[0]['status']}")
    return b"".join(message.get("body", b"") for message in sent[1:])


async def measure(app: Any, pages: dict[str, tuple[str, str, str | None]], args: Any) -> None:
    async with LifespanManager(app):
        for name, page in pages.items():
            if b"<li" not in await call_page(app, *page):
                raise RuntimeError(f"{name}: no thoughts on the page")
            for _ in range(200):  # warm: connections, template cache
                await call_page(app, *page)
            profile = cProfile.Profile(time.process_time) if args.profile == name else None
            started = time.process_time()
            if profile:
                profile.enable()
            for _ in range(args.pages):
                await call_page(app, *page)
            if profile:
                profile.disable()
            used = (time.process_time() - started) / args.pages
            print(f"frontend {name}: {used * 1e6:,.0f} us of CPU per page", file=sys.stderr)
            if profile:
                stats = pstats.Stats(profile, stream=sys.stderr)
                stats.sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--profile", choices=("home", "search"))
    args = parser.parse_args()
    databases = bench.Databases("sqlite", WORK_DIR)
    services = bench.build_services(databases, WORK_DIR, 1, {})
    backends = [services["users"], services["thoughts"]]
    for service in backends:
        service.launch()
    try:
        for service in backends:
            service.wait_until("/readyz", timeout=120)
        author = databases.query(
            "thoughts",
            "SELECT username, count(*) AS n FROM thoughts "
            "GROUP BY username ORDER BY n DESC LIMIT 1",
        )[0][0]
        token = bench.login(services["users"].url, author)
        os.environ.update(services["frontend"].env)
        from frontend_service.main import create_app

        pages = {
            "home": ("/", "", f"mt_session={token}"),
            "search": ("/search", "search=people", None),
        }
        uvloop.run(measure(create_app(), pages, args))
    finally:
        for service in backends:
            service.stop()


if __name__ == "__main__":
    main()
