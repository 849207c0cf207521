"""Thoughts remember the Idempotency-Key of the post that made them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

A client that did not learn whether its post was stored (a timeout, a lost connection) may send
it again with the same `Idempotency-Key` header: the thoughts service answers with the thought
the first one made instead of storing a second one (issue 14). The key is kept with the thought
(a nullable column) and is unique per author, through a partial index that holds only the rows
with a key, so posts without one pay nothing for it.

Adding a nullable column without a default changes no row (instant on both databases); building
the partial index reads the table once and blocks writes to it meanwhile (a few seconds at a
million thoughts, as almost no row has a key).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ux_thoughts_username_idempotency_key"
HAS_KEY = sa.text("idempotency_key IS NOT NULL")


def upgrade() -> None:
    op.add_column("thoughts", sa.Column("idempotency_key", sa.String(255), nullable=True))
    op.create_index(
        INDEX,
        "thoughts",
        ["username", "idempotency_key"],
        unique=True,
        sqlite_where=HAS_KEY,
        postgresql_where=HAS_KEY,
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="thoughts")
    # Not a batch (copy-and-rename) on SQLite: that would drop the FTS5 triggers of 0001 with
    # the old table. SQLite 3.35+ drops a column in place, as PostgreSQL does.
    op.execute("ALTER TABLE thoughts DROP COLUMN idempotency_key")
