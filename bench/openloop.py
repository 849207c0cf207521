"""An open-loop load generator: requests at a fixed arrival rate, whatever the answers do.

wrk (the closed-loop tool of bench/run.py) sends a connection's next request only when the
previous answer came back, so a stalled server is sent fewer requests exactly while it stalls
and the stall hardly shows in the percentiles ("coordinated omission"). Here request i is
scheduled at start + i / rate; it goes out on an idle keep-alive connection, or a new one, so a
slow answer never delays the next send; and its latency is completion time - scheduled time.
If the generator itself falls behind (no connection free, CPU starved), the delay counts in the
latency rather than disappearing, and `send_lag_p99_ms` says by how much the sends slipped.

Raw HTTP/1.1 over asyncio streams (uvloop when installed): the client side of a request is a
write and a read of a Content-Length or chunked body, which keeps the generator's own CPU per
request small next to the services it shares the two cores with.

    from openloop import Request, run_open_loop
    result = asyncio.run(run_open_loop("http://127.0.0.1:8000", lambda i: Request("GET", "/"),
                                       rate=500, seconds=10))

Used by `bench/run.py --open-loop`; tested by tests/test_bench_openloop.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Sample:
    scheduled: float  # loop time the request was due
    sent: float  # loop time its bytes were written
    done: float  # loop time its answer was read whole (or the error happened)
    status: int  # 0 for a socket error or timeout

    @property
    def latency(self) -> float:
        return self.done - self.scheduled


@dataclass
class OpenLoopResult:
    offered_rps: float
    achieved_rps: float  # requests sent / the time from the first schedule to the last send
    requests: int
    errors: int  # socket errors, timeouts and answers outside 2xx
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    send_lag_p99_ms: float  # how late the sends were: the generator's own share of latency
    connections: int  # how many connections were opened
    statuses: dict[str, int]
    samples: list[Sample] = field(default_factory=list, repr=False)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (the value below which `fraction` of the values lie)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, raw: bytes) -> tuple[int, bool]:
        """Write one request, read its whole answer: (status, whether the connection stays)."""
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)  # the chunk and its CRLF
                if size == 0:
                    break
        keep = headers.get("connection", "").lower() != "close"
        return status, keep

    def close(self) -> None:
        self.writer.close()


def _encode(request: Request, host: str) -> bytes:
    lines = [f"{request.method} {request.path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in request.headers.items()]
    if request.body or request.method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(request.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body


async def run_open_loop(
    base_url: str,
    make_request: Callable[[int], Request],
    *,
    rate: float,
    seconds: float,
    request_timeout: float = 10.0,
    max_connections: int = 1000,
    warm_connections: int = 0,
) -> OpenLoopResult:
    """Send round(rate * seconds) requests on schedule; wait for every answer (or timeout).

    `make_request(i)` gives the i-th request. At most `max_connections` are open at once: a
    request due while all are busy waits for one, and that wait counts in its latency.
    `warm_connections` are opened before the first schedule, so that the first requests do not
    all pay a TCP handshake that a steady load would not.
    """
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    loop = asyncio.get_running_loop()
    idle: list[_Connection] = []
    slots = asyncio.Semaphore(max_connections)
    opened = 0
    samples: list[Sample] = []

    async def connect() -> _Connection:
        nonlocal opened
        reader, writer = await asyncio.open_connection(host, port)
        opened += 1
        return _Connection(reader, writer)

    async def exchange(connection: _Connection | None, raw: bytes) -> tuple[int, float]:
        """(status, send time); a kept-alive connection the server closed meanwhile is
        replaced once, as HTTP clients do (uvicorn closes a connection idle for 5 s)."""
        if connection is not None:
            sent = loop.time()
            try:
                status, keep = await connection.exchange(raw)
            except (ConnectionError, asyncio.IncompleteReadError) as error:
                connection.close()
                if isinstance(error, asyncio.IncompleteReadError) and error.partial:
                    raise  # the server answered part of it: a real failure
            else:
                if keep:
                    idle.append(connection)
                else:
                    connection.close()
                return status, sent
        connection = await connect()
        sent = loop.time()
        try:
            status, keep = await connection.exchange(raw)
        except BaseException:
            connection.close()
            raise
        if keep:
            idle.append(connection)
        else:
            connection.close()
        return status, sent

    async def one(scheduled: float, raw: bytes) -> None:
        sent = scheduled
        status = 0
        async with slots:
            try:
                async with asyncio.timeout(request_timeout):
                    status, sent = await exchange(idle.pop() if idle else None, raw)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                pass  # status 0: a socket error or a timeout, counted in errors
        samples.append(Sample(scheduled, sent, loop.time(), status))

    for _ in range(min(warm_connections, max_connections)):
        idle.append(await connect())

    total = round(rate * seconds)
    tasks: list[asyncio.Task[None]] = []
    start = loop.time() + 0.05  # a moment to build the first request
    for i in range(total):
        scheduled = start + i / rate
        raw = _encode(make_request(i), url.netloc)
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled, raw)))
    await asyncio.gather(*tasks)
    for connection in idle:
        with contextlib.suppress(Exception):
            connection.close()

    samples.sort(key=lambda s: s.scheduled)
    latencies = [s.latency * 1000 for s in samples]
    lags = [(s.sent - s.scheduled) * 1000 for s in samples]
    statuses: dict[str, int] = {}
    for s in samples:
        statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    span = max(s.sent for s in samples) - start if samples else 0.0
    return OpenLoopResult(
        offered_rps=rate,
        # n requests over the n - 1 intervals between the first and last send
        achieved_rps=round((len(samples) - 1) / span, 1) if span > 0 else 0.0,
        requests=len(samples),
        errors=sum(1 for s in samples if not 200 <= s.status < 300),
        p50_ms=round(percentile(latencies, 0.50), 2),
        p99_ms=round(percentile(latencies, 0.99), 2),
        p999_ms=round(percentile(latencies, 0.999), 2),
        max_ms=round(max(latencies, default=0.0), 2),
        send_lag_p99_ms=round(percentile(lags, 0.99), 2),
        connections=opened,
        statuses=statuses,
        samples=samples,
    )
