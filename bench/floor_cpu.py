"""The framework floor's CPU in process: the thoughts service's `/admin/version/` (issue 15,
target 7) called as an ASGI app in a loop, with no server and no socket.

    .venv/bin/python bench/floor_cpu.py [--calls 3000] [--repeats 3] [--profile]

Run it with another checkout's venv python (`../other/.venv/bin/python bench/floor_cpu.py`) to
measure that checkout's code with the same script, alternating the two by hand. The app is made
with production settings (INFO access log, metrics, request ids, security headers, admin guard
with `ADMIN_TOKEN` set and sent, limits); its log goes to a file in a temporary folder, as a
served service's stdout goes to a file. Prints `time.process_time` per request, best of
`--repeats` rounds of `--calls` requests, on stderr; `--profile` adds a cProfile by CPU time
(slower: for where the time goes and the call counts, not for the figure). No lifespan is run:
the route reads no database.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOKEN = "floor-cpu-admin-token-0123456789abcdef"  # noqa: S105 - a local benchmark's own token


async def call(app: Any, scope: dict[str, Any]) -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    if sent[0]["status"] != 200:
        raise RuntimeError(f"{scope['path']} answered {sent[0]['status']}")


def make_scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        # What hey sends, plus the admin token.
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"hey/0.0.1"),
            (b"authorization", f"Bearer {TOKEN}".encode()),
            (b"accept-encoding", b"gzip"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def measure(app: Any, args: argparse.Namespace) -> list[float]:
    scope = make_scope("/admin/version/")
    for _ in range(300):  # warm: middleware stack, route caches
        await call(app, dict(scope))
    results = []
    for _ in range(args.repeats):
        started = time.process_time()
        for _ in range(args.calls):
            await call(app, dict(scope))
        results.append((time.process_time() - started) / args.calls)
    if args.profile:
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        for _ in range(args.calls):
            await call(app, dict(scope))
        profile.disable()
        stats = pstats.Stats(profile, stream=sys.stderr)
        print(f"calls per request: {stats.total_calls / args.calls:.0f}", file=sys.stderr)  # type: ignore[attr-defined]
        stats.sort_stats("tottime").print_stats(25)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.environ.update(
            {
                "DATABASE_URL": f"sqlite+aiosqlite:///{Path(folder) / 'untouched.db'}",
                "AUTH_JWKS_URL": "http://127.0.0.1:9/.well-known/jwks.json",
                "ADMIN_TOKEN": TOKEN,
                "LOG_LEVEL": args.log_level,
            }
        )
        log_path = Path(folder) / "thoughts.log"
        real_stdout = sys.stdout
        with log_path.open("w") as log_file:
            sys.stdout = log_file  # configure_logging binds the stdout of the moment
            try:
                from thoughts_service.main import create_app

                app = create_app()
                results = asyncio.run(measure(app, args))
                for handler in logging.getLogger().handlers:
                    handler.flush()  # lines a batching handler still holds
            finally:
                sys.stdout = real_stdout
        lines = len(log_path.read_bytes().splitlines())
    best = min(results)
    rounds = ", ".join(f"{r * 1e6:.1f}" for r in results)
    print(
        f"/admin/version/ in process: {best * 1e6:.1f} us of CPU per request "
        f"(best of {rounds}; {lines:,} log lines)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
