"""PostgreSQL: index search by id window, so that a page of a search reads only recent matches.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Replaces the pg_trgm GIN index `ix_thoughts_search_text_trgm` on `search_text` with a two-column
GIN index on `(ARRAY[id / 65536], search_text gin_trgm_ops)`. A page of a search for a rare
word then asks for the matches in two windows of 65,536 ids
(`ARRAY[id / 65536] && ARRAY[<window>, <next window>]`, see
thoughts_service.search_windows.SEARCH_WINDOW) and reads only those from the heap, instead of every
match of the table. A GIN index serves conditions on any subset of its columns, so the same
index still answers a plain `LIKE` without windows.

Why an array of one window number rather than the number itself (btree_gin): `&&` is an
operator of GIN's built-in array operator class, so the planner always uses it as an index
condition, one index scan for both windows. With btree_gin, two windows are `= ANY(...)`, which
GIN cannot take natively: PostgreSQL then runs one index scan per window, and may leave the
condition out of the index scan altogether (measured: it did on tables of up to a few hundred
thousand thoughts, reading every match from the heap).

The expression `ARRAY[id / 65536]` must stay exactly what the repository writes, or the planner
cannot match the query's condition to the index (test_query_plans.py checks it).

Building the index reads the whole table and blocks writes to `thoughts` while it runs (about
45 s at a million thoughts); searches keep using the old index until the migration commits, as
the old one is only dropped at the end. SQLite: nothing to do (its FTS5 table already returns
matches in id order, so a page reads only one page of the index).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_INDEX = "ix_thoughts_search_text_trgm"
NEW_INDEX = "ix_thoughts_id_window_search_text_trgm"


def _build_in_memory() -> None:
    # GIN builds sort their entries in maintenance_work_mem; with the default (64 MB) a million
    # thoughts take several times longer. LOCAL: only for this migration's transaction.
    op.execute("SET LOCAL maintenance_work_mem = '1GB'")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _build_in_memory()
    # A small pending list (256 kB, not the 4 MB default; migration 0001 had none): a posted
    # thought's ~70 trigram entries are appended to the list and merged into the index in
    # sorted batches, instead of ~70 separate index updates under the insert-order lock. The
    # benchmark measured 513 -> 167 microseconds of PostgreSQL CPU per post (create: 17 -> 28 %
    # of /healthz), while a search scanning a full list (27 pages) took 0.95 ms against
    # 0.87 to 1.07 ms with an empty one (bench/README.md).
    op.execute(
        f"CREATE INDEX {NEW_INDEX} ON thoughts "
        "USING gin ((ARRAY[id / 65536]), search_text gin_trgm_ops) "
        "WITH (fastupdate = on, gin_pending_list_limit = 256)"
    )
    # Dropped last: DROP INDEX locks out reads until the commit, so only for a moment.
    op.execute(f"DROP INDEX {OLD_INDEX}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _build_in_memory()
    op.execute(
        f"CREATE INDEX {OLD_INDEX} ON thoughts "
        "USING gin (search_text gin_trgm_ops) WITH (fastupdate = off)"
    )
    op.execute(f"DROP INDEX {NEW_INDEX}")
