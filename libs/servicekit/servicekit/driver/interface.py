"""What every driver pool offers (DriverPool), the rows it returns, and its timeout error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

Row = Sequence[Any]
Statement = tuple[str, Sequence[Any]]
Outcome = list[Row] | BaseException


class StatementTimeout(Exception):
    """A statement ran longer than the timeout it was given and was cancelled."""


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
