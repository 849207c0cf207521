"""PostgreSQL's own CPU time per search, for the service's statements and alternatives to them.

    BENCH_PG_PREFIX=mythoughts_bench .venv/bin/python bench/pg_search.py [--searches 3000]
        [--rounds 3] [--word zyzzyva] [--order asc] [--explain]

Runs against the thoughts database that `bench/run.py` loaded (`<BENCH_PG_PREFIX>_thoughts`).
Each variant answers the first page of a search (21 rows, oldest first by default as in the
API and the benchmark's "search rare word") `searches` times on one asyncpg connection of its
own, with the service's server settings (thoughts_service.main.SERVER_SETTINGS) unless the
variant says otherwise. The figure is the CPU time of that connection's backend process (utime
+ stime of /proc/<backend pid>/stat, so that other processes on a shared machine do not count)
per search, and the client's wall time per search. The variants are interleaved, `rounds`
times, and each keeps its best round. Every variant's rows are checked against the service's
before anything is timed.

The variants:

- `edge + span`: what ThoughtRepository.search ran before the edge was remembered (and still
  runs for a process's first search): the oldest (or newest) thought, then the matches in the
  page's two windows of ids (thoughts_service.search_windows), custom plans.
- `service (edge known)`: what it runs once the process has seen the edge: one statement, the
  span made from that edge, the edge read again in the same statement to check it.
- `service, generic plans`: the same with `plan_cache_mode = auto`: PostgreSQL plans each
  prepared statement a few times, then reuses a generic plan. The difference is what planning
  costs (the service cannot use generic plans: see thoughts_service.main).
- `span only`: the second statement alone (the span computed once, before timing): the
  difference is what the edge's statement costs.
- `one window`: the span cut to the first id's window (half the index work and heap rows of
  two; not taken, as it turns the plan of a common word at ten million thoughts into reading
  every match of the window: bench/README.md, target 5).
- `one statement`: both in one statement, the edge's window as a scalar subquery (InitPlan).
- `plain LIKE`: the search before migration 0002 (every match read from the heap and sorted).

`--explain` prints EXPLAIN (ANALYZE, BUFFERS) of the service's two statements and of the one
statement first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from run import cpu_seconds
from sqlalchemy import Dialect
from sqlalchemy.engine import make_url

from servicekit.pagination import Order
from thoughts_service.compiled import CompiledQuery, compiled_query
from thoughts_service.main import SERVER_SETTINGS
from thoughts_service.search import like_contains_pattern, search_key
from thoughts_service.search_windows import SEARCH_WINDOW, SearchSpan
from thoughts_service.statements import ThoughtQuery

BASE = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
PREFIX = os.environ.get("BENCH_PG_PREFIX", "mythoughts_bench")
LIMIT = 21  # a page of 20 and one more, to know whether there is a next page

# The service's own statements, as its repository runs them (thoughts_service.compiled), for
# a first page in either order.
DIALECT: Dialect = make_url("postgresql+asyncpg://").get_dialect()()


@dataclass(frozen=True)
class Statements:
    order: Order
    edge: CompiledQuery  # the newest (desc) or oldest (asc) thought
    windows: CompiledQuery  # the matches in the page's span
    plain: CompiledQuery  # every match, sorted (before migration 0002)
    one: str  # the alternative: edge and windows in one statement
    first: CompiledQuery  # a first page's span from a known edge, the edge read with it

    @classmethod
    def of(cls, order: Order) -> Statements:
        windows = compiled_query(DIALECT, ThoughtQuery.LIKE_WINDOWS, order, False)
        # The edge's window as a scalar subquery (an InitPlan, run once per execution). A first
        # page's span starts at the edge, so only its far end needs a bound.
        edge = "max" if order == "desc" else "min"
        window = f"(SELECT {edge}(id) FROM thoughts) / {SEARCH_WINDOW}"  # noqa: S608 - constants
        if order == "desc":
            span = (
                f"ARRAY[{window}, {window} - 1] AND thoughts.id >= ({window} - 1) * {SEARCH_WINDOW}"
            )
        else:
            span = (
                f"ARRAY[{window}, {window} + 1] AND thoughts.id < ({window} + 2) * {SEARCH_WINDOW}"
            )
        one = (
            windows.sql.split(" AND ARRAY[")[0]
            + f" AND ARRAY[thoughts.id / {SEARCH_WINDOW}] && {span}"
            + f" ORDER BY thoughts.id {order.upper()} LIMIT $2::INTEGER"
        )
        return cls(
            order,
            compiled_query(DIALECT, ThoughtQuery.ALL, order, False),
            windows,
            compiled_query(DIALECT, ThoughtQuery.LIKE, order, False),
            one,
            compiled_query(DIALECT, ThoughtQuery.LIKE_FIRST_WINDOWS, order, False),
        )


Search = Callable[[asyncpg.Connection], Awaitable[list[Any]]]


@dataclass(frozen=True)
class Searches:
    """The variants' searches for one pattern and page order."""

    statements: Statements
    pattern: str

    async def edge_span(self, connection: asyncpg.Connection) -> SearchSpan:
        edge = self.statements.edge
        rows = await connection.fetch(edge.sql, *edge.arguments({"limit": 1}))
        span = SearchSpan.starting_at(rows[0][0], self.statements.order)
        assert span is not None
        return span

    async def windows(self, connection: asyncpg.Connection, span: SearchSpan) -> list[Any]:
        windows = self.statements.windows
        values = {"pattern": self.pattern, **span.values(), "limit": LIMIT}
        return list(await connection.fetch(windows.sql, *windows.arguments(values)))

    async def service(self, connection: asyncpg.Connection) -> list[Any]:
        rows = await self.windows(connection, await self.edge_span(connection))
        assert len(rows) == LIMIT, "the windows did not fill the page: not the measured path"
        return rows

    def known_edge(self, edge: int) -> Search:
        """The service since the edge is remembered (ThoughtRepository._first_windows): one
        statement, the span made from an edge read before, the edge read again with it."""
        span = SearchSpan.of_first_page(edge, self.statements.order)
        assert span is not None
        first = self.statements.first
        arguments = first.arguments({"pattern": self.pattern, **span.values(), "limit": LIMIT})

        async def search(connection: asyncpg.Connection) -> list[Any]:
            rows = await connection.fetch(first.sql, *arguments)
            assert SearchSpan.of_first_page(rows[0][4], self.statements.order) == span
            return [tuple(row)[:4] for row in rows]

        return search

    def windows_only(self, span: SearchSpan) -> Search:
        return lambda connection: self.windows(connection, span)

    async def one_window(self, connection: asyncpg.Connection) -> list[Any]:
        """The span cut to the first id's window (not taken: see bench/README.md, target 5)."""
        span, w = await self.edge_span(connection), SEARCH_WINDOW
        if self.statements.order == "desc":
            span = SearchSpan(span.window, span.window, span.window * w, span.high)
        else:
            span = SearchSpan(span.window, span.window, span.low, (span.window + 1) * w - 1)
        rows = await self.windows(connection, span)
        assert len(rows) == LIMIT, "one window did not fill the page: not the measured path"
        return rows

    async def one_statement(self, connection: asyncpg.Connection) -> list[Any]:
        return list(await connection.fetch(self.statements.one, self.pattern, LIMIT))

    async def plain(self, connection: asyncpg.Connection) -> list[Any]:
        plain = self.statements.plain
        values = {"pattern": self.pattern, "limit": LIMIT}
        return list(await connection.fetch(plain.sql, *plain.arguments(values)))


