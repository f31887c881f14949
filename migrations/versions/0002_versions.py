"""named and automatic versions of documents

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "versions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("doc_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["doc_id"],
            ["documents.id"],
            name=op.f("fk_versions_doc_id_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_versions")),
    )
    op.create_index("ix_versions_doc_id_created_at", "versions", ["doc_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_versions_doc_id_created_at", table_name="versions")
    op.drop_table("versions")
