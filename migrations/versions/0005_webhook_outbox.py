"""the webhook outbox: events recorded with the changes they report

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("seq", Seq, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("doc_id", sa.String(128), nullable=False),
        sa.Column("version_id", sa.String(32), nullable=True),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_webhook_events")),
        sa.UniqueConstraint("id", name=op.f("uq_webhook_events_id")),
    )
    op.create_index("ix_webhook_events_doc_id_seq", "webhook_events", ["doc_id", "seq"])
    op.create_index("ix_webhook_events_due_at", "webhook_events", ["due_at"])
    gathering = sa.text("event = 'document.changed' AND attempts = 0")
    op.create_index(
        "uq_webhook_events_gathering",
        "webhook_events",
        ["doc_id"],
        unique=True,
        sqlite_where=gathering,
        postgresql_where=gathering,
    )


def downgrade() -> None:
    op.drop_table("webhook_events")
