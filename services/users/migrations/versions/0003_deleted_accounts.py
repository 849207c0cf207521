"""deleted accounts keep their row, so their name stays taken

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

Thoughts and tasks are owned by username: a name given to a new account would inherit the old
account's thoughts. A deleted account keeps its row (and so its name and key) with `deleted_at`
set and an unusable password hash; it cannot log in and its tokens are revoked.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("deleted_at")
