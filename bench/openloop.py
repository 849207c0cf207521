"""An open-loop load generator: requests at a fixed arrival rate, whatever the answers do.

wrk (the closed-loop tool of bench/run.py) sends a connection's next request only when the
previous answer came back, so a stalled server is sent fewer requests exactly while it stalls
and the stall hardly shows in the percentiles ("coordinated omission"). Here request i is
scheduled at start + i / rate; it goes out on an idle keep-alive connection, or a new one, so a
slow answer never delays the next send; and its latency is completion time - scheduled time
(or - send time, for a send that went out early: the loop's timers count milliseconds).
If the generator itself falls behind (no connection free, CPU starved), the delay counts in the
latency rather than disappearing, and `send_lag_p99_ms` says by how much the sends slipped.

Raw HTTP/1.1 over asyncio streams (uvloop when installed): the client side of a request is a
write and a read of a Content-Length or chunked body, which keeps the generator's own CPU per
request small next to the services it shares the two cores with. Still, one process costs
~100 us of CPU per request and its one event loop falls behind above ~1,500 requests/s:
`processes=N` forks N generator processes, process k sending requests k, k + N, k + 2N, ... of
the same schedule on its own connections. They start together (each opens its connections, then
all are given one start time) and every process's raw samples come back to the parent, so the
percentiles are those of all requests (never an average of per-process percentiles). Times are
`time.monotonic()`, one clock for every process of the machine (and finer than uvloop's
millisecond loop clock).

    from openloop import Request, run_open_loop
    result = asyncio.run(run_open_loop("http://127.0.0.1:8000", lambda i: Request("GET", "/"),
                                       rate=500, seconds=10, processes=2))

Used by `bench/run.py --open-loop`; tested by tests/test_bench_openloop.py.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import math
import multiprocessing
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Sample:
    scheduled: float  # time.monotonic() when the request was due
    sent: float  # when its bytes were written
    done: float  # when its answer was read whole (or the error happened)
    status: int  # 0 for a socket error or timeout
    process: int = 0  # which generator process sent it

    @property
    def latency(self) -> float:
        """From the schedule, or from the send when that was earlier: the loop's timers count
        milliseconds (uvloop), so a send may go out up to ~1 ms before its time, and its
        latency must not be cut short by that."""
        return self.done - min(self.scheduled, self.sent)


@dataclass
class OpenLoopResult:
    offered_rps: float
    achieved_rps: float  # requests sent / the time from the first schedule to the last send
    requests: int
    errors: int  # socket errors, timeouts and answers outside 2xx
    ok_rps: float  # 2xx answers per second of the same span (what was served, not refused)
    ok_p99_ms: float  # p99 of the 2xx answers alone (refusals are fast and would hide it)
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    send_lag_p99_ms: float  # how late the sends were: the generator's own share of latency
    connections: int  # how many connections were opened
    statuses: dict[str, int]
    processes: int = 1  # generator processes
    generator_cpu_us: float = 0.0  # the generator processes' CPU time per request
    # The generator's own garbage-collection pauses while it sent (every process): a pause
    # delays the sends and the reading of answers that fall in it.
    generator_gc_pauses: int = 0
    generator_gc_max_ms: float = 0.0
    generator_gc_total_ms: float = 0.0
    samples: list[Sample] = field(default_factory=list, repr=False)
    gc_pauses: list[GcPause] = field(default_factory=list, repr=False)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (the value below which `fraction` of the values lie)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed (the services run on it too): less generator CPU."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


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


@dataclass(frozen=True)
class _Share:
    """The part of a schedule one generator process sends: requests first, first + step, ..."""

    base_url: str
    make_request: Callable[[int], Request]
    rate: float
    total: int
    first: int
    step: int
    request_timeout: float
    max_connections: int
    warm_connections: int


@dataclass(frozen=True)
class GcPause:
    start: float  # time.monotonic()
    seconds: float
    generation: int
    process: int


class _GcWatch:
    """Records this process's garbage-collection pauses (gc.callbacks) while installed."""

    def __init__(self, process: int) -> None:
        self.process = process
        self.pauses: list[GcPause] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.monotonic()
        else:
            now = time.monotonic()
            self.pauses.append(
                GcPause(self._started, now - self._started, info["generation"], self.process)
            )

    def __enter__(self) -> _GcWatch:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No garbage collection while a schedule runs. A full collection walks every object of the
    process (a forked generator's include all of bench/run.py's) and took ~190 ms, in both
    processes at once since they allocate alike: no request was sent or read meanwhile, and
    the burst sent after it queued in the services, so the generator's own pause showed as
    hundreds of ms of p99 (bench/README.md). The window's garbage is freed by reference counts
    (finished tasks are dropped as they end); what cycles remain are collected afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class _Sent:
    samples: list[Sample]
    connections: int
    cpu_seconds: float
    gc_pauses: list[GcPause] = field(default_factory=list)


