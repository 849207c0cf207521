"""Generated thoughts in bulk, to measure the service at realistic sizes (benchmarks, tests).

Text is made of pseudo-words from a fixed syllable set, so that trigram statistics look like a
natural language's (many common trigrams, a long tail of rare ones). One thought in every
`rare_every` also contains `rare_word`: a search for it is the "needle" a benchmark times.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncConnection

from servicekit.db import Database
from thoughts_service.models import TEXT_MAX, Thought
from thoughts_service.search import search_key

_SYLLABLES = (  # noqa: SIM905 - one string reads better than forty quoted syllables
    "ka ri to mu se na lo vi pe da ne ko su ma ti ra be lu go fi ha je wo ze ny "
    "bra cho dre fla gri kle mon pra sto tra vel zan qui pho thu"
).split()
BATCH = 2000
# Created by the PostgreSQL branch of migrations/versions/0001.
TRIGRAM_INDEX = "ix_thoughts_search_text_trgm"


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4))))
    return sorted(words)


def synthetic_rows(
    count: int, *, seed: int = 1, rare_word: str = "zyzzyva", rare_every: int = 10_000
) -> Iterator[dict[str, Any]]:
    """Row dicts for `insert(Thought)`; the same seed always gives the same rows."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    vocabulary = _vocabulary(rng, 5000)
    # Zipf-like: a few words are everywhere, most are rare.
    cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(vocabulary))))
    users = [f"user{number:04d}" for number in range(1000)]
    now = datetime.now(UTC)
    for index in range(count):
        words = rng.choices(vocabulary, cum_weights=cumulative, k=rng.randint(4, 30))
        if rare_every and index % rare_every == rare_every // 2:
            words.insert(rng.randrange(len(words) + 1), rare_word)
        text = " ".join(words)[:TEXT_MAX].strip().capitalize() or "Empty"
        yield {
            "username": rng.choice(users),
            "text": text,
            "search_text": search_key(text),
            "timestamp": now,
        }


@asynccontextmanager
async def trigram_index_bulk_mode(connection: AsyncConnection) -> AsyncIterator[None]:
    """Around bulk inserts on PostgreSQL: the trigram index queues new entries in its pending
    list and merges them in sorted batches, many times faster than its usual row-by-row updates
    (migration 0001 turns the pending list off for steady-state searches). Afterwards nothing is
    left pending and fresh statistics show the planner the table's real size. Elsewhere a no-op.
    """
    if connection.dialect.name != "postgresql":
        yield
        return
    await connection.execute(text(f"ALTER INDEX {TRIGRAM_INDEX} SET (fastupdate = on)"))
    yield
    await connection.execute(text(f"SELECT gin_clean_pending_list('{TRIGRAM_INDEX}')"))
    await connection.execute(text(f"ALTER INDEX {TRIGRAM_INDEX} SET (fastupdate = off)"))
    await connection.execute(text("ANALYZE thoughts"))


async def load_synthetic(
    database_url: str,
    count: int,
    *,
    seed: int = 1,
    rare_word: str = "zyzzyva",
    rare_every: int = 10_000,
) -> int:
    """Inserts `count` generated thoughts into a migrated database; returns how many."""
    database = Database(database_url)
    inserted = 0
    try:
        rows = synthetic_rows(count, seed=seed, rare_word=rare_word, rare_every=rare_every)
        async with database.engine.begin() as connection, trigram_index_bulk_mode(connection):
            batch: list[dict[str, Any]] = []
            for row in rows:
                batch.append(row)
                if len(batch) == BATCH:
                    await connection.execute(insert(Thought), batch)
                    inserted += len(batch)
                    batch = []
            if batch:
                await connection.execute(insert(Thought), batch)
                inserted += len(batch)
    finally:
        await database.dispose()
    return inserted
