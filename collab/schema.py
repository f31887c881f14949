"""The database schema. It is created and changed only by Alembic migrations."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite autoincrements only an INTEGER PRIMARY KEY.
Seq = BigInteger().with_variant(Integer(), "sqlite")

documents = Table(
    "documents",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("size_bytes", BigInteger, nullable=False, default=0),
    Column("log_rows", Integer, nullable=False, default=0),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    # The content's first line (plaintext.title), kept with each write so that a list
    # of documents reads no content.
    Column("title", String(200), nullable=False, server_default=""),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("doc_id", String(128), ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Of ``data``: a room opened from the snapshot alone answers peers before it is
    # built. Null for snapshots written before migration 0003.
    Column("state_vector", LargeBinary, nullable=True),
)

updates = Table(
    "updates",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("doc_id", String(128), ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_updates_doc_id_seq", "doc_id", "seq"),
)

versions = Table(
    "versions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("doc_id", String(128), ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("label", String(200), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Index("ix_versions_doc_id_created_at", "doc_id", "created_at"),
)

Index("ix_documents_updated_at", documents.c.updated_at)

# The webhook outbox: an event is a row written in the transaction of the change it
# reports, and deleted once a receiver answered 2xx. ``seq`` orders a document's events.
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),  # the idempotency key
    Column("event", String(32), nullable=False),
    Column("doc_id", String(128), nullable=False),
    Column("version_id", String(32), nullable=True),
    Column("first_at", DateTime(timezone=True), nullable=False),
    Column("last_at", DateTime(timezone=True), nullable=False),
    # document.changed is due at the latest then (first_at + COLLAB_WEBHOOK_MAX_WAIT).
    Column("deadline_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("retry_at", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    # A process delivering the event holds it until then; past it, another may.
    Column("lease_until", DateTime(timezone=True), nullable=True),
    # The body first sent, so that a retry sends the same bytes under the same id.
    Column("body", LargeBinary, nullable=True),
    Column("last_error", String(200), nullable=True),
    Index("ix_webhook_events_doc_id_seq", "doc_id", "seq"),
    Index("ix_webhook_events_due_at", "due_at"),
)

# A document has one document.changed event still gathering changes: never attempted.
# Literal SQL, not bound values: PostgreSQL infers an upsert's partial index from its
# predicate, and a prepared statement's generic plan knows no parameter's value.
GATHERING = "event = 'document.changed' AND attempts = 0"
Index(
    "uq_webhook_events_gathering",
    webhook_events.c.doc_id,
    unique=True,
    sqlite_where=text(GATHERING),
    postgresql_where=text(GATHERING),
)