@dataclass(frozen=True)
class Variant:
    name: str
    search: Search
    settings: dict[str, str]


async def measure(dsn: str, variant: Variant, searches: int) -> tuple[float, float]:
    """PostgreSQL's CPU and the client's wall time per search, in microseconds."""
    connection = await asyncpg.connect(dsn, server_settings=variant.settings)
    try:
        pid = await connection.fetchval("SELECT pg_backend_pid()")
        for _ in range(20):  # prepared, generic plans settled, pages cached
            await variant.search(connection)
        cpu, wall = cpu_seconds(pid), time.perf_counter()
        for _ in range(searches):
            await variant.search(connection)
        cpu, wall = cpu_seconds(pid) - cpu, time.perf_counter() - wall
    finally:
        await connection.close()
    return cpu / searches * 1e6, wall / searches * 1e6


async def explain(dsn: str, searches: Searches, span: SearchSpan) -> None:
    statements = searches.statements
    windows = {"pattern": searches.pattern, **span.values(), "limit": LIMIT}
    connection = await asyncpg.connect(dsn, server_settings=dict(SERVER_SETTINGS))
    try:
        for title, sql, arguments in (
            ("edge", statements.edge.sql, [1]),
            ("windows", statements.windows.sql, statements.windows.arguments(windows)),
            ("one statement", statements.one, [searches.pattern, LIMIT]),
        ):
            plan = await connection.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *arguments)
            print(f"--- {title}\n" + "\n".join(row[0] for row in plan))
    finally:
        await connection.close()