async def _send_share(share: _Share, start_time: Callable[[], Awaitable[float]]) -> _Sent:
    """Opens the warm connections, asks `start_time()` when request 0 is due, then sends each
    request of the share at start + i / rate and waits for every answer (or timeout)."""
    cpu_before = time.process_time()
    url = urlsplit(share.base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    # Least recently used first: each request takes the connection that has been idle longest,
    # so the load turns over every warm connection, as many independent clients' would. Most
    # recently used first kept the whole load on the one or two connections at the top, and a
    # service's workers take connections, not requests (one SO_REUSEPORT socket each): one
    # worker was sent everything while the other idled (bench/README.md, open loop).
    idle: collections.deque[_Connection] = collections.deque()
    slots = asyncio.Semaphore(share.max_connections)
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
            sent = time.monotonic()
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
        sent = time.monotonic()
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
                async with asyncio.timeout(share.request_timeout):
                    status, sent = await exchange(idle.popleft() if idle else None, raw)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                pass  # status 0: a socket error or a timeout, counted in errors
        samples.append(Sample(scheduled, sent, time.monotonic(), status, share.first))

    for _ in range(min(share.warm_connections, share.max_connections)):
        idle.append(await connect())

    pending: set[asyncio.Task[None]] = set()
    start = await start_time()
    with _collector_paused(), _GcWatch(share.first) as watch:
        for i in range(share.first, share.total, share.step):
            scheduled = start + i / share.rate
            raw = _encode(share.make_request(i), url.netloc)
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(scheduled, raw))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
    for connection in idle:
        with contextlib.suppress(Exception):
            connection.close()
    return _Sent(samples, opened, time.process_time() - cpu_before, watch.pauses)


def _child(share: _Share, parent: Connection) -> None:
    """A forked generator process: its share, started when the parent says, samples sent back."""

    async def start_time() -> float:
        parent.send("ready")  # connections open: the parent may fix the start
        started: float = await asyncio.get_running_loop().run_in_executor(None, parent.recv)
        return started

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        sent = runner.run(_send_share(share, start_time))
    parent.send(
        (
            [(s.scheduled, s.sent, s.done, s.status, s.process) for s in sent.samples],
            sent.connections,
            sent.cpu_seconds,
            [(p.start, p.seconds, p.generation, p.process) for p in sent.gc_pauses],
        )
    )
    parent.close()


async def _send_in_processes(shares: list[_Share]) -> _Sent:
    """Forks one generator process per share, starts them together, merges their samples."""
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("fork")  # the request factory is not picklable
    pipes = [context.Pipe() for _ in shares]
    children = [
        context.Process(target=_child, args=(share, child_end), daemon=True)
        for share, (_, child_end) in zip(shares, pipes, strict=True)
    ]
    for child in children:
        child.start()
    for _, child_end in pipes:
        child_end.close()  # the child's copy stays open: a child that dies is an EOFError here
    try:
        for ours, _ in pipes:
            ready = await loop.run_in_executor(None, ours.recv)
            assert ready == "ready", ready
        start = time.monotonic() + 0.05  # a moment to build the first request
        for ours, _ in pipes:
            ours.send(start)
        merged = _Sent([], 0, 0.0)
        for ours, _ in pipes:
            samples, connections, cpu_seconds, pauses = await loop.run_in_executor(None, ours.recv)
            merged.samples += [Sample(*values) for values in samples]
            merged.connections += connections
            merged.cpu_seconds += cpu_seconds
            merged.gc_pauses += [GcPause(*values) for values in pauses]
        return merged
    finally:
        for child in children:
            child.join(timeout=5)
            if child.is_alive():
                child.kill()


