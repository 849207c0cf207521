"""usernames get a unique normalised key (RFC 8265 UsernameCaseMapped)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04

Existing rows keep their names and keep logging in by them. Each takes the key of its name when
the name has one and no older row (lower id) took it first; the others keep a NULL key (NULLs
never collide), so `stephen` and an older `Stephen` both still exist, and no new account can take
a key an existing row holds. The key function is the service's own (users_service.usernames).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from users_service.usernames import lookup_key

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("username_key", sa.String(200), nullable=True))
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("username", sa.String))
    keyed = sa.table("users", sa.column("id", sa.Integer), sa.column("username_key", sa.String))
    connection = op.get_bind()
    taken: set[str] = set()
    for user_id, username in connection.execute(
        sa.select(users.c.id, users.c.username).order_by(users.c.id)
    ):
        key = lookup_key(username)
        if key is None or key in taken:
            continue
        taken.add(key)
        connection.execute(sa.update(keyed).where(keyed.c.id == user_id).values(username_key=key))
    with op.batch_alter_table("users") as batch:
        batch.create_unique_constraint("uq_users_username_key", ["username_key"])


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_username_key", type_="unique")
        batch.drop_column("username_key")
