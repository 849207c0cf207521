"""Generated thoughts in bulk, to measure the service at realistic sizes (benchmarks, tests).

A development tool (`python -m devtools load`), not part of the thoughts service: its image
never carries it, nor tqdm.

What the rows look like, and why:

- Text: English-like sentences of 20 to 250 characters. Most words come from a list of common
  English words with a Zipf-like frequency (a few words are everywhere), the rest from a long tail
  of made-up words built from syllables, so that trigram statistics look like a natural
  language's: many very common trigrams, a long tail of rare ones. `COMMON_WORD` is one of the
  frequent words (a few percent of the thoughts contain it).
- Needles: one thought in every `rare_every` (default 1,000, 0.1% of the rows) also contains
  `rare_word`, which the generator never produces otherwise: a search for it is the "rare word"
  a benchmark times, and its number of hits is known in advance.
- Authors: `authors` usernames (`synthetic_authors`), chosen with a Zipf-like skew: the first few
  write a large share of all thoughts (at a million rows, the top one writes over 100,000 and about
  a hundred write more than 1,000), most write a few hundred.
- Timestamps: spread evenly over the year before now, increasing with the id, as if posted live.

The same seed always gives the same rows. Loading is idempotent: rows already in the table count
towards `count`, and only the missing ones are added (`LoadResult` says what was there).

Bulk paths: PostgreSQL `COPY` (binary, through asyncpg); SQLite batched `executemany` in one
transaction (the FTS5 triggers index every row as it lands). See `load_synthetic` for how the
pg_trgm GIN index is kept valid and fast to fill.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import random
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection
from tqdm import tqdm

from servicekit.db import Database, DatabaseOptions
from thoughts_service.models import TEXT_MAX, TRIGRAM_INDEX, Thought
from thoughts_service.search import search_key

# Frequent English words, roughly most frequent first (rank sets the weight).
_ENGLISH = (  # noqa: SIM905 - one string reads better than three hundred quoted words
    "the to and a of i in is it you that for on my this with be have was are not but so just "
    "at me all we like can do what about your if out one get up time today people new now "
    "when day think how good more know from they will some really there no would make love "
    "work by been back want an going see go our life never should great much first only need "
    "because way who still why best right world last year better thing also over feel than "
    "always every home too many things after into here night week then little even said "
    "something morning real coffee happy could code someone team before again thought idea "
    "long friends nothing hard service system old tomorrow around help sure keep start "
    "another read book today's music find those lot place next while together weekend data "
    "build rain city learn small end talk test others light tired without water seems write "
    "open between trying days looking most each own hope nice free getting making wait school "
    "fast slow deploy release bug fix server cloud docker kubernetes python database query "
    "index search cache latency request response container image cluster pod log metric "
    "alert dashboard pipeline merge branch commit review meeting lunch dinner tea walk run "
    "train bike bus station street park garden tree sun moon star sky sea river mountain "
    "snow summer winter spring autumn dog cat bird family kids mother father brother sister "
    "game movie song story news paper letter phone email message window door table chair "
    "kitchen bread cheese apple orange pizza soup market shop money price job office desk "
    "project plan goal dream memory question answer problem reason minute hour moment "
    "beautiful strange quiet loud early late simple clear bright dark warm cold busy calm"
).split()
# Syllables of the made-up long tail ("zy" never occurs, so the default rare word cannot either).
_SYLLABLES = (  # noqa: SIM905
    "ka ri to mu se na lo vi pe da ne ko su ma ti ra be lu go fi ha je wo ze ny "
    "bra cho dre fla gri kle mon pra sto tra vel zan qui pho thu"
).split()
_TAIL_WORDS = 5000
# Share of word draws that come from the made-up tail rather than the English list.
_TAIL_SHARE = 0.12
_TEXT_MIN = 20

COMMON_WORD = "people"
RARE_WORD = "zyzzyva"
RARE_EVERY = 1000
BATCH = 5000
# Above this many new rows per row already there, PostgreSQL drops the trigram index and builds
# it again after the COPY (one sorted build) instead of inserting into it row by row.
REBUILD_RATIO = 0.5
COLUMNS = ("username", "text", "search_text", "timestamp")
# The loader's own connection: one, and no service's 3 s deadline per statement
# (DatabaseOptions.query_timeout): counting ten million rows took longer than that on a busy
# machine, and the load stopped before it began.
LOADER_DATABASE = DatabaseOptions(pool_size=1, query_timeout=600)


def synthetic_authors(count: int = 1000) -> list[str]:
    """The usernames the loader writes as, most prolific first."""
    return [f"user{number:04d}" for number in range(count)]


def _zipf_cumulative(count: int, exponent: float = 1.0) -> list[float]:
    return list(itertools.accumulate(1 / (rank + 1) ** exponent for rank in range(count)))


def _tail_vocabulary(rng: random.Random, size: int) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


@dataclass(frozen=True)
class _Phrases:
    """A pool of short phrases (2 to 6 words), some ending a sentence or a clause.

    A thought is a few phrases drawn from the pool: a handful of random draws per row instead of
    one per word, so that a million rows take seconds. With tens of thousands of phrases, texts
    practically never repeat, and words keep their Zipf-like frequencies.
    """

    phrases: list[str]

    @classmethod
    def build(cls, rng: random.Random, size: int = 50_000) -> _Phrases:
        english = list(dict.fromkeys(_ENGLISH))
        tail = _tail_vocabulary(rng, _TAIL_WORDS)
        english_weights = [1 / (rank + 1) ** 0.8 for rank in range(len(english))]
        # The made-up words are the long tail: flatter, none of them as common as "the".
        tail_weights = [1 / (rank + 1) ** 0.5 for rank in range(len(tail))]
        scale = (
            _TAIL_SHARE / (1 - _TAIL_SHARE) * math.fsum(english_weights) / math.fsum(tail_weights)
        )
        words = english + tail
        cumulative = list(itertools.accumulate(english_weights + [w * scale for w in tail_weights]))
        phrases = []
        for _ in range(size):
            phrase = " ".join(rng.choices(words, cum_weights=cumulative, k=rng.randint(2, 6)))
            roll = rng.random()
            phrases.append(phrase + ("." if roll < 0.3 else "," if roll < 0.4 else ""))
        return cls(phrases)


def _sentence_text(rng: random.Random, pool: _Phrases, needle: str | None) -> str:
    """One thought of 20 to 250 characters, the needle (if any) near its start."""
    # Short thoughts are the most frequent (density falls linearly towards the maximum).
    target = _TEXT_MIN + int(min(rng.random(), rng.random()) * (TEXT_MAX - _TEXT_MIN - 1))
    parts = rng.choices(pool.phrases, k=target // 18 + 2)
    if needle is not None:
        parts.insert(rng.randrange(2), needle)
    body = " ".join(parts)
    if len(body) > target:
        cut = body.rfind(" ", _TEXT_MIN, target)
        body = body[:cut] if cut > 0 else body[: TEXT_MAX - 1]
    while len(body) < _TEXT_MIN:
        body += " " + rng.choice(pool.phrases)
        body = body[: TEXT_MAX - 1]
    body = body.rstrip(".,")
    return body[0].upper() + body[1:] + rng.choice(".....!?")


def synthetic_rows(
    count: int,
    *,
    start: int = 0,
    seed: int = 1,
    authors: int = 1000,
    rare_word: str = RARE_WORD,
    rare_every: int = RARE_EVERY,
    now: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Row dicts for rows number `start` to `count - 1` of the synthetic data set.

    The same seed and start always give the same rows.
    """
    rng = random.Random(f"{seed}:{start}")  # noqa: S311 - reproducible test data, not secrets
    pool = _Phrases.build(random.Random(seed))  # noqa: S311
    names = synthetic_authors(authors)
    author_weights = _zipf_cumulative(len(names))
    end = (now or datetime.now(UTC)).replace(microsecond=0)
    first = end - timedelta(days=365)
    step = timedelta(days=365) / max(count, 1)
    for index in range(start, count):
        needle = rare_word if rare_every and index % rare_every == rare_every // 2 else None
        text_ = _sentence_text(rng, pool, needle)
        yield {
            "username": rng.choices(names, cum_weights=author_weights)[0],
            "text": text_,
            "search_text": search_key(text_),
            "timestamp": first + step * index,
        }


