"""A thought's text is limited in user-perceived characters, so its column holds more code points.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

The limit of 250 characters is counted in extended grapheme clusters (servicekit.text), as a
reader counts them, the same way in the API and the frontend (issue 14): 250 flags or emoji
with a skin tone are 500 code points, which `varchar(250)` (code points, on PostgreSQL) would
refuse. The column takes up to 1,000 code points (the API's own cap, models.TEXT_MAX_CODE_POINTS).

PostgreSQL: widening a varchar changes only the catalogue (no table rewrite, no index rebuild).
SQLite does not enforce declared lengths: nothing to do there (a batch copy of the table would
also drop the FTS5 triggers of 0001).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("thoughts", "text", type_=sa.String(1000), existing_nullable=False)


def downgrade() -> None:
    # Refused by PostgreSQL while a longer text exists: such rows must be removed first.
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("thoughts", "text", type_=sa.String(250), existing_nullable=False)
