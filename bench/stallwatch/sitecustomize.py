"""What stalls a service process: its garbage-collection pauses and its event loop's lag.

`bench/run.py --stall-watch` starts the services with this folder on PYTHONPATH, so every
Python process of theirs imports it at start-up (as `sitecustomize`), and with
BENCH_STALL_LOG=<folder>/stall, so each writes JSON lines to <folder>/stall.<pid>:

- its command line and parent (which service, which worker);
- every garbage collection of 2 ms or more (gc.callbacks): start (time.monotonic()), wall ms,
  CPU ms of the collecting thread, generation;
- every time the event loop answered a ping from a watching thread more than 15 ms late: start,
  ms, the main thread's CPU time meanwhile (about the lag: the loop was busy computing; about
  zero: it was blocked in a system call, or the process got no core), and the main thread's
  stack when the answer was 30 ms late.

bench/openloop_timeline.py --stalls <folder>/stall puts them beside the open-loop samples. Off
(nothing imported beyond `os`) unless BENCH_STALL_LOG is set; the ping every 5 ms costs each
process a little CPU, so figures taken with it on are not comparable with figures without.
"""

import os

if os.environ.get("BENCH_STALL_LOG"):
    import asyncio
    import asyncio.events
    import gc
    import json
    import sys
    import threading
    import time
    import traceback
    from typing import Any

    _file = open(f"{os.environ['BENCH_STALL_LOG']}.{os.getpid()}", "a", buffering=1)  # noqa: SIM115
    _lock = threading.Lock()
    _main_ident = threading.main_thread().ident or 0
    _main_clock = time.pthread_getcpuclockid(_main_ident)
    _gc_started = [0.0, 0.0]

    def _write(record: dict[str, Any]) -> None:
        with _lock:
            _file.write(json.dumps(record) + "\n")

    def _command() -> str:
        try:
            with open("/proc/self/cmdline", "rb") as cmdline:
                return cmdline.read().replace(b"\0", b" ").decode()[:200]
        except OSError:
            return "?"

    def _gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            _gc_started[:] = [time.monotonic(), time.thread_time()]
            return
        took = time.monotonic() - _gc_started[0]
        if took >= 0.002:
            _write(
                {
                    "gc": _gc_started[0],
                    "ms": took * 1000,
                    "cpu_ms": (time.thread_time() - _gc_started[1]) * 1000,
                    "generation": info["generation"],
                }
            )

    def _watch(loop: asyncio.AbstractEventLoop) -> None:
        while not loop.is_closed():
            time.sleep(0.005)
            answered = threading.Event()
            start = time.monotonic()
            cpu = time.clock_gettime(_main_clock)
            try:
                loop.call_soon_threadsafe(answered.set)
            except RuntimeError:
                return  # the loop closed meanwhile
            stack = None
            if not answered.wait(0.03):
                frame = sys._current_frames().get(_main_ident)
                if frame is not None:
                    stack = [line.strip() for line in traceback.format_stack(frame)[-5:]]
                answered.wait()
            lag = time.monotonic() - start
            if lag > 0.015:
                main_cpu = (time.clock_gettime(_main_clock) - cpu) * 1000
                _write({"lag": start, "ms": lag * 1000, "main_cpu_ms": main_cpu, "stack": stack})

    _set_running_loop = asyncio.events._set_running_loop
    _watched: set[int] = set()

    def _set_running_loop_and_watch(loop: asyncio.AbstractEventLoop | None) -> None:
        # Every loop the main thread runs (uvicorn's uvloop included: uvloop takes this
        # function from asyncio when it is imported, after this module).
        _set_running_loop(loop)
        if loop is not None and threading.get_ident() == _main_ident and id(loop) not in _watched:
            _watched.add(id(loop))
            threading.Thread(target=_watch, args=(loop,), daemon=True, name="stallwatch").start()

    _write({"pid": os.getpid(), "ppid": os.getppid(), "cmd": _command()})
    gc.callbacks.append(_gc)
    asyncio.events._set_running_loop = _set_running_loop_and_watch
    asyncio._set_running_loop = _set_running_loop_and_watch
