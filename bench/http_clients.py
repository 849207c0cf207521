"""What one backend call costs the caller, per HTTP client: the frontend's question (issue 9 item 8:
keep hand-written code only where no well-kept library does the job at the same speed).

    .venv/bin/python bench/http_clients.py [--calls 3000] [--rounds 3]

A server in a process of its own answers every GET on kept-alive connections with the same JSON
body (a page of 20 thoughts, as the thoughts service answers the home page). In this process each
client makes `--calls` sequential calls and parses the JSON; the figure is this process's CPU time
(time.process_time) per call, best of `--rounds` rounds, the clients alternated within each round.
The server's CPU is not counted. Clients: httpx.AsyncClient (the kit's client for everything but
the pages), aiohttp.ClientSession, and servicekit.pooled_http.PooledHttpClient (the frontend's).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
import orjson

from servicekit.pooled_http import PooledHttpClient

BODY = orjson.dumps(
    [
        {
            "id": 1_000_000 - n,
            "username": f"author {n}",
            "text": "a thought of ordinary length, about people and the things they do " * 2,
            "timestamp": "2026-12-06T06:00:00Z",
        }
        for n in range(20)
    ]
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(BODY)
    + BODY
)


class _Answer(asyncio.Protocol):
    """Answers each request (a GET without a body ends at the blank line) with RESPONSE."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(RESPONSE)


def serve(port: int) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Answer, "127.0.0.1", port)
        print("ready", flush=True)
        await server.serve_forever()

    asyncio.run(main())


Call = Callable[[], Awaitable[object]]


async def measure(call: Call, calls: int) -> float:
    await call()  # the connection is opened outside the measurement
    started = time.process_time()
    for _ in range(calls):
        await call()
    return (time.process_time() - started) / calls * 1e6


async def run(url: str, calls: int, rounds: int) -> dict[str, float]:
    best: dict[str, float] = {}
    async with httpx.AsyncClient() as hx, aiohttp.ClientSession() as session:
        pooled = PooledHttpClient(url, dependency="bench")

        async def with_httpx() -> object:
            return (await hx.get(url + "/api/thoughts/")).json()

        async def with_aiohttp() -> object:
            async with session.get(url + "/api/thoughts/") as response:
                return orjson.loads(await response.read())

        async def with_pooled() -> object:
            return (await pooled.request("GET", "/api/thoughts/")).json()

        clients = {"httpx": with_httpx, "aiohttp": with_aiohttp, "pooled_http": with_pooled}
        for _ in range(rounds):
            for name, call in clients.items():
                figure = await measure(call, calls)
                best[name] = min(best.get(name, figure), figure)
        await pooled.aclose()
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise SystemExit("the answering server did not start")
        best = asyncio.run(run(f"http://127.0.0.1:{port}", args.calls, args.rounds))
    finally:
        server.terminate()
        server.wait()
    base = best["pooled_http"]
    print(
        json.dumps(
            {
                "client_cpu_us_per_call": {k: round(v, 1) for k, v in best.items()},
                "ratio_to_pooled_http": {k: round(v / base, 2) for k, v in best.items()},
                "calls": args.calls,
                "rounds": args.rounds,
                "load_average": [round(x, 2) for x in os.getloadavg()],
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
