"""Create thoughts, its paging index and its substring-search index.

Revision ID: 0001
Revises:
Create Date: 2025-11-22

Search (see thoughts_service/search.py) looks for an exact substring of `search_text`, the
application-computed case-folded key of `text`. The index that answers it differs per database:

- SQLite: an FTS5 table with the trigram tokenizer over `search_text`. External content (the text
  lives once, in `thoughts`), kept in sync by triggers, so that every writer keeps it right.
- PostgreSQL: a pg_trgm GIN index on `search_text` (without a pending list), used by
  `LIKE '%...%'`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_FTS = [
    # case_sensitive 1: the key is already folded by the application; the index must not fold
    # again with its own (different) rules. detail=full (the default) keeps the token positions
    # that phrase queries, and so substring matches, need.
    """
    CREATE VIRTUAL TABLE thoughts_fts USING fts5(
        search_text,
        content='thoughts',
        content_rowid='id',
        tokenize='trigram case_sensitive 1'
    )
    """,
    """
    CREATE TRIGGER thoughts_fts_after_insert AFTER INSERT ON thoughts BEGIN
        INSERT INTO thoughts_fts(rowid, search_text) VALUES (new.id, new.search_text);
    END
    """,
    """
    CREATE TRIGGER thoughts_fts_after_delete AFTER DELETE ON thoughts BEGIN
        INSERT INTO thoughts_fts(thoughts_fts, rowid, search_text)
        VALUES ('delete', old.id, old.search_text);
    END
    """,
    """
    CREATE TRIGGER thoughts_fts_after_update AFTER UPDATE ON thoughts BEGIN
        INSERT INTO thoughts_fts(thoughts_fts, rowid, search_text)
        VALUES ('delete', old.id, old.search_text);
        INSERT INTO thoughts_fts(rowid, search_text) VALUES (new.id, new.search_text);
    END
    """,
    # Indexes whatever rows exist already (none on a fresh database; cheap either way).
    "INSERT INTO thoughts_fts(thoughts_fts) VALUES ('rebuild')",
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "thoughts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(always=False),
            primary_key=True,
        ),
        sa.Column("username", sa.String(50), nullable=False),
        sa.Column("text", sa.String(250), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_thoughts_username_id", "thoughts", ["username", "id"])

    if dialect == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
    elif dialect == "postgresql":
        # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        # fastupdate off: new entries go straight into the index instead of a pending list that
        # every search scans linearly (up to 4 MB of it) until VACUUM merges it, and that the
        # planner prices in, preferring a sequential scan while it is long. Thoughts are read
        # far more often than written, so inserts pay the (small) difference.
        op.create_index(
            "ix_thoughts_search_text_trgm",
            "thoughts",
            ["search_text"],
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
            postgresql_with={"fastupdate": "off"},
        )
    else:
        raise NotImplementedError(f"no search index for the {dialect} dialect")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("after_insert", "after_delete", "after_update"):
            op.execute(f"DROP TRIGGER IF EXISTS thoughts_fts_{trigger}")
        op.execute("DROP TABLE IF EXISTS thoughts_fts")
    elif dialect == "postgresql":
        # The pg_trgm extension stays: other objects of the database may use it.
        op.drop_index("ix_thoughts_search_text_trgm", table_name="thoughts")
    op.drop_index("ix_thoughts_username_id", table_name="thoughts")
    op.drop_table("thoughts")
