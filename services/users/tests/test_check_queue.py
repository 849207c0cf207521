"""The password checks' queue (users_service.check_queue): who goes next, who is refused at once,
and where the checks run. Checks here are blocking functions the test releases, so the order is
observed, never timed."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from typing import Any

import pytest

from servicekit.admission import Overloaded
from users_service.check_queue import CheckQueue, DecayingCounts


def make_queue(**overrides: Any) -> CheckQueue:
    values: dict[str, Any] = {
        "cores": 1,
        "wait_seconds": 30.0,
        "per_client": 2,
        "niceness": 0,
        "first_estimate_seconds": 1.0,
    }
    values.update(overrides)
    return CheckQueue(**values)


class Gate:
    """A check that blocks its thread until released, and records the order checks started."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release = threading.Event()

    def check(self, name: str) -> Callable[[], str]:
        def work() -> str:
            self.started.append(name)
            if not self.release.wait(10):
                raise TimeoutError("the test never released the check")
            return name

        return work


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def test_an_address_without_failures_goes_ahead_of_addresses_that_failed() -> None:
    queue = make_queue(first_estimate_seconds=0.1)
    gate = Gate()
    try:
        holder = asyncio.create_task(queue.run("holder", gate.check("holder")))
        await until(lambda: gate.started == ["holder"])
        for n in range(5):
            queue.failed(f"guesser-{n}")
        guessers = [
            asyncio.create_task(queue.run(f"guesser-{n}", gate.check(f"guesser-{n}")))
            for n in range(5)
        ]
        await until(lambda: queue.waiting == 5)
        newcomer = asyncio.create_task(queue.run("newcomer", gate.check("newcomer")))
        await until(lambda: queue.waiting == 6)
        gate.release.set()
        await asyncio.gather(holder, newcomer, *guessers)
        # Arrival order would have served the newcomer last.
        assert gate.started[:2] == ["holder", "newcomer"]
        assert gate.started[2:] == [f"guesser-{n}" for n in range(5)]
    finally:
        gate.release.set()
        queue.close()


async def test_addresses_that_failed_more_wait_longer() -> None:
    queue = make_queue(first_estimate_seconds=0.1)
    gate = Gate()
    try:
        holder = asyncio.create_task(queue.run(None, gate.check("holder")))
        await until(lambda: gate.started == ["holder"])
        for _ in range(3):
            queue.failed("often")
        queue.failed("once")
        often = asyncio.create_task(queue.run("often", gate.check("often")))
        await until(lambda: queue.waiting == 1)
        once = asyncio.create_task(queue.run("once", gate.check("once")))
        await until(lambda: queue.waiting == 2)
        gate.release.set()
        await asyncio.gather(holder, often, once)
        assert gate.started == ["holder", "once", "often"]
    finally:
        gate.release.set()
        queue.close()


async def test_a_check_that_would_not_start_within_the_wait_is_refused_at_once() -> None:
    # One core, a check takes 10 s by the estimate, a wait of 30 s: places 0-2 of the queue
    # start within 10, 20 and 30 s, the fourth waiter would start after 40 s.
    queue = make_queue(wait_seconds=30.0, first_estimate_seconds=10.0)
    gate = Gate()
    try:
        held = [asyncio.create_task(queue.run(f"c{n}", gate.check(f"c{n}"))) for n in range(4)]
        await until(lambda: queue.running == 1 and queue.waiting == 3)
        # Refused without waiting for the 30 s timer (the test would time out first).
        with pytest.raises(Overloaded, match="would not start within 30s"):
            await asyncio.wait_for(queue.run("late", gate.check("late")), 5)
        gate.release.set()
        assert sorted(await asyncio.gather(*held)) == ["c0", "c1", "c2", "c3"]
    finally:
        gate.release.set()
        queue.close()