# The trigram index's storage options as migration 0002 creates it (a small pending list), and
# during a bulk load (a pending list of 64 MB, merged in a few large sorted batches).
INDEX_OPTIONS = "fastupdate = on, gin_pending_list_limit = 256"
BULK_INDEX_OPTIONS = "fastupdate = on, gin_pending_list_limit = 65536"


@asynccontextmanager
async def trigram_index_bulk_mode(connection: AsyncConnection) -> AsyncIterator[None]:
    """Around bulk inserts on PostgreSQL: the trigram index queues new entries in a large
    pending list and merges them in big sorted batches, many times faster than through its
    small steady-state list. Afterwards nothing is left pending, the index has its own options
    back, and fresh statistics show the planner the table's real size. Elsewhere a no-op.
    """
    if connection.dialect.name != "postgresql":
        yield
        return
    await connection.execute(text(f"ALTER INDEX {TRIGRAM_INDEX} SET ({BULK_INDEX_OPTIONS})"))
    yield
    await connection.execute(text(f"SELECT gin_clean_pending_list('{TRIGRAM_INDEX}')"))
    await connection.execute(text(f"ALTER INDEX {TRIGRAM_INDEX} SET ({INDEX_OPTIONS})"))
    await connection.execute(text("ANALYZE thoughts"))