async def run_open_loop(
    base_url: str,
    make_request: Callable[[int], Request],
    *,
    rate: float,
    seconds: float,
    processes: int = 1,
    request_timeout: float = 10.0,
    max_connections: int = 1000,
    warm_connections: int = 0,
) -> OpenLoopResult:
    """Send round(rate * seconds) requests on schedule; wait for every answer (or timeout).

    `make_request(i)` gives the i-th request. At most `max_connections` are open at once (all
    processes together): a request due while all are busy waits for one, and that wait counts
    in its latency. `warm_connections` are opened before the first schedule, so that the first
    requests do not all pay a TCP handshake that a steady load would not. `processes` > 1
    forks that many generator processes, each with its share of the requests and connections.
    """
    if processes < 1:
        raise ValueError("the generator needs at least one process")
    total = round(rate * seconds)
    shares = [
        _Share(
            base_url,
            make_request,
            rate,
            total,
            first=k,
            step=processes,
            request_timeout=request_timeout,
            max_connections=math.ceil(max_connections / processes),
            warm_connections=math.ceil(warm_connections / processes),
        )
        for k in range(processes)
    ]
    if processes == 1:

        async def start_soon() -> float:
            return time.monotonic() + 0.05  # a moment to build the first request

        sent = await _send_share(shares[0], start_soon)
    else:
        sent = await _send_in_processes(shares)
    return summarize(sent, rate=rate, processes=processes)


def summarize(sent: _Sent, *, rate: float, processes: int) -> OpenLoopResult:
    """The figures of all samples together (from every process: exact percentiles)."""
    samples = sorted(sent.samples, key=lambda s: s.scheduled)
    latencies = [s.latency * 1000 for s in samples]
    lags = [(s.sent - s.scheduled) * 1000 for s in samples]
    statuses: dict[str, int] = {}
    for s in samples:
        statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    ok_latencies = [s.latency * 1000 for s in samples if 200 <= s.status < 300]
    ok = len(ok_latencies)
    start = samples[0].scheduled if samples else 0.0
    span = max(s.sent for s in samples) - start if samples else 0.0
    return OpenLoopResult(
        offered_rps=rate,
        # n requests over the n - 1 intervals between the first and last send
        achieved_rps=round((len(samples) - 1) / span, 1) if span > 0 else 0.0,
        requests=len(samples),
        errors=len(samples) - ok,
        ok_rps=round((len(samples) - 1) / span * ok / len(samples), 1) if span > 0 else 0.0,
        ok_p99_ms=round(percentile(ok_latencies, 0.99), 2),
        p50_ms=round(percentile(latencies, 0.50), 2),
        p99_ms=round(percentile(latencies, 0.99), 2),
        p999_ms=round(percentile(latencies, 0.999), 2),
        max_ms=round(max(latencies, default=0.0), 2),
        send_lag_p99_ms=round(percentile(lags, 0.99), 2),
        connections=sent.connections,
        statuses=statuses,
        processes=processes,
        generator_cpu_us=round(sent.cpu_seconds * 1e6 / max(len(samples), 1), 1),
        generator_gc_pauses=len(sent.gc_pauses),
        generator_gc_max_ms=round(max((p.seconds for p in sent.gc_pauses), default=0) * 1000, 2),
        generator_gc_total_ms=round(sum(p.seconds for p in sent.gc_pauses) * 1000, 2),
        samples=samples,
        gc_pauses=sent.gc_pauses,
    )
