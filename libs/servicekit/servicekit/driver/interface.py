"""What every driver pool offers (DriverPool), the rows it returns, its timeout error, and the
record of when the database last answered (LastAnswer)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

Row = Sequence[Any]
Statement = tuple[str, Sequence[Any]]
Outcome = list[Row] | BaseException


class StatementTimeout(Exception):
    """A statement ran longer than the timeout it was given and was cancelled."""


class LastAnswer:
    """When the database last answered a statement of this process (`time.monotonic()`).

    Every pool of a Database records into one (servicekit.db): /readyz takes a pool whose
    statements keep being answered for a busy pool, not a database cut off
    (servicekit.readiness). One float written per statement: nothing else is counted."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at = float("-inf")

    def record(self) -> None:
        self.at = time.monotonic()


class DriverPool(Protocol):
    async def fetch(
        self, sql: str, arguments: Sequence[Any], *, may_be_slow: bool = False
    ) -> list[Row]:
        """The rows of a read. `may_be_slow`: the statement may run long (a scan), so it waits
        for a turn of the pool's slow queries (Overloaded when none comes in time)."""
        ...

    async def write(self, sql: str, arguments: Sequence[Any]) -> list[Row]:
        """Runs one statement in its own transaction; the rows it returns (RETURNING)."""
        ...

    async def close(self) -> None: ...