@dataclass(frozen=True)
class LoadResult:
    existing: int  # thoughts in the table before
    inserted: int  # thoughts added now
    index_rebuilt: bool = False  # PostgreSQL: the trigram index was dropped and built again

    @property
    def total(self) -> int:
        return self.existing + self.inserted


Progress = Callable[[int], None]


async def count_thoughts(database_url: str) -> int:
    database = Database(database_url, LOADER_DATABASE)
    try:
        async with database.engine.connect() as connection:
            return int(await connection.scalar(select(func.count()).select_from(Thought)) or 0)
    finally:
        await database.dispose()


async def load_synthetic(
    database_url: str,
    count: int,
    *,
    seed: int = 1,
    authors: int = 1000,
    rare_word: str = RARE_WORD,
    rare_every: int = RARE_EVERY,
    progress: Progress | None = None,
) -> LoadResult:
    """Makes a migrated database hold `count` synthetic thoughts: adds only what is missing.

    `progress(n)` is called after each batch with the number of rows it added.
    """
    existing = await count_thoughts(database_url)
    if existing >= count:
        return LoadResult(existing, 0)
    rows = synthetic_rows(
        count,
        start=existing,
        seed=seed,
        authors=authors,
        rare_word=rare_word,
        rare_every=rare_every,
    )
    if make_url(database_url).get_backend_name() == "postgresql":
        rebuild = count - existing > existing * REBUILD_RATIO
        await _copy_postgresql(database_url, rows, rebuild=rebuild, progress=progress)
        return LoadResult(existing, count - existing, index_rebuilt=rebuild)
    inserted = await _insert_batches(database_url, rows, progress=progress)
    return LoadResult(existing, inserted)