async def test_a_newcomer_ahead_pushes_the_last_waiter_out_at_once() -> None:
    queue = make_queue(wait_seconds=30.0, first_estimate_seconds=10.0)
    gate = Gate()
    try:
        holder = asyncio.create_task(queue.run("holder", gate.check("holder")))
        await until(lambda: queue.running == 1)
        for n in range(3):
            for _ in range(n + 1):
                queue.failed(f"guesser-{n}")
        guessers = [
            asyncio.create_task(queue.run(f"guesser-{n}", gate.check(f"guesser-{n}")))
            for n in range(3)
        ]
        await until(lambda: queue.waiting == 3)
        newcomer = asyncio.create_task(queue.run("newcomer", gate.check("newcomer")))
        # The guesser with the most failures is refused now, not when its 30 s are up.
        with pytest.raises(Overloaded, match="pushed back"):
            await asyncio.wait_for(guessers[2], 5)
        gate.release.set()
        assert await newcomer == "newcomer"
        assert await asyncio.gather(holder, *guessers[:2]) == ["holder", "guesser-0", "guesser-1"]
    finally:
        gate.release.set()
        queue.close()


async def test_a_waiter_is_refused_when_the_wait_is_over() -> None:
    # The estimate says the check will start in time; the running check says otherwise.
    queue = make_queue(wait_seconds=0.2, first_estimate_seconds=0.01)
    gate = Gate()
    try:
        holder = asyncio.create_task(queue.run("holder", gate.check("holder")))
        await until(lambda: queue.running == 1)
        with pytest.raises(Overloaded, match=r"no core was free within 0\.2s"):
            await queue.run("waiter", gate.check("waiter"))
        assert queue.waiting == 0
        gate.release.set()
        assert await holder == "holder"
        assert gate.started == ["holder"]
    finally:
        gate.release.set()
        queue.close()


async def test_one_address_has_at_most_its_share_in_progress() -> None:
    queue = make_queue(per_client=2)
    gate = Gate()
    try:
        mine = [asyncio.create_task(queue.run("a", gate.check(f"a{n}"))) for n in range(2)]
        await until(lambda: queue.running + queue.waiting == 2)
        with pytest.raises(Overloaded, match="2 password checks from this address"):
            queue.refuse_now("a")
        with pytest.raises(Overloaded, match="2 password checks from this address"):
            await queue.run("a", gate.check("a2"))
        other = asyncio.create_task(queue.run("b", gate.check("b")))
        gate.release.set()
        assert await asyncio.gather(*mine, other) == ["a0", "a1", "b"]
        assert await queue.run("a", gate.check("a3")) == "a3"
    finally:
        gate.release.set()
        queue.close()


async def test_a_core_is_given_back_when_the_check_ends_not_when_its_caller_leaves() -> None:
    queue = make_queue()
    gate = Gate()
    try:
        abandoned = asyncio.create_task(queue.run("gone", gate.check("gone")))
        await until(lambda: gate.started == ["gone"])
        abandoned.cancel()
        with pytest.raises(asyncio.CancelledError):
            await abandoned
        # The abandoned hash still runs in its thread: the next check waits for it.
        follower = asyncio.create_task(queue.run("next", gate.check("next")))
        await until(lambda: queue.waiting == 1)
        assert gate.started == ["gone"]
        gate.release.set()
        assert await follower == "next"
        assert (queue.running, queue.waiting) == (0, 0)
    finally:
        gate.release.set()
        queue.close()


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="per-thread priority is Linux's")
async def test_checks_run_at_a_lower_priority_than_the_event_loop() -> None:
    queue = make_queue(niceness=7)
    try:
        loop_thread = threading.get_native_id()

        def priority() -> tuple[int, int]:
            thread = threading.get_native_id()
            return thread, os.getpriority(os.PRIO_PROCESS, thread)

        thread, niceness = await queue.run(None, priority)
        assert thread != loop_thread
        assert niceness == min(19, os.getpriority(os.PRIO_PROCESS, loop_thread) + 7)
    finally:
        queue.close()


def test_failures_are_forgotten_by_halves() -> None:
    now = [0.0]
    counts = DecayingCounts(half_life=60.0, clock=lambda: now[0])
    for _ in range(4):
        counts.add("a")
    assert counts.get("a") == 4
    now[0] = 60.0
    assert counts.get("a") == pytest.approx(2)
    now[0] = 120.0
    assert counts.get("a") == pytest.approx(1)
    assert counts.get("never") == 0
