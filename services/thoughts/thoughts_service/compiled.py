"""The SELECTs compiled once per driver and page shape, and run with positional values."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect

from servicekit.pagination import Order
from thoughts_service.statements import ThoughtQuery, build_select


@dataclass(frozen=True)
class CompiledQuery:
    """A statement compiled for one driver: its SQL and the order of its positional values."""

    sql: str
    names: tuple[str, ...]
    # Values the compiler added itself (SQLite renders LIMIT ? as "LIMIT ? OFFSET ?", 0).
    constants: tuple[tuple[str, Any], ...] = ()

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        given = {**dict(self.constants), **values}
        return [given[name] for name in self.names]


@functools.cache
def compiled_query(
    dialect: Dialect, kind: ThoughtQuery, order: Order, has_cursor: bool
) -> CompiledQuery:
    compiled = build_select(dialect.name, kind, order, has_cursor).compile(dialect=dialect)
    constants = tuple((name, value) for name, value in compiled.params.items() if value is not None)
    return CompiledQuery(compiled.string, tuple(compiled.positiontup or ()), constants)