def _batches(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while batch := list(itertools.islice(rows, size)):
        yield batch


async def _insert_batches(
    database_url: str, rows: Iterator[dict[str, Any]], *, progress: Progress | None
) -> int:
    """Batched INSERTs in one transaction (SQLite, and any other database)."""
    database = Database(database_url)
    inserted = 0
    try:
        async with database.engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                # A bigger page cache for the FTS5 index's segment merges (negative: KiB).
                await connection.exec_driver_sql("PRAGMA cache_size = -262144")
            async with trigram_index_bulk_mode(connection):
                for batch in _batches(rows, BATCH):
                    await connection.execute(insert(Thought), batch)
                    inserted += len(batch)
                    if progress:
                        progress(len(batch))
    finally:
        await database.dispose()
    return inserted


async def _records(
    rows: Iterator[dict[str, Any]], progress: Progress | None
) -> AsyncIterator[tuple[Any, ...]]:
    for batch in _batches(rows, BATCH):
        for row in batch:
            yield (row["username"], row["text"], row["search_text"], row["timestamp"])
        if progress:
            progress(len(batch))


async def _copy_postgresql(
    database_url: str,
    rows: Iterator[dict[str, Any]],
    *,
    rebuild: bool,
    progress: Progress | None,
) -> None:
    """COPY in one transaction, so that a failed load leaves the table and index as they were.

    The trigram GIN index is the expensive part of a bulk load. When the load is large next to
    what is there, the index is dropped and built again from its own definition after the COPY:
    one sorted build in `maintenance_work_mem`, several times faster than inserting entries one
    row at a time. Otherwise the index takes the rows through its pending list
    (`trigram_index_bulk_mode`). Either way the index is complete and valid when the transaction
    commits, has its own storage options (INDEX_OPTIONS), and the table has fresh statistics.
    """
    url = make_url(database_url).set(drivername="postgresql")
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        async with connection.transaction():
            index_definition = None
            if rebuild:
                index_definition = await connection.fetchval(
                    "SELECT indexdef FROM pg_indexes WHERE indexname = $1", TRIGRAM_INDEX
                )
            if index_definition:
                await connection.execute(f"DROP INDEX {TRIGRAM_INDEX}")
            else:
                await connection.execute(f"ALTER INDEX {TRIGRAM_INDEX} SET ({BULK_INDEX_OPTIONS})")
            # One COPY fed by a generator: the server stores rows while Python makes the next.
            await connection.copy_records_to_table(
                "thoughts", records=_records(rows, progress), columns=COLUMNS
            )
            await connection.execute("SET LOCAL maintenance_work_mem = '1GB'")
            if index_definition:
                await connection.execute(index_definition)
            else:
                await connection.execute(f"SELECT gin_clean_pending_list('{TRIGRAM_INDEX}')")
                await connection.execute(f"ALTER INDEX {TRIGRAM_INDEX} SET ({INDEX_OPTIONS})")
        await connection.execute("ANALYZE thoughts")
    finally:
        await connection.close()


def load_with_progress(
    database_url: str,
    count: int,
    *,
    say: Callable[[str], None] = print,
    **options: Any,
) -> LoadResult:
    """`load_synthetic` for a command line: says what is there, shows a progress bar (tqdm, on
    stderr), and says what it did and how long it took."""
    where = database_url.split("@")[-1]
    existing = asyncio.run(count_thoughts(database_url))
    if existing >= count:
        say(f"thoughts: {existing:,} already in {where} (asked for {count:,}); nothing to add")
        return LoadResult(existing, 0)
    say(f"thoughts: {existing:,} already in {where}; adding {count - existing:,}")
    start = time.perf_counter()
    with tqdm(
        total=count - existing, unit=" thoughts", unit_scale=True, file=sys.stderr, leave=False
    ) as bar:
        result = asyncio.run(load_synthetic(database_url, count, progress=bar.update, **options))
    rebuilt = " (trigram index rebuilt)" if result.index_rebuilt else ""
    say(
        f"thoughts: added {result.inserted:,} in {time.perf_counter() - start:.1f}s{rebuilt}; "
        f"{result.total:,} in total"
    )
    return result


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a synthetic load (`python -m devtools load`)."""
    parser.add_argument(
        "--thoughts", dest="count", type=int, required=True, help="thoughts the table should hold"
    )
    parser.add_argument("--seed", type=int, default=1, help="same seed, same thoughts")
    parser.add_argument(
        "--authors", type=int, default=1000, help="distinct authors (skewed: a few write most)"
    )
    parser.add_argument(
        "--rare-word",
        default=RARE_WORD,
        help=f"a word put into one thought in every --rare-every (default: {RARE_WORD!r})",
    )
    parser.add_argument("--rare-every", type=int, default=RARE_EVERY)
