"""each document's title, its first line, kept with its writes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Documents written before this have no title until their next write.
    op.add_column(
        "documents",
        sa.Column("title", sa.String(200), nullable=False, server_default=""),
    )


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("title")
