"""Create tasks: ObjectId-shaped public ids, an owner (the shared list is ''), pages by seq.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(always=False),
            primary_key=True,
        ),
        sa.Column("id", sa.String(24), nullable=False),
        sa.Column("owner", sa.String(50), nullable=False),
        sa.Column("task", sa.String(500), nullable=False),
        sa.UniqueConstraint("id", name="uq_tasks_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_tasks_owner_seq", "tasks", ["owner", "seq"])


def downgrade() -> None:
    op.drop_index("ix_tasks_owner_seq", table_name="tasks")
    op.drop_table("tasks")
