"""What the open-loop generator itself can send: bench/openloop.py against a trivial server.

    .venv/bin/python bench/openloop_capacity.py --rates 1000,2000,4000 --processes 1,2

The server (a process of its own, asyncio on uvloop, HTTP/1.1 keep-alive, answers `ok` at once)
costs next to nothing per request, so what limits the rate here is the generator: for each rate,
each process count in turn, the requests actually sent per second, p50/p99, the send lag's p99
and the generator's CPU time per request. bench/README.md quotes the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time

from openloop import Request, new_event_loop, run_open_loop

from testkit import free_port

SERVER = """
import asyncio, sys, uvloop

async def handle(reader, writer):
    try:
        while True:
            await reader.readuntil(b"\\r\\n\\r\\n")
            writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    async with server:
        await server.serve_forever()

uvloop.run(main())
"""


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="1000,2000,4000")
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        wait_for_port(port)
        print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")
        print("rate  processes  sent/s  p50 ms  p99 ms  send lag p99 ms  generator CPU us/req")
        for rate in (float(x) for x in args.rates.split(",")):
            for processes in (int(x) for x in args.processes.split(",")):
                with asyncio.Runner(loop_factory=new_event_loop) as runner:
                    result = runner.run(
                        run_open_loop(
                            f"http://127.0.0.1:{port}",
                            lambda i: Request("GET", f"/{i}"),
                            rate=rate,
                            seconds=args.seconds,
                            processes=processes,
                            warm_connections=32,
                        )
                    )
                print(
                    f"{rate:5.0f}  {processes:9d}  {result.achieved_rps:6.0f}  "
                    f"{result.p50_ms:6.2f}  {result.p99_ms:6.2f}  "
                    f"{result.send_lag_p99_ms:15.2f}  {result.generator_cpu_us:20.0f}",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
