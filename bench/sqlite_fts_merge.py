"""What SQLite's FTS5 segment merges cost a post: single-post transactions on a copy of a
benchmark database, under FTS5 settings given on the command line, alternated.

    .venv/bin/python bench/sqlite_fts_merge.py var/bench/sqlite/thoughts.db \\
        --posts 5000 --rounds 2 default automerge=8

Each round copies the database (with its WAL folded in) to a temporary file for every setting,
applies the setting (`automerge=N`, `crisismerge=N`, `usermerge=N`: FTS5's configuration
options, stored in the index; `default`: as the migrations left it), then commits `--posts`
posts one per transaction, as the thoughts service's writer does when posts arrive one at a
time (the trigger adds each to the FTS5 index at the commit), and prints the distribution of
the transactions' durations, how many took over 20 ms, and their total. The database given is
never written to.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from openloop import percentile

SLOW_MS = 20.0
_INSERT = (
    "INSERT INTO thoughts (username, text, search_text, timestamp) "
    "VALUES (?, ?, ?, datetime('now'))"
)
_WORDS = [
    "".join(random.Random(i).choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3 + i % 7))
    for i in range(20_000)
]


@dataclass
class Measured:
    setting: str
    durations_ms: list[float]

    def line(self) -> str:
        durations = self.durations_ms
        slow = sum(1 for d in durations if d > SLOW_MS)
        return (
            f"{self.setting:<16} posts {len(durations):>6}  "
            f"p50 {percentile(durations, 0.5):6.2f}  p99 {percentile(durations, 0.99):6.2f}  "
            f"p99.9 {percentile(durations, 0.999):6.2f}  max {max(durations):7.2f} ms  "
            f"over {SLOW_MS:g} ms: {slow:>4}  total {sum(self.durations_ms) / 1000:6.2f} s"
        )


def apply(connection: sqlite3.Connection, setting: str) -> None:
    if setting == "default":
        return
    option, _, value = setting.partition("=")
    if option not in ("automerge", "crisismerge", "usermerge") or not value.isdigit():
        raise SystemExit(f"{setting!r}: give default, automerge=N, crisismerge=N or usermerge=N")
    connection.execute(
        "INSERT INTO thoughts_fts(thoughts_fts, rank) VALUES (?, ?)", (option, int(value))
    )


def measure(source: Path, setting: str, posts: int, seed: int) -> Measured:
    texts = random.Random(seed)
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "thoughts.db"
        with sqlite3.connect(source) as original, sqlite3.connect(copy) as target:
            original.backup(target)  # the committed state, WAL included
        connection = sqlite3.connect(copy, isolation_level=None)
        try:
            # The service's writer pragmas (servicekit.driver.sqlite).
            for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "wal_autocheckpoint = 0"):
                connection.execute(f"PRAGMA {pragma}")
            apply(connection, setting)
            durations = []
            for _ in range(posts):
                text = " ".join(texts.choice(_WORDS) for _ in range(texts.randint(5, 25)))
                started = time.perf_counter()
                connection.execute("BEGIN IMMEDIATE")
                connection.execute(_INSERT, ("bench", text, text))
                connection.execute("COMMIT")
                durations.append((time.perf_counter() - started) * 1000)
        finally:
            connection.close()
    return Measured(setting, durations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database", type=Path, help="a migrated thoughts database (SQLite)")
    parser.add_argument("settings", nargs="+", help="default, automerge=N, crisismerge=N, ...")
    parser.add_argument("--posts", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if not args.database.is_file():
        raise SystemExit(f"{args.database}: no such database")
    for round_ in range(args.rounds):
        for setting in args.settings:
            # The same posts for every setting of a round.
            print(measure(args.database, setting, args.posts, seed=round_).line(), flush=True)


if __name__ == "__main__":
    main()
