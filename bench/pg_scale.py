"""What the thoughts database weighs and how its hot queries run, at the size `bench/run.py` loaded.

    BENCH_PG_PREFIX=mythoughts_bench .venv/bin/python bench/pg_scale.py [--order asc]

Prints the size of the thoughts table (heap and TOAST) and of each of its indexes
(`pg_relation_size`) next to the server's `shared_buffers` and the machine's memory, the
statistics that decide the plans (rows, the most prolific author's thoughts, matches of the rare
and the common word), and EXPLAIN (ANALYZE, BUFFERS) of every statement the benchmark's read
scenarios make the service run: the service's own compiled statements
(thoughts_service.compiled) with the values of the benchmark's first pages, under the service's
server settings (custom plans). Run it twice to see the plans with a warm cache.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

import asyncpg
from pg_search import BASE, DIALECT, LIMIT, PREFIX

from devtools.synthetic_thoughts import COMMON_WORD, RARE_WORD
from servicekit.pagination import Order
from thoughts_service.compiled import compiled_query
from thoughts_service.main import SERVER_SETTINGS
from thoughts_service.search import like_contains_pattern
from thoughts_service.search_windows import SearchSpan
from thoughts_service.statements import ThoughtQuery

MB = 1024 * 1024

SIZES = """
SELECT c.relname, c.relkind::text, pg_relation_size(c.oid)
FROM pg_class c
WHERE c.oid = 'thoughts'::regclass
   OR c.oid = (SELECT reltoastrelid FROM pg_class WHERE oid = 'thoughts'::regclass)
   OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'thoughts'::regclass)
ORDER BY pg_relation_size(c.oid) DESC
"""


def memory_total_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def explain(
    connection: asyncpg.Connection, title: str, sql: str, arguments: list[Any]
) -> None:
    plan = await connection.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *arguments)
    print(f"\n--- {title}\n" + "\n".join(row[0] for row in plan))


async def explain_search(connection: asyncpg.Connection, word: str, order: Order) -> None:
    """Both statements of the first page of a search (ThoughtRepository._search_by_span)."""
    edge = compiled_query(DIALECT, ThoughtQuery.ALL, order, False)
    first_id = (await connection.fetch(edge.sql, *edge.arguments({"limit": 1})))[0][0]
    await explain(connection, f"search {word!r}: the edge", edge.sql, [1])
    span = SearchSpan.starting_at(first_id, order)
    assert span is not None
    windows = compiled_query(DIALECT, ThoughtQuery.LIKE_WINDOWS, order, False)
    values = {"pattern": like_contains_pattern(word), **span.values(), "limit": LIMIT}
    await explain(
        connection,
        f"search {word!r}: the matches in ids {span.low:,} to {span.high:,}",
        windows.sql,
        windows.arguments(values),
    )


async def main(order: Order) -> None:
    connection = await asyncpg.connect(
        f"{BASE}/{PREFIX}_thoughts", server_settings=dict(SERVER_SETTINGS)
    )
    try:
        shared_buffers = await connection.fetchval("SHOW shared_buffers")
        print(
            f"{PREFIX}_thoughts: shared_buffers {shared_buffers}, "
            f"machine memory {memory_total_mb():,.0f} MB"
        )
        print(f"{'relation':<42} {'kind':>4} {'MB':>9}")
        total = 0
        for name, kind, size in await connection.fetch(SIZES):
            total += size
            print(f"{name:<42} {kind:>4} {size / MB:>9.1f}")
        print(f"{'total':<42} {'':>4} {total / MB:>9.1f}")
        rows, low, high = await connection.fetchrow(
            "SELECT count(*), min(id), max(id) FROM thoughts"
        )
        author, written = await connection.fetchrow(
            "SELECT username, count(*) AS n FROM thoughts GROUP BY username ORDER BY n DESC LIMIT 1"
        )
        counts = {
            word: await connection.fetchval(
                "SELECT count(*) FROM thoughts WHERE search_text LIKE $1 ESCAPE '/'",
                like_contains_pattern(word),
            )
            for word in (RARE_WORD, COMMON_WORD)
        }
        print(
            f"{rows:,} thoughts (ids {low:,} to {high:,}); top author {author} wrote {written:,}; "
            + ", ".join(f"{word!r} in {n:,}" for word, n in counts.items())
        )
        one = compiled_query(DIALECT, ThoughtQuery.ONE, "asc", False)
        await explain(connection, "thought by id (the middle id)", one.sql, [(low + high) // 2])
        listing = compiled_query(DIALECT, ThoughtQuery.ALL, order, False)
        await explain(connection, "all thoughts", listing.sql, [LIMIT])
        mine = compiled_query(DIALECT, ThoughtQuery.BY_USER, order, False)
        await explain(
            connection,
            f"my thoughts ({author})",
            mine.sql,
            mine.arguments({"username": author, "limit": LIMIT}),
        )
        for word in (RARE_WORD, COMMON_WORD):
            await explain_search(connection, word, order)
    finally:
        await connection.close()
    print(f"\nload average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--order", choices=("asc", "desc"), default="asc", help="page order (the API's default)"
    )
    asyncio.run(main(parser.parse_args().order))