async def main(args: argparse.Namespace) -> None:
    dsn = f"{BASE}/{PREFIX}_thoughts"
    searches = Searches(Statements.of(args.order), like_contains_pattern(search_key(args.word)))
    connection = await asyncpg.connect(dsn, server_settings=dict(SERVER_SETTINGS))
    try:
        hits = await connection.fetchval(
            "SELECT count(*) FROM thoughts WHERE search_text LIKE $1 ESCAPE '/'", searches.pattern
        )
        edge = (await connection.fetch(searches.statements.edge.sql, 1))[0][0]
        span = await searches.edge_span(connection)
        expected = [tuple(row) for row in await searches.service(connection)]
        in_span = len(range(span.low, span.high + 1))
    finally:
        await connection.close()
    print(
        f"{PREFIX}_thoughts: {hits:,} matches of {args.word!r}; the first page ({args.order}) "
        f"looks in ids {span.low:,} to {span.high:,} ({in_span:,} ids, windows {span.window} "
        f"and {span.next_window})"
    )
    if args.explain:
        await explain(dsn, searches, span)
    custom = dict(SERVER_SETTINGS)
    variants = [
        Variant("edge + span", searches.service, custom),
        Variant("service (edge known)", searches.known_edge(edge), custom),
        Variant("service, generic plans", searches.service, {**custom, "plan_cache_mode": "auto"}),
        Variant("span only", searches.windows_only(span), custom),
        Variant("one window", searches.one_window, custom),
        Variant("one statement", searches.one_statement, custom),
        Variant("plain LIKE", searches.plain, custom),
    ]
    if args.variants:
        variants = [variant for variant in variants if variant.name in args.variants]
    for variant in variants:
        connection = await asyncpg.connect(dsn, server_settings=variant.settings)
        try:
            rows = [tuple(row) for row in await variant.search(connection)]
        finally:
            await connection.close()
        assert rows == expected, f"{variant.name}: not the service's rows"
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for variant in variants:
            cpu, wall = await measure(dsn, variant, args.searches)
            if variant.name not in best or cpu < best[variant.name][0]:
                best[variant.name] = (cpu, wall)
    print(f"{'variant':<24} {'PostgreSQL CPU us':>18} {'wall us':>9}   (best of {args.rounds})")
    for name, (cpu, wall) in best.items():
        print(f"{name:<24} {cpu:>18.0f} {wall:>9.0f}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--searches", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--word", default="zyzzyva")
    parser.add_argument("--order", choices=("asc", "desc"), default="asc")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--variants", action="append", help="only these (repeatable)")
    asyncio.run(main(parser.parse_args()))
