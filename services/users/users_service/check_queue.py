"""Which password check runs next: a short queue, ordered by how much each client address has
failed lately, in front of one thread per core.

A password check costs ~21 ms of CPU at the default argon2id cost (bench/README.md, target 2),
so a flood of wrong-password logins can keep every core busy. What the queue guarantees, per
worker process:

- The event loop never runs a hash, and never waits for one: checks run in this queue's own
  threads, one per core (argon2-cffi releases the GIL while it hashes), optionally at a lower
  CPU priority (`niceness`), and a login gives its database connection back before it queues.
- No check waits longer than it can be served: a check whose expected start (its place in the
  queue times the measured duration of a check, per core) is later than `wait_seconds` is
  refused at once (Overloaded: 503 with Retry-After), and so is a queued check that a newcomer
  pushes past that point. A timer per check stops any estimate error at `wait_seconds`.
- One address has at most `per_client` checks queued or running; more are refused at once.
- The next check is the one whose address has the fewest recent failed checks (a count that
  halves every FAILURE_HALF_LIFE_SECONDS, rounded); ties in arrival order. A client that types its
  password right has no failures, so it goes ahead of every address that has been guessing,
  however many addresses that is: its check starts when the next core is free.

What it does not guarantee: an attacker with more fresh addresses (none of which has failed
yet) than the cores serve within `wait_seconds` ties with a good client for every place, and a
good client then gets a share of the checks in proportion to its share of such arrivals. Each
address is penalised after its first failure, so this takes a new address per guess; the
per-address failure throttle (users_service.throttle) and the gateway are what is left for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from servicekit.admission import Overloaded

T = TypeVar("T")

# An address that stops guessing is back at the front of the queue within a few minutes.
FAILURE_HALF_LIFE_SECONDS = 60.0
# Forgotten addresses: pruned once this many are remembered (see DecayingCounts).
REMEMBERED_ADDRESSES = 10_000
# How fast the estimate of a check's duration follows the measured ones.
ESTIMATE_WEIGHT = 0.2


class DecayingCounts:
    """Per key, a count that halves every `half_life` seconds."""

    def __init__(self, half_life: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.half_life = half_life
        self._clock = clock
        self._counts: dict[str, tuple[float, float]] = {}
        self._prune_above = REMEMBERED_ADDRESSES

    def __len__(self) -> int:
        return len(self._counts)

    def get(self, key: str) -> float:
        value, since = self._counts.get(key, (0.0, 0.0))
        return value * 0.5 ** ((self._clock() - since) / self.half_life) if value else 0.0

    def add(self, key: str) -> None:
        self._counts[key] = (self.get(key) + 1, self._clock())
        if len(self._counts) > self._prune_above:
            # Below a twentieth of a failure an address ranks as one that never failed.
            self._counts = {k: v for k, v in self._counts.items() if self.get(k) >= 0.05}
            self._prune_above = max(REMEMBERED_ADDRESSES, 2 * len(self._counts))


@dataclass
class _Waiter:
    client: str | None
    order: int
    turn: asyncio.Future[None]
    timer: asyncio.TimerHandle | None = field(default=None)


def _lower_priority(niceness: int) -> None:
    # Linux gives each thread its own nice value (PRIO_PROCESS with a thread id); raising it
    # needs no privilege. Elsewhere the threads keep the process's priority.
    if niceness and hasattr(threading, "get_native_id"):
        thread = threading.get_native_id()
        try:
            current = os.getpriority(os.PRIO_PROCESS, thread)
            os.setpriority(os.PRIO_PROCESS, thread, min(19, current + niceness))
        except OSError:
            pass


class CheckQueue:
    def __init__(
        self,
        *,
        cores: int,
        wait_seconds: float,
        per_client: int,
        niceness: int,
        first_estimate_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cores < 1:
            raise ValueError("a check queue needs at least one core")
        self.cores = cores
        self.wait_seconds = wait_seconds
        self.per_client = per_client
        self.estimate_seconds = first_estimate_seconds
        self.failures = DecayingCounts(FAILURE_HALF_LIFE_SECONDS, clock)
        self._clock = clock
        self._executor = ThreadPoolExecutor(
            cores, "password-check", initializer=_lower_priority, initargs=(niceness,)
        )
        self._running = 0
        self._waiting: list[_Waiter] = []
        self._in_progress: Counter[str] = Counter()
        self._orders = itertools.count()

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def failed(self, client: str | None) -> None:
        """A check for `client` did not match: its later checks rank behind."""
        if client is not None:
            self.failures.add(client)

    def refuse_now(self, client: str | None) -> None:
        """Raises Overloaded if a check for `client` would be refused now, so that a login can
        be turned away before it costs a database lookup."""
        if client is not None and self._in_progress[client] >= self.per_client:
            raise Overloaded(f"{self.per_client} password checks from this address are in progress")
        if self._running >= self.cores:
            self._refuse_beyond(self._place(self._rank(client, math.inf)))

    async def run(self, client: str | None, work: Callable[[], T]) -> T:
        """Runs `work` in a check thread once this check's turn comes; Overloaded if it would
        not come within `wait_seconds`."""
        self.refuse_now(client)
        if client is not None:
            self._in_progress[client] += 1
        try:
            await self._turn(client)
        except BaseException:
            self._forget(client)
            raise
        started = self._clock()
        future: Future[T] = self._executor.submit(work)
        loop = asyncio.get_running_loop()

        def finished(_: Future[T]) -> None:
            # The core is given back when the thread is done, even if the caller stopped
            # waiting; after the loop closed (shutdown) there is nothing left to give it to.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._done, client, self._clock() - started)

        future.add_done_callback(finished)
        return await asyncio.wrap_future(future)

    def _rank(self, client: str | None, order: float) -> tuple[float, float]:
        # Whole failures: addresses that failed as often keep their arrival order.
        return (round(self.failures.get(client)) if client is not None else 0, order)

    def _place(self, rank: tuple[float, float]) -> int:
        return sum(1 for waiter in self._waiting if self._rank(waiter.client, waiter.order) < rank)

    def _expected_start(self, place: int) -> float:
        # Every core is busy, and the running checks end one after another: on average a core
        # is free every estimate / cores seconds, and the waiter at `place` needs place + 1.
        return (place + 1) * self.estimate_seconds / self.cores

    def _refuse_beyond(self, place: int) -> None:
        if self._expected_start(place) > self.wait_seconds:
            raise Overloaded(
                f"{self._running} password checks are running and {len(self._waiting)} waiting: "
                f"this one would not start within {self.wait_seconds:g}s"
            )

    async def _turn(self, client: str | None) -> None:
        if self._running < self.cores and not self._waiting:
            self._running += 1
            return
        loop = asyncio.get_running_loop()
        waiter = _Waiter(client, next(self._orders), loop.create_future())
        waiter.timer = loop.call_later(self.wait_seconds, self._expire, waiter)
        self._waiting.append(waiter)
        self._sort()
        # A newcomer ahead of others may push the last ones past the wait: refuse them now.
        while self._waiting and self._expected_start(len(self._waiting) - 1) > self.wait_seconds:
            self._refuse(self._waiting.pop(), "pushed back past the wait by checks ahead of it")
        try:
            await waiter.turn
        except asyncio.CancelledError:
            if waiter.turn.done() and not waiter.turn.cancelled():
                self._give_back()  # handed the core just as the caller went away
            else:
                self._remove(waiter)
            raise

    def _sort(self) -> None:
        self._waiting.sort(key=lambda waiter: self._rank(waiter.client, waiter.order))

    def _refuse(self, waiter: _Waiter, why: str) -> None:
        if waiter.timer is not None:
            waiter.timer.cancel()
        if not waiter.turn.done():
            waiter.turn.set_exception(Overloaded(f"password check refused: {why}"))

    def _expire(self, waiter: _Waiter) -> None:
        self._remove(waiter)
        self._refuse(waiter, f"no core was free within {self.wait_seconds:g}s")

    def _remove(self, waiter: _Waiter) -> None:
        if waiter in self._waiting:
            self._waiting.remove(waiter)
            if waiter.timer is not None:
                waiter.timer.cancel()

    def _forget(self, client: str | None) -> None:
        if client is not None:
            self._in_progress[client] -= 1
            if not self._in_progress[client]:
                del self._in_progress[client]

    def _done(self, client: str | None, seconds: float) -> None:
        self.estimate_seconds += ESTIMATE_WEIGHT * (seconds - self.estimate_seconds)
        self._forget(client)
        self._give_back()

    def _give_back(self) -> None:
        self._sort()  # failures counted since the waiters arrived reorder them
        while self._waiting:
            waiter = self._waiting.pop(0)
            if waiter.timer is not None:
                waiter.timer.cancel()
            if not waiter.turn.done():
                waiter.turn.set_result(None)  # the core passes on: `_running` is unchanged
                return
        self._running -= 1
